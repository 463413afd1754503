#if canImport(Glibc)
import Glibc
#endif

/// Who is on the other end of a Unix socket, from SO_PEERCRED.
public struct PeerCredentials: Sendable, Hashable, CustomStringConvertible {
    public let pid: Int32
    public let uid: UInt32
    public let gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// Used when the credentials cannot be read: no role at all.
    public static let unknown = PeerCredentials(pid: 0, uid: UInt32.max, gid: UInt32.max)

    public var description: String { "pid \(pid) uid \(uid) gid \(gid)" }
}

/// Which peers hold the issue and admin roles.
public struct AccessPolicy: Sendable {
    public var issueUIDs: Set<UInt32>
    public var issueGIDs: Set<UInt32>
    public var adminUIDs: Set<UInt32>
    public var adminGIDs: Set<UInt32>

    /// Defaults: the daemon's own uid and root hold both roles.
    public init(configuration: TokendConfiguration) {
        let defaults: Set<UInt32> = [0, getuid()]
        issueUIDs = configuration.issueUIDs.map(Set.init) ?? defaults
        adminUIDs = configuration.adminUIDs.map(Set.init) ?? defaults
        issueGIDs = Set(configuration.issueGIDs)
        adminGIDs = Set(configuration.adminGIDs)
    }

    public func isAdmin(_ peer: PeerCredentials) -> Bool {
        adminUIDs.contains(peer.uid) || adminGIDs.contains(peer.gid)
    }

    /// Admin implies issue.
    public func mayIssue(_ peer: PeerCredentials) -> Bool {
        issueUIDs.contains(peer.uid) || issueGIDs.contains(peer.gid) || isAdmin(peer)
    }
}
