import TokenJWT
import TokenStore

/// Everything tokend is told at start-up. Defaults follow DESIGN.md.
public struct TokendConfiguration: Sendable {
    /// Holds keys (and later the snapshot and journal); created 0700.
    public var stateDirectory: String = "./tokend-data"
    /// nil means `<stateDirectory>/tokend.sock`.
    public var socketPath: String?
    /// The socket file's permissions: whoever can open it may verify.
    public var socketMode: UInt32 = 0o660

    /// Pair mode: access-token lifetime (seconds).
    public var accessTTL: Int64 = 30 * 60
    /// Pair mode: refresh-token lifetime.
    public var refreshTTL: Int64 = 60 * 60
    /// Session mode: idle timeout.
    public var sessionIdle: Int64 = 2 * 3600
    /// Session mode: a verify renews when less than this remains...
    public var renewBelow: Int64 = 3600
    /// ...by this much.
    public var renewBy: Int64 = 3600
    /// No login, renewed or rotated, outlives this.
    public var maxLifetime: Int64 = 12 * 3600
    /// How long a refresh's (or an idempotent issue's) result is handed out again to any
    /// repeat, in milliseconds.
    public var dedupWindowMilliseconds: Int64 = 5000
    /// How long after a refresh its pair still goes back to a retry of the spent refresh token
    /// while that pair is unused (a lost response), in milliseconds; nil: each family's
    /// access-token TTL; 0: no grace beyond the dedup window.
    public var rotationGraceMilliseconds: Int64?
    /// Signs new tokens; keys of other algorithms already in the key directory keep verifying.
    public var algorithm: JWSAlgorithm = .hs256
    /// The `iss` claim.
    public var issuer: String = "tokend"
    /// Clock skew tolerated when checking `exp`.
    public var leeway: Int64 = 0

    /// Peers allowed to issue (and to revoke by session or subject). nil: the daemon's own uid and root.
    public var issueUIDs: [UInt32]?
    public var issueGIDs: [UInt32] = []
    /// Peers allowed admin operations (stats, sessions, keys). nil: the daemon's own uid and root.
    public var adminUIDs: [UInt32]?
    public var adminGIDs: [UInt32] = []

    /// When the journal reaches the disk: `always`, `everysec` or `no`.
    public var fsync: FsyncPolicy = .everysec
    /// A snapshot is written this often when anything changed (seconds; 0 disables)...
    public var snapshotInterval: Int64 = 300
    /// ...and after this many changes, whichever comes first (0 disables).
    public var snapshotChanges: Int = 100_000
    /// Start despite damaged state files: keep the valid part, move the damaged file aside.
    public var repair: Bool = false

    /// Where state lives, as given (`embedded` or the store's URL): compared at a reload, which
    /// cannot move the state. The executable builds the store itself.
    public var storeDescription = "embedded"
    /// How long a shared store may take to answer (milliseconds) before a request fails with
    /// `store_unavailable`.
    public var storeTimeout: Int64 = 500
    /// With a shared store, create the key directory when it is empty (first host only).
    public var initKeys: Bool = false

    /// `host:port` of the HTTP endpoint serving `/metrics`; nil: none.
    public var metricsListen: String?
    /// The HTTP face (`--http-listen` and its companions); off unless an address is given.
    public var http = HTTPFaceConfiguration()

    /// Verified tokens remembered so that repeated verifies skip the signature; 0 disables.
    public var verifiedTokenCacheSize: Int = 10_000

    /// The largest request frame body accepted, in bytes.
    public var maxFrameSize: Int = 64 * 1024
    /// The least `maxFrameSize` may be: every request within the field limits fits.
    public static let minimumFrameSize = 32 * 1024
    /// Connections beyond this are closed at once (lowered at start to what the open-file
    /// limit leaves room for).
    public var maxConnections: Int = 4096
    /// Connections one uid (other than an admin's) may hold; nil: a quarter of `maxConnections`.
    public var maxConnectionsPerUID: Int?
    /// Requests in flight per connection before the daemon stops reading from it.
    public var maxInFlight: Int = 256
    /// Connections silent for this long are closed (seconds; 0 disables).
    public var idleTimeout: Int64 = 300

    public init() {}

    public var resolvedSocketPath: String { socketPath ?? stateDirectory + "/tokend.sock" }
    public var resolvedMaxConnectionsPerUID: Int { maxConnectionsPerUID ?? max(1, maxConnections / 4) }
    public var keysDirectory: String { stateDirectory + "/keys" }
}
