"""Each operation as a :class:`Call`: the request to send and how to read its reply.

Request fields are written in the order the tables of proto-spec.md section 12 list them (the
order of the spec's examples); the daemon accepts any order. Decoders raise
:class:`TokendError` for a refusal and :class:`ProtocolError` for a reply that lacks a field
the spec says is always present, or holds one of the wrong type.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Generic, Literal, Mapping, TypeVar

from .errors import ProtocolError
from .models import (
    HelloInfo,
    IssueResult,
    KeyInfo,
    RevokeResult,
    SessionInfo,
    SessionsPage,
    SnapshotResult,
    Stats,
    VerifyResult,
)
from .protocol import (
    Fields,
    Opcode,
    Request,
    Response,
    Status,
    Tag,
    encode_string,
    encode_u64,
    encode_u8,
    request_fields,
)

__all__ = [
    "SAFE_TO_REPEAT",
    "Call",
    "ModeArg",
    "hello",
    "issue",
    "keys_jwks",
    "keys_list",
    "keys_rotate",
    "ping",
    "raw",
    "refresh",
    "renew",
    "revoke",
    "sessions",
    "snapshot",
    "stats",
    "track",
    "verify",
]

T = TypeVar("T")

ModeArg = Literal["session", "pair"] | int
"""A login mode: ``"session"`` (1) or ``"pair"`` (2)."""

Seconds = int | timedelta
"""A duration: whole seconds as an int, or a timedelta of whole seconds."""


SAFE_TO_REPEAT: frozenset[int] = frozenset({
    Opcode.HELLO, Opcode.PING, Opcode.VERIFY, Opcode.RENEW, Opcode.STATS, Opcode.SESSIONS,
    Opcode.KEYS_LIST, Opcode.KEYS_JWKS, Opcode.METRICS,
})
"""Operations a client repeats once, on a new connection, when the connection closed with the
request unanswered (proto-spec.md section 14.4): they change nothing, or repeating them changes
nothing more. Not here: ``issue`` (a repeat is safe only within the dedup window and with the
same idempotency key and request) and ``refresh`` (a repeat with the same fingerprint gets the
same pair within the dedup window, and after it only while that pair is unused, within the
rotation grace), which the caller must decide (a ``verify`` carrying a refresh token is not
repeated either, :attr:`Call.repeatable`), ``revoke`` (its repeat reports
a lower count), ``snapshot`` (writes another), ``keys_rotate`` (makes another key) and
``keys_reload``."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request and the function that turns its response into a result (or raises)."""

    request: Request
    decode: Callable[[Response], T]
    repeatable: bool = True
    """False for a request of a safe operation that this request makes unsafe to repeat: a
    ``verify`` carrying a refresh token may rotate the pair, as ``refresh`` does."""

    @property
    def safe_to_repeat(self) -> bool:
        """Whether the client may repeat this request after a connection loss."""
        return self.repeatable and self.request.opcode in SAFE_TO_REPEAT


# Value limits of requests (proto-spec.md section 7), checked before sending.
TOKEN_LIMIT = 8192
FINGERPRINT_LIMIT = 1024
NAME_LIMIT = 256  # subject, audience, idempotency_key, cursor, client_name
SESSION_ID_LIMIT = 128
CLAIMS_LIMIT = 16384


# --- value helpers --------------------------------------------------------------------------

def _limited(encoded: bytes, limit: int, what: str) -> bytes:
    if len(encoded) > limit:
        raise ValueError(f"{what}: {len(encoded)} bytes, above the protocol's limit of "
                         f"{limit} bytes")
    return encoded


def _string(value: str, what: str, limit: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    try:
        encoded = encode_string(value)
    except ValueError:
        raise ValueError(f"{what} must not contain a NUL character") from None
    return encoded if limit is None else _limited(encoded, limit, what)


def _opt_string(value: str | None, what: str, limit: int | None = None) -> bytes | None:
    return None if value is None else _string(value, what, limit)


def _opt_bytes(value: bytes | str | None, what: str, limit: int) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        encoded = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        encoded = bytes(value)
    else:
        raise TypeError(f"{what} must be bytes or a str, not {type(value).__name__}")
    return _limited(encoded, limit, what)


def _fingerprint(value: bytes | str | None) -> bytes | None:
    # An empty fingerprint means the same as none (section 6.2 rule 6); send neither.
    encoded = _opt_bytes(value, "the fingerprint", FINGERPRINT_LIMIT)
    return encoded or None


_BEARER = re.compile(r"\s*bearer(\s|$)", re.IGNORECASE)


def _token(value: str, what: str = "the token") -> bytes:
    """A token as the caller passed it, with the mistakes a web handler makes caught here:
    ValueError for an empty token and for one still carrying its ``Bearer`` scheme."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise ValueError(f"{what} is empty (was there no Authorization header, or no token "
                         "after its 'Bearer ' scheme?)")
    if _BEARER.match(value):
        raise ValueError(f"{what} starts with 'Bearer ': pass only the token, without the "
                         "Authorization header's scheme")
    return _string(value, what, TOKEN_LIMIT)


def _seconds(value: Seconds | None, what: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        micros = value // timedelta(microseconds=1)
        if micros % 1_000_000:
            raise ValueError(f"{what} must be whole seconds, not {value}")
        value = micros // 1_000_000
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int of seconds or a timedelta")
    if value < 1:
        raise ValueError(f"{what} must be at least 1 second, not {value}")
    if value > 0xFFFF_FFFF_FFFF_FFFF:
        raise ValueError(f"{what} of {value} s does not fit in a u64")
    return encode_u64(value)


def _mode(value: ModeArg) -> int:
    if isinstance(value, str):
        for code, name in ((1, "session"), (2, "pair")):
            if value == name:
                return code
        raise ValueError(f"mode must be 'session' or 'pair', not {value!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"mode must be 'session', 'pair' or an int, not {value!r}")
    if not 0 <= value <= 0xFF:
        raise ValueError(f"mode {value} does not fit in a u8")
    return value


def _claims(value: Mapping[str, Any] | str | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value  # sent as given: idempotent repeats compare claims byte for byte
    else:
        text = json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    return _string(text, "the claims", CLAIMS_LIMIT)


def _json_object(fields: Fields, tag: Tag) -> tuple[str, dict[str, Any]]:
    text = fields.string(tag)
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"field {tag.name.lower()}({int(tag)}) is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"field {tag.name.lower()}({int(tag)}) is not a JSON object")
    return text, value


# --- decoders -------------------------------------------------------------------------------

def _decode_none(response: Response) -> None:
    response.raise_for_status()


def _decode_hello(response: Response) -> HelloInfo:
    response.raise_for_status()
    f = response.fields
    return HelloInfo(protocol_version=f.u8(Tag.PROTOCOL_VERSION),
                     server_name=f.string(Tag.SERVER_NAME),
                     max_frame_size=f.u64(Tag.MAX_FRAME_SIZE),
                     dedup_window_ms=f.opt_u64(Tag.DEDUP_WINDOW_MS),
                     idle_ttl=f.opt_u64(Tag.IDLE_TTL),
                     renew_below=f.opt_u64(Tag.RENEW_BELOW),
                     renew_by=f.opt_u64(Tag.RENEW_BY),
                     access_ttl=f.opt_u64(Tag.ACCESS_TTL),
                     refresh_token_ttl=f.opt_u64(Tag.REFRESH_TOKEN_TTL),
                     max_login_lifetime=f.opt_u64(Tag.MAX_LOGIN_LIFETIME),
                     leeway=f.opt_u64(Tag.LEEWAY),
                     store_healthy=f.opt_boolean(Tag.STORE_HEALTHY))


def _decode_issue(response: Response) -> IssueResult:
    response.raise_for_status()
    f = response.fields
    mode = f.u8(Tag.MODE)
    result = IssueResult(
        mode=mode,
        session_id=f.string(Tag.SESSION_ID),
        session_token=f.opt_string(Tag.SESSION_TOKEN),
        access_token=f.opt_string(Tag.ACCESS_TOKEN),
        refresh_token=f.opt_string(Tag.REFRESH_TOKEN),
        expires_at=f.u64(Tag.EXPIRES_AT),
        refresh_expires_at=f.opt_u64(Tag.REFRESH_EXPIRES_AT),
        max_expires_at=f.u64(Tag.MAX_EXPIRES_AT),
    )
    if mode == 1:
        f.string(Tag.SESSION_TOKEN)  # raises when missing
    elif mode == 2:
        f.string(Tag.ACCESS_TOKEN)
        f.string(Tag.REFRESH_TOKEN)
        f.u64(Tag.REFRESH_EXPIRES_AT)
    return result


def _decode_verify(response: Response) -> VerifyResult:
    response.raise_for_status()
    f = response.fields
    renewed = f.boolean(Tag.RENEWED)
    if renewed != (response.status == Status.RENEWED):
        raise ProtocolError(
            f"renewed(38) is {str(renewed).lower()} but the status is {response.status_name}")
    claims_json, claims = _json_object(f, Tag.CLAIMS_JSON)
    result = VerifyResult(
        status=response.status,
        renewed=renewed,
        mode=f.u8(Tag.MODE),
        subject=f.string(Tag.SUBJECT),
        session_id=f.string(Tag.SESSION_ID),
        claims=claims,
        claims_json=claims_json,
        expires_at=f.u64(Tag.EXPIRES_AT),
        token_expires_at=f.u64(Tag.TOKEN_EXPIRES_AT),
        cacheable_until=f.opt_u64(Tag.CACHEABLE_UNTIL),
    )
    if response.status != Status.REFRESHED:
        return result
    # verify-or-refresh rotated the pair: the new one is required with this status only.
    return dataclasses.replace(result, access_token=f.string(Tag.ACCESS_TOKEN),
                               refresh_token=f.string(Tag.REFRESH_TOKEN),
                               refresh_expires_at=f.u64(Tag.REFRESH_EXPIRES_AT),
                               max_expires_at=f.u64(Tag.MAX_EXPIRES_AT))


def _decode_revoke(response: Response) -> RevokeResult:
    response.raise_for_status()
    return RevokeResult(count=response.fields.u64(Tag.COUNT))


def _decode_stats(response: Response) -> Stats:
    response.raise_for_status()
    counters: dict[str, int] = {}
    for record in response.fields.records(Tag.STAT):
        name = record.string(Tag.NAME)
        if name in counters:
            raise ProtocolError(f"stat {name!r} appears more than once")
        counters[name] = record.u64(Tag.VALUE)
    return Stats(counters=counters)


def _session_info(record: Fields) -> SessionInfo:
    return SessionInfo(
        session_id=record.string(Tag.SESSION_ID),
        subject=record.string(Tag.SUBJECT),
        mode=record.u8(Tag.MODE),
        state=record.u8(Tag.STATE),
        created_at=record.u64(Tag.CREATED_AT),
        expires_at=record.u64(Tag.EXPIRES_AT),
        max_expires_at=record.u64(Tag.MAX_EXPIRES_AT),
    )


def _decode_sessions(response: Response) -> SessionsPage:
    response.raise_for_status()
    f = response.fields
    return SessionsPage(sessions=[_session_info(r) for r in f.records(Tag.SESSION)],
                        next_cursor=f.opt_string(Tag.NEXT_CURSOR))


def _key_info(record: Fields) -> KeyInfo:
    return KeyInfo(kid=record.string(Tag.KID), algorithm=record.string(Tag.ALGORITHM),
                   signing=record.boolean(Tag.SIGNING), created_at=record.u64(Tag.CREATED_AT))


def _decode_keys_list(response: Response) -> list[KeyInfo]:
    response.raise_for_status()
    return [_key_info(r) for r in response.fields.records(Tag.KEY)]


def _decode_keys_rotate(response: Response) -> KeyInfo:
    response.raise_for_status()
    records = response.fields.records(Tag.KEY)
    if len(records) != 1:
        raise ProtocolError(f"keys_rotate reply holds {len(records)} key records, not 1")
    return _key_info(records[0])


def _decode_keys_jwks(response: Response) -> dict[str, Any]:
    response.raise_for_status()
    return _json_object(response.fields, Tag.JWKS)[1]


def _decode_snapshot(response: Response) -> SnapshotResult:
    response.raise_for_status()
    f = response.fields
    return SnapshotResult(count=f.u64(Tag.COUNT), message=f.opt_string(Tag.MESSAGE) or "")


def _identity(response: Response) -> Response:
    return response


# --- the operations -------------------------------------------------------------------------

def hello(client_name: str | None = None) -> Call[HelloInfo]:
    return Call(Request(Opcode.HELLO, request_fields(
        (Tag.CLIENT_NAME, _opt_string(client_name, "client_name", NAME_LIMIT)))), _decode_hello)


def ping() -> Call[None]:
    return Call(Request(Opcode.PING), _decode_none)


def issue(subject: str, mode: ModeArg = "session", *,
          fingerprint: bytes | str | None = None,
          audience: str | None = None,
          claims: Mapping[str, Any] | str | None = None,
          idempotency_key: bytes | str | None = None,
          ttl: Seconds | None = None,
          refresh_ttl: Seconds | None = None,
          max_lifetime: Seconds | None = None) -> Call[IssueResult]:
    subject_bytes = _string(subject, "the subject", NAME_LIMIT)
    if not subject_bytes:
        raise ValueError("the subject must not be empty")
    fields = request_fields(
        (Tag.MODE, encode_u8(_mode(mode))),
        (Tag.SUBJECT, subject_bytes),
        (Tag.FINGERPRINT, _fingerprint(fingerprint)),
        (Tag.AUDIENCE, _opt_string(audience, "the audience", NAME_LIMIT)),
        (Tag.CLAIMS, _claims(claims)),
        (Tag.IDEMPOTENCY_KEY, _opt_bytes(idempotency_key, "the idempotency key", NAME_LIMIT)),
        (Tag.TTL, _seconds(ttl, "ttl")),
        (Tag.REFRESH_TTL, _seconds(refresh_ttl, "refresh_ttl")),
        (Tag.MAX_LIFETIME, _seconds(max_lifetime, "max_lifetime")),
    )
    return Call(Request(Opcode.ISSUE, fields), _decode_issue)


def _token_request(opcode: Opcode, token: str, fingerprint: bytes | str | None) -> Request:
    return Request(opcode, request_fields((Tag.TOKEN, _token(token)),
                                          (Tag.FINGERPRINT, _fingerprint(fingerprint))))


def verify(token: str, fingerprint: bytes | str | None = None, *,
           refresh_token: str | None = None) -> Call[VerifyResult]:
    """``refresh_token``: the refresh token of the access token's pair (verify-or-refresh,
    12.4): if the access token has expired, and nothing else is wrong with it, the daemon
    rotates the pair and answers ``refreshed`` with the new one. Such a request is not repeated
    after a lost connection (it may have spent the refresh token), like ``refresh``."""
    request = _token_request(Opcode.VERIFY, token, fingerprint)
    if refresh_token is None:
        return Call(request, _decode_verify)
    request = Request(Opcode.VERIFY, request.fields + (
        (Tag.REFRESH_TOKEN, _token(refresh_token, "the refresh token")),))
    return Call(request, _decode_verify, repeatable=False)


def renew(token: str, fingerprint: bytes | str | None = None) -> Call[VerifyResult]:
    return Call(_token_request(Opcode.RENEW, token, fingerprint), _decode_verify)


def refresh(token: str, fingerprint: bytes | str | None = None) -> Call[IssueResult]:
    return Call(_token_request(Opcode.REFRESH, token, fingerprint), _decode_issue)


def revoke(token: str | None = None, *, session_id: str | None = None,
           subject: str | None = None) -> Call[RevokeResult]:
    given = sum(value is not None for value in (token, session_id, subject))
    if given != 1:
        raise ValueError("revoke takes exactly one of token, session_id and subject")
    fields = request_fields((Tag.TOKEN, None if token is None else _token(token)),
                            (Tag.SESSION_ID, _opt_string(session_id, "the session id",
                                                         SESSION_ID_LIMIT)),
                            (Tag.SUBJECT, _opt_string(subject, "the subject", NAME_LIMIT)))
    return Call(Request(Opcode.REVOKE, fields), _decode_revoke)


def track() -> Call[None]:
    """Opt the connection in to invalidation frames (12.16); sent by the near cache."""
    return Call(Request(Opcode.TRACK), _decode_none)


def stats() -> Call[Stats]:
    return Call(Request(Opcode.STATS), _decode_stats)


def sessions(subject: str | None = None, *, cursor: str | None = None,
             limit: int | None = None) -> Call[SessionsPage]:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise TypeError("limit must be an int")
    if limit is not None and not 1 <= limit <= 1000:
        raise ValueError(f"limit must be 1 to 1000, not {limit}")
    fields = request_fields((Tag.SUBJECT, _opt_string(subject, "the subject", NAME_LIMIT)),
                            (Tag.CURSOR, _opt_string(cursor, "the cursor", NAME_LIMIT)),
                            (Tag.LIMIT, None if limit is None else encode_u64(limit)))
    return Call(Request(Opcode.SESSIONS, fields), _decode_sessions)


def keys_list() -> Call[list[KeyInfo]]:
    return Call(Request(Opcode.KEYS_LIST), _decode_keys_list)


def keys_jwks() -> Call[dict[str, Any]]:
    return Call(Request(Opcode.KEYS_JWKS), _decode_keys_jwks)


def keys_rotate() -> Call[KeyInfo]:
    return Call(Request(Opcode.KEYS_ROTATE), _decode_keys_rotate)


def keys_reload() -> Call[list[KeyInfo]]:
    return Call(Request(Opcode.KEYS_RELOAD), _decode_keys_list)


def metrics() -> Call[str]:
    return Call(Request(Opcode.METRICS), _decode_metrics)


def _decode_metrics(response: Response) -> str:
    response.raise_for_status()
    return response.fields.string(Tag.METRICS)


def snapshot() -> Call[SnapshotResult]:
    return Call(Request(Opcode.SNAPSHOT), _decode_snapshot)


def raw(opcode: Opcode | int | str, fields: tuple[tuple[int, bytes], ...] = ()) -> Call[Response]:
    """Any operation, by opcode or name, with pre-encoded fields; the response is returned as it
    is, refusals included (call :meth:`Response.raise_for_status` to raise)."""
    code = Opcode.from_name(opcode) if isinstance(opcode, str) else int(opcode)
    return Call(Request(code, fields), _identity)
