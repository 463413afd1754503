"""Errors raised by the tokend client, sorted by whose fault they are.

::

    TokendError                     every error this package raises on purpose
    ├── TokenRefused                the token is no good: answer 401, the caller should log in again
    │   ├── Expired                 expired(2)
    │   ├── SessionExpired          session_expired(3)
    │   ├── SessionUnknown          session_unknown(4)
    │   ├── Revoked                 revoked(5)
    │   ├── FingerprintMismatch     fingerprint_mismatch(6)
    │   ├── ReuseDetected           reuse_detected(7)
    │   ├── MaxLifetimeReached      max_lifetime_reached(8)
    │   ├── MalformedToken          malformed_token(9)
    │   ├── BadSignature            bad_signature(10)
    │   └── WrongTokenType          wrong_token_type(11)
    ├── RequestRefused              the request itself was refused: a mistake of the calling code
    │   ├── Forbidden               forbidden(12): this process's uid/gid lacks the role
    │   ├── BadRequest              bad_request(13)
    │   ├── TooLarge                too_large(14)
    │   ├── UnsupportedVersion      unsupported_version(15)
    │   └── UnknownOperation        unknown_operation(16)
    ├── ServiceUnavailable          tokend could not answer: not the token's fault; answer 503
    │   ├── StoreUnavailable        store_unavailable(17): the shared store (Redis) is down
    │   ├── InternalError           internal_error(18)
    │   ├── ConnectionLostError     the connection closed with the request unanswered
    │   ├── DaemonUnreachableError  the socket could not be opened
    │   ├── TokendTimeoutError      no answer within the call's deadline
    │   └── ProtocolError           the daemon's bytes do not follow proto-spec.md
    └── RequestTooLargeError        a request above the daemon's max_frame_size (nothing sent;
                                    also a ValueError)

A status this client does not know (20 and up, section 9) raises :class:`RequestRefused` itself:
neither a verdict on the token nor known to be transient.

Every error has ``name`` (the status name of proto-spec.md section 9 for an answer of the
daemon, as ``tokenctl --json`` prints it; ``connection_lost``, ``unreachable``, ``timeout``,
``protocol_error`` or ``request_too_large`` for failures seen by the client), ``status`` (the
numeric status, None for failures seen by the client) and ``message`` (for people: never
parse it).

Argument mistakes found before anything is sent (an empty token, a token still carrying its
``Bearer`` prefix, a NUL in a string, a value above the protocol's limits) raise plain
:class:`ValueError`, or :class:`TypeError` for a value of the wrong type.

``TokendClientError`` is the former name of :class:`TokendError`, the base, and stays as an
alias. Before version 0.2 ``TokendError`` meant "a refusal of the daemon", whatever it refused;
code that answered 401 for every ``TokendError`` should catch :class:`TokenRefused` for 401 and
:class:`ServiceUnavailable` for 503.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Mapping

__all__ = [
    "BadRequest",
    "BadSignature",
    "ConnectionLostError",
    "DaemonUnreachableError",
    "Expired",
    "FingerprintMismatch",
    "Forbidden",
    "InternalError",
    "MalformedToken",
    "MaxLifetimeReached",
    "ProtocolError",
    "RequestRefused",
    "RequestTooLargeError",
    "ReuseDetected",
    "Revoked",
    "ServiceUnavailable",
    "SessionExpired",
    "SessionUnknown",
    "StoreUnavailable",
    "TokenRefused",
    "TokendClientError",
    "TokendError",
    "TokendTimeoutError",
    "TooLarge",
    "UnknownOperation",
    "UnsupportedVersion",
    "WrongTokenType",
    "error_for_status",
]


class TokendError(Exception):
    """Base class of every error this package raises on purpose.

    ``status``: the daemon's numeric status (None when the client saw the failure itself).
    ``name``: the status name (``status_<code>`` for a code this client does not know, as
    tokenctl prints it), or the client-side failure's name. ``message``: the daemon's
    human-readable reason, or the client's; compare by ``status``, ``name`` or class, never by
    ``message``. ``opcode`` and ``request_id``: of the request answered (0 when none).
    """

    default_name: ClassVar[str] = "tokend_error"

    status: int | None
    name: str
    message: str
    opcode: int
    request_id: int

    def __init__(self, message: str = "", *, status: int | None = None, name: str | None = None,
                 opcode: int = 0, request_id: int = 0) -> None:
        self.status = status
        self.name = name if name is not None else self.default_name
        self.message = message
        self.opcode = opcode
        self.request_id = request_id
        if status is None:
            super().__init__(message or self.name)
        else:
            super().__init__(f"{self.name} ({status}): {message}" if message
                             else f"{self.name} ({status})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.status, self.name, self.opcode,
                           self.request_id))


def _rebuild(cls: type[TokendError], message: str, status: int | None, name: str, opcode: int,
             request_id: int) -> TokendError:
    error = cls.__new__(cls)
    TokendError.__init__(error, message, status=status, name=name, opcode=opcode,
                         request_id=request_id)
    if isinstance(error, ConnectionLostError):
        error.responses = []
    return error


TokendClientError = TokendError
"""The former name of the base class, kept as an alias."""


# --- the three kinds --------------------------------------------------------------------------

class TokenRefused(TokendError):
    """The daemon looked at the token and refused it: expired, revoked, forged, bound to another
    fingerprint, ... The token will not become good by trying again. A web service answers 401
    (``WWW-Authenticate: Bearer error="invalid_token"``) and the user agent logs in again."""

    status: int  # always a status of the daemon


class RequestRefused(TokendError):
    """The daemon refused the request itself, not the token: a mistake or misconfiguration of
    the calling code (no role, a malformed request, an unknown operation), or a status this
    client does not know. Neither 401 nor a reason to retry: let it surface as a server error."""

    status: int  # always a status of the daemon


class ServiceUnavailable(TokendError):
    """tokend could not give an answer about the token: its store is down, it failed inside, or
    the connection, the deadline or the bytes on the wire failed. Not the token's fault: a web
    service answers 503 with ``Retry-After`` and must not make the user log in again."""


# --- refusals of the token ----------------------------------------------------------------------

class Expired(TokenRefused):
    """``expired`` (2): the token's own ``exp`` has passed."""

    default_name = "expired"


class SessionExpired(TokenRefused):
    """``session_expired`` (3): the sliding session was idle for too long."""

    default_name = "session_expired"


class SessionUnknown(TokenRefused):
    """``session_unknown`` (4): no such session or family (never issued here, or forgotten)."""

    default_name = "session_unknown"


class Revoked(TokenRefused):
    """``revoked`` (5): the session or family was revoked (logout, operator, reuse detection)."""

    default_name = "revoked"


class FingerprintMismatch(TokenRefused):
    """``fingerprint_mismatch`` (6): presented by another client than the login was bound to."""

    default_name = "fingerprint_mismatch"


class ReuseDetected(TokenRefused):
    """``reuse_detected`` (7): a spent refresh token came back; the whole family is revoked."""

    default_name = "reuse_detected"


class MaxLifetimeReached(TokenRefused):
    """``max_lifetime_reached`` (8): the login reached its absolute maximum lifetime."""

    default_name = "max_lifetime_reached"


class MalformedToken(TokenRefused):
    """``malformed_token`` (9): not a well-formed token."""

    default_name = "malformed_token"


class BadSignature(TokenRefused):
    """``bad_signature`` (10): the signature does not verify, or no trusted key matches."""

    default_name = "bad_signature"


class WrongTokenType(TokenRefused):
    """``wrong_token_type`` (11): another kind of token than the operation takes."""

    default_name = "wrong_token_type"


# --- refusals of the request ---------------------------------------------------------------------

class Forbidden(RequestRefused):
    """``forbidden`` (12): this process's uid/gid may not perform the operation (issue or admin
    role, proto-spec.md section 10). A deployment problem, not the user's."""

    default_name = "forbidden"


class BadRequest(RequestRefused):
    """``bad_request`` (13): the daemon found the request malformed or invalid (an override
    above the daemon's setting, claims naming a registered claim, an idempotency key reused for
    a different request, ...). Mistakes this client can see before sending raise
    :class:`ValueError` instead."""

    default_name = "bad_request"


class TooLarge(RequestRefused):
    """``too_large`` (14): a frame above the daemon's limit. The daemon sends it on no request
    (opcode 0); a call sees :class:`ConnectionLostError` or :class:`RequestTooLargeError`."""

    default_name = "too_large"


class UnsupportedVersion(RequestRefused):
    """``unsupported_version`` (15): the daemon does not speak the request's protocol version."""

    default_name = "unsupported_version"


class UnknownOperation(RequestRefused):
    """``unknown_operation`` (16): the daemon does not know the opcode (an older daemon)."""

    default_name = "unknown_operation"


# --- failures of the service ----------------------------------------------------------------------

class StoreUnavailable(ServiceUnavailable):
    """``store_unavailable`` (17): the shared store did not answer in time or refused; tokend
    fails closed. A change may or may not have been made (proto-spec.md section 14.4)."""

    status: int
    default_name = "store_unavailable"


class InternalError(ServiceUnavailable):
    """``internal_error`` (18): an unexpected failure inside the daemon (also the refusals of
    ``snapshot``)."""

    status: int
    default_name = "internal_error"


class ProtocolError(ServiceUnavailable):
    """The daemon sent something this protocol does not allow: a frame or body that cannot be
    parsed, a malformed field sequence, a duplicate field, a missing or ill-typed field in a
    successful reply. After a framing error the client closes the connection (section 14.2)."""

    default_name = "protocol_error"


class ConnectionLostError(ServiceUnavailable, ConnectionError):
    """The connection closed before the request was answered. Its outcome is unknown: it may or
    may not have been carried out (proto-spec.md section 14.4 says which operations are safe to
    repeat; the client repeats those once by itself). The next call opens a new connection.

    From :meth:`Client.send_many`, ``responses`` holds, in request order, the replies that did
    arrive and None for the others.
    """

    default_name = "connection_lost"

    responses: list[Any]

    def __init__(self, message: str, *, responses: list[Any] | None = None) -> None:
        super().__init__(message)
        self.responses = responses if responses is not None else []


class DaemonUnreachableError(ServiceUnavailable, ConnectionError):
    """The daemon's socket could not be opened (missing, refused, or no permission)."""

    default_name = "unreachable"


class TokendTimeoutError(ServiceUnavailable, TimeoutError):
    """The call's deadline (the client's ``timeout``, queueing, connecting and a retry
    included) passed without an answer. The connection stays open for the other calls; the
    request may still be carried out (its late reply is discarded)."""

    default_name = "timeout"


# --- a mistake found before sending ------------------------------------------------------------------

class RequestTooLargeError(TokendError, ValueError):
    """A request body is larger than the daemon's ``max_frame_size`` (section 4.2), so it was not
    sent: the daemon would answer ``too_large`` and close the connection."""

    default_name = "request_too_large"


_BY_STATUS: Final[Mapping[int, type[TokendError]]] = {
    2: Expired,
    3: SessionExpired,
    4: SessionUnknown,
    5: Revoked,
    6: FingerprintMismatch,
    7: ReuseDetected,
    8: MaxLifetimeReached,
    9: MalformedToken,
    10: BadSignature,
    11: WrongTokenType,
    12: Forbidden,
    13: BadRequest,
    14: TooLarge,
    15: UnsupportedVersion,
    16: UnknownOperation,
    17: StoreUnavailable,
    18: InternalError,
}


def error_for_status(status: int, name: str, message: str = "", *, opcode: int = 0,
                     request_id: int = 0) -> TokendError:
    """The exception for a refusal with this status: the class of the table above, or
    :class:`RequestRefused` for a status this client does not know."""
    cls = _BY_STATUS.get(status, RequestRefused)
    return cls(message, status=status, name=name, opcode=opcode, request_id=request_id)
