import TokenJWT
import TokenProtocol
import TokenStore

/// Why an operation said no, in the domain's terms. `status` and `message` are the one table
/// from a refusal to what the wire (and the HTTP face) says.
enum Refusal: Error, Sendable, Hashable {
    // The token itself.
    case token(JWTError)
    case lacksTokendClaims
    case foreignTokenType
    case refreshTokenOutsideRefresh
    case renewOfPair
    case refreshWithoutRefreshToken
    case refreshTokenWithoutID
    case notThePairsRefreshToken
    case accessTokenExpired
    case refreshTokenExpired
    /// A token that verifies but names a login it was not issued for: its `sub` is not the
    /// subject stored for its `sid`. Only a token signed with a leaked key can be one, so it is
    /// refused as a signature the daemon does not stand behind.
    case loginMismatch
    // A sliding session.
    case sessionIdle
    case sessionRevoked
    case sessionMaxLifetime
    case sessionUnknown
    case sessionFingerprint
    case notASession
    // A refresh family.
    case familyRevoked
    case familyMaxLifetime
    case familyUnknown
    case familyFingerprint
    case notAFamily
    case reuseDetected
    // Other operations.
    case idempotencyConflict
    case idempotentLoginRevoked
    case noSuchSession
    case rotationNeedsSharedKeys
    case noSnapshotFiles
    case snapshotInProgress
    /// A request the protocol layer turned down: missing fields, forbidden, unknown operation.
    case request(ProtocolError)
    /// The store could not answer: nothing changed, and the daemon fails closed.
    case storeUnavailable(String)
    /// Something inside the daemon failed; the message is safe for peers (details are logged).
    case internalError(String)

    var status: Status {
        switch self {
        case .token(let error):
            switch error.code {
            case .algorithmMismatch, .unknownKey, .badSignature: .badSignature
            case .expired: .expired
            case .wrongType: .wrongTokenType
            default: .malformedToken
            }
        case .lacksTokendClaims, .refreshTokenWithoutID: .malformedToken
        case .foreignTokenType, .refreshTokenOutsideRefresh, .renewOfPair, .refreshWithoutRefreshToken, .notASession, .notAFamily: .wrongTokenType
        case .accessTokenExpired, .refreshTokenExpired: .expired
        case .loginMismatch: .badSignature
        case .sessionIdle: .sessionExpired
        case .sessionRevoked, .familyRevoked, .idempotentLoginRevoked: .revoked
        case .sessionMaxLifetime, .familyMaxLifetime: .maxLifetimeReached
        case .sessionUnknown, .familyUnknown, .noSuchSession: .sessionUnknown
        case .sessionFingerprint, .familyFingerprint: .fingerprintMismatch
        case .reuseDetected: .reuseDetected
        case .notThePairsRefreshToken, .idempotencyConflict, .rotationNeedsSharedKeys, .noSnapshotFiles: .badRequest
        case .snapshotInProgress, .internalError: .internalError
        case .request(let error): error.status
        case .storeUnavailable: .storeUnavailable
        }
    }

    var message: String {
        switch self {
        case .token(let error): error.reason
        case .lacksTokendClaims: "the token lacks the sid, sub or exp that tokend issues"
        case .foreignTokenType: "not a token type tokend issues"
        case .refreshTokenOutsideRefresh: "a refresh token is only accepted by refresh"
        case .renewOfPair: "renew applies to sliding sessions; refresh the pair instead"
        case .refreshWithoutRefreshToken: "refresh takes a refresh token"
        case .refreshTokenWithoutID: "the refresh token has no tokend jti"
        case .notThePairsRefreshToken: "refresh_token is not the refresh token of the access token's pair"
        case .accessTokenExpired: "the access token expired; refresh it"
        case .refreshTokenExpired: "the refresh token expired; log in again"
        case .loginMismatch: "the token does not match the login it names"
        case .sessionIdle: "the session expired after being idle; log in again"
        case .sessionRevoked: "the session was revoked"
        case .sessionMaxLifetime: "the session reached its maximum lifetime; log in again"
        case .sessionUnknown, .noSuchSession: "no such session"
        case .sessionFingerprint: "the fingerprint does not match the one the session was issued for"
        case .notASession: "the token's session is not a sliding session"
        case .familyRevoked: "the token's family was revoked"
        case .familyMaxLifetime: "the login reached its maximum lifetime; log in again"
        case .familyUnknown: "no such token family"
        case .familyFingerprint: "the fingerprint does not match the one the tokens were issued for"
        case .notAFamily: "the token's session is not a refresh family"
        case .reuseDetected: "this refresh token was already used; its family is now revoked"
        case .idempotencyConflict: "this idempotency key was already used for a different request"
        case .idempotentLoginRevoked: "the login this idempotency key issued was revoked since; issue again with another key"
        case .rotationNeedsSharedKeys: """
            with a shared store a key must reach every host before any host signs with it, so tokend does not rotate \
            on its own: create the key once with tokenctl jwt keygen --alg ALG --out <state-dir>/keys/<T>-<ALG>.key, \
            T being a Unix time a few minutes ahead, copy that file to the same place on every host, then run \
            tokenctl keys reload (or send SIGHUP) on each; the new key verifies at once and every host signs with it from T
            """
        case .noSnapshotFiles: "this daemon keeps its state in a shared store, not in snapshot files"
        case .snapshotInProgress: "a snapshot is already being written; try again"
        case .request(let error): error.reason
        case .storeUnavailable(let reason): reason
        case .internalError(let message): message
        }
    }

    /// A session's store outcome other than `active`.
    init(_ outcome: SessionOutcome) {
        switch outcome {
        case .active: self = .internalError("internal error")
        case .idleExpired: self = .sessionIdle
        case .revoked: self = .sessionRevoked
        case .maxLifetimeReached: self = .sessionMaxLifetime
        case .unknown: self = .sessionUnknown
        case .fingerprintMismatch: self = .sessionFingerprint
        case .subjectMismatch: self = .loginMismatch
        case .wrongKind: self = .notASession
        }
    }

    /// A rotation's store outcome other than `rotated` and `deduplicated`.
    init(_ outcome: RotationOutcome) {
        switch outcome {
        case .rotated, .deduplicated: self = .internalError("internal error")
        case .reuseDetected: self = .reuseDetected
        case .revoked: self = .familyRevoked
        case .maxLifetimeReached: self = .familyMaxLifetime
        case .unknown: self = .familyUnknown
        case .fingerprintMismatch: self = .familyFingerprint
        }
    }

    /// A family's store outcome other than `active`.
    init(_ outcome: FamilyOutcome) {
        switch outcome {
        case .active: self = .internalError("internal error")
        case .revoked: self = .familyRevoked
        case .maxLifetimeReached: self = .familyMaxLifetime
        case .unknown: self = .familyUnknown
        case .fingerprintMismatch: self = .familyFingerprint
        case .wrongKind: self = .notAFamily
        }
    }
}
