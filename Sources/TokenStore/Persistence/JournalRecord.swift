import NIOCore

/// One state change, as the journal stores it and replay applies it.
///
/// Every record sets absolute values (never "add one"), so applying a record to a state that
/// already contains it changes nothing. That lets a snapshot be taken while serving goes on:
/// the journal that starts with the snapshot is replayed over it, and any change the snapshot
/// already caught is simply applied again.
public enum JournalRecord: Sendable, Hashable {
    /// A new login, with the idempotency entry that came with it.
    case putLogin(SessionKey, LoginRecord, dedup: DedupPut?)
    /// A sliding session's idle expiry moved (renewal).
    case setExpiry(SessionKey, Int64)
    /// A family rotated: its current refresh token, that token's expiry, the new pair's
    /// generation (unused), and the dedup entry.
    case rotate(SessionKey, refreshID: SessionKey, expiresAt: Int64, generation: Int64, dedup: DedupPut)
    /// A family's pair of `generation` was used (its access token verified); a no-op when the
    /// family has moved on to another generation.
    case markUsed(SessionKey, generation: Int64)
    /// A login was revoked.
    case revoke(SessionKey)
    /// A dedup entry on its own (snapshots only).
    case putDedup(DedupPut)

    public struct DedupPut: Sendable, Hashable {
        public var digest: Digest128
        public var entry: DedupEntry

        public init(digest: Digest128, entry: DedupEntry) {
            self.digest = digest
            self.entry = entry
        }
    }

    /// The record type byte.
    public enum Kind: UInt8, Sendable, CaseIterable {
        case putLogin = 1
        case setExpiry = 2
        case rotate = 3
        case revoke = 4
        case putDedup = 5
        case markUsed = 6
        /// The snapshot's last record: record count and whole-file checksum.
        case snapshotEnd = 0xFF

        public var name: String {
            switch self {
            case .putLogin: "put_login"
            case .setExpiry: "set_expiry"
            case .rotate: "rotate"
            case .revoke: "revoke"
            case .putDedup: "put_dedup"
            case .markUsed: "mark_used"
            case .snapshotEnd: "snapshot_end"
            }
        }
    }

    public var kind: Kind {
        switch self {
        case .putLogin: .putLogin
        case .setExpiry: .setExpiry
        case .rotate: .rotate
        case .revoke: .revoke
        case .putDedup: .putDedup
        case .markUsed: .markUsed
        }
    }
}
