import Foundation

/// The few file operations tokend needs, with the permissions and syncing it insists on.
enum FileSystem {
    /// Creates `path` (and parents) with `mode` if missing. An existing one may not grant
    /// more than `allowed` (the state directory may let a group through to the socket; the
    /// key directory may not).
    static func makeDirectory(_ path: String, mode: mode_t, allowed: mode_t = 0o700) throws {
        var info = stat()
        if stat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFDIR else { throw ConfigurationError("\(path) exists and is not a directory") }
            if info.st_mode & 0o777 & ~allowed != 0 {
                throw ConfigurationError("\(path) is accessible to other users (mode \(String(info.st_mode & 0o777, radix: 8))); run: chmod \(String(mode, radix: 8)) \(path)")
            }
            return
        }
        // Parents first, as mkdir -p; errors in plain words, with the path and errno.
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            guard mkdir(prefix, prefix == path || prefix == "./" + path ? mode : 0o755) == 0 || errno == EEXIST else {
                throw ConfigurationError("cannot create \(path): \(String(cString: strerror(errno))) (at \(prefix))")
            }
        }
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw ConfigurationError("cannot create \(path): \(String(cString: strerror(ENOTDIR)))")
        }
        chmod(path, mode)
    }

    static func read(_ path: String) throws -> [UInt8] {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ConfigurationError("cannot read \(path): \(String(cString: strerror(errno)))") }
        if info.st_mode & 0o077 != 0 {
            throw ConfigurationError("\(path) is readable by other users (mode \(String(info.st_mode & 0o777, radix: 8))); run: chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw ConfigurationError("cannot read \(path)") }
        return Array(data)
    }

    /// Writes a new file with mode 0600 through a temporary name, fsynced, renamed, and the
    /// directory fsynced, so that a crash leaves either no file or the whole file.
    static func writeNew(_ bytes: [UInt8], to path: String) throws {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigurationError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let n = bytes[written...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n > 0 else {
                close(fd)
                throw ConfigurationError("cannot write \(temporary): \(String(cString: strerror(errno)))")
            }
            written += n
        }
        guard fsync(fd) == 0, close(fd) == 0, rename(temporary, path) == 0 else {
            throw ConfigurationError("cannot write \(path): \(String(cString: strerror(errno)))")
        }
        syncDirectory(of: path)
    }

    static func syncDirectory(of path: String) {
        let directory = (path as NSString).deletingLastPathComponent
        let fd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
