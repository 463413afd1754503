/// When the journal is flushed to disk, as Redis's `appendfsync`.
public enum FsyncPolicy: String, Sendable, CaseIterable {
    /// Before each reply (concurrent requests share one fsync).
    case always
    /// About once a second: a crash loses at most about the last second.
    case everysec
    /// Never explicitly; the kernel decides.
    case no
}
