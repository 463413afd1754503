/// The version of tokend, its protocol library and its bundled client: one number for all of
/// them (the Python client in tools/python carries the same).
public enum TokendVersion {
    public static let current = "0.1.0"
}
