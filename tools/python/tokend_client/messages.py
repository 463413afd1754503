"""Each operation as a :class:`Call`: the request to send and how to read its reply.

Request fields are written in the order the tables of proto-spec.md section 12 list them (the
order of the spec's examples); the daemon accepts any order. Decoders raise
:class:`TokendError` for a refusal and :class:`ProtocolError` for a reply that lacks a field
the spec says is always present, or holds one of the wrong type.
"""

from __future__ import annotations

import json
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
    "verify",
]

T = TypeVar("T")

ModeArg = Literal["session", "pair"] | int
"""A login mode: ``"session"`` (1) or ``"pair"`` (2)."""

Seconds = int | timedelta
"""A duration: whole seconds as an int, or a timedelta of whole seconds."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request and the function that turns its response into a result (or raises)."""

    request: Request
    decode: Callable[[Response], T]


# --- value helpers --------------------------------------------------------------------------

def _opt_string(value: str | None) -> bytes | None:
    return None if value is None else encode_string(value)


def _opt_bytes(value: bytes | str | None) -> bytes | None:
    if value is None:
        return None
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _fingerprint(value: bytes | str | None) -> bytes | None:
    # An empty fingerprint means the same as none (section 6.2 rule 6); send neither.
    encoded = _opt_bytes(value)
    return encoded or None


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
    if value < 0:
        raise ValueError(f"{what} must not be negative")
    return encode_u64(value)


def _mode(value: ModeArg) -> int:
    if isinstance(value, str):
        for code, name in ((1, "session"), (2, "pair")):
            if value == name:
                return code
        raise ValueError(f"mode must be 'session' or 'pair', not {value!r}")
    return value


def _claims(value: Mapping[str, Any] | str | None) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value  # sent as given: idempotent repeats compare claims byte for byte
    else:
        text = json.dumps(dict(value), separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    return encode_string(text)


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
                     max_frame_size=f.u64(Tag.MAX_FRAME_SIZE))


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
    return VerifyResult(
        status=response.status,
        renewed=renewed,
        mode=f.u8(Tag.MODE),
        subject=f.string(Tag.SUBJECT),
        session_id=f.string(Tag.SESSION_ID),
        claims=claims,
        claims_json=claims_json,
        expires_at=f.u64(Tag.EXPIRES_AT),
        token_expires_at=f.u64(Tag.TOKEN_EXPIRES_AT),
    )


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
    return Call(Request(Opcode.HELLO, request_fields((Tag.CLIENT_NAME, _opt_string(client_name)))),
                _decode_hello)


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
    fields = request_fields(
        (Tag.MODE, encode_u8(_mode(mode))),
        (Tag.SUBJECT, encode_string(subject)),
        (Tag.FINGERPRINT, _fingerprint(fingerprint)),
        (Tag.AUDIENCE, _opt_string(audience)),
        (Tag.CLAIMS, _claims(claims)),
        (Tag.IDEMPOTENCY_KEY, _opt_bytes(idempotency_key)),
        (Tag.TTL, _seconds(ttl, "ttl")),
        (Tag.REFRESH_TTL, _seconds(refresh_ttl, "refresh_ttl")),
        (Tag.MAX_LIFETIME, _seconds(max_lifetime, "max_lifetime")),
    )
    return Call(Request(Opcode.ISSUE, fields), _decode_issue)


def _token_request(opcode: Opcode, token: str, fingerprint: bytes | str | None) -> Request:
    return Request(opcode, request_fields((Tag.TOKEN, encode_string(token)),
                                          (Tag.FINGERPRINT, _fingerprint(fingerprint))))


def verify(token: str, fingerprint: bytes | str | None = None) -> Call[VerifyResult]:
    return Call(_token_request(Opcode.VERIFY, token, fingerprint), _decode_verify)


def renew(token: str, fingerprint: bytes | str | None = None) -> Call[VerifyResult]:
    return Call(_token_request(Opcode.RENEW, token, fingerprint), _decode_verify)


def refresh(token: str, fingerprint: bytes | str | None = None) -> Call[IssueResult]:
    return Call(_token_request(Opcode.REFRESH, token, fingerprint), _decode_issue)


def revoke(token: str | None = None, *, session_id: str | None = None,
           subject: str | None = None) -> Call[RevokeResult]:
    given = sum(value is not None for value in (token, session_id, subject))
    if given != 1:
        raise ValueError("revoke takes exactly one of token, session_id and subject")
    fields = request_fields((Tag.TOKEN, _opt_string(token)),
                            (Tag.SESSION_ID, _opt_string(session_id)),
                            (Tag.SUBJECT, _opt_string(subject)))
    return Call(Request(Opcode.REVOKE, fields), _decode_revoke)


def stats() -> Call[Stats]:
    return Call(Request(Opcode.STATS), _decode_stats)


def sessions(subject: str | None = None, *, cursor: str | None = None,
             limit: int | None = None) -> Call[SessionsPage]:
    fields = request_fields((Tag.SUBJECT, _opt_string(subject)),
                            (Tag.CURSOR, _opt_string(cursor)),
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
