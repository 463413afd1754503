"""The wire format of the tokend protocol, version 1 (proto-spec.md sections 4 to 9).

Frames in both directions::

    +------------------+-----------------------------------------------------------+
    | length u32 (BE)  | body                                                      |
    +------------------+-----------------------------------------------------------+
    request body:   version u8 | opcode u8 | request id u32 | fields...
    response body:  version u8 | opcode u8 | request id u32 | status u16 | fields...
    field:          tag u8 | length u32 | value (length bytes)

This module knows no sockets: it encodes requests and decodes responses and frames.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final, Iterable, Iterator, Mapping

from .errors import ProtocolError, TokendError, error_for_status

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "Fields",
    "FrameReader",
    "MODE_NAMES",
    "Opcode",
    "PROTOCOL_VERSION",
    "REPEATED_TAGS",
    "Request",
    "Response",
    "STATE_NAMES",
    "SUCCESS_STATUSES",
    "Status",
    "TAG_TYPES",
    "Tag",
    "ValueType",
    "decode_response",
    "encode_bool",
    "encode_fields",
    "encode_frame",
    "encode_response",
    "encode_string",
    "encode_u64",
    "encode_u8",
    "is_success",
    "opcode_name",
    "request_fields",
    "status_name",
]

PROTOCOL_VERSION: Final = 1
"""The protocol version this client speaks, and the only one it sends."""

REQUEST_HEADER_SIZE: Final = 6
RESPONSE_HEADER_SIZE: Final = 8
FIELD_HEADER_SIZE: Final = 5

DEFAULT_MAX_FRAME_SIZE: Final = 65536
"""The daemon's default largest request body (section 4.2), assumed until ``hello`` says."""

DEFAULT_MAX_RESPONSE_SIZE: Final = 64 * 1024 * 1024
"""This client's own limit on response bodies: generously above any request limit (4.2)."""

_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_FIELD_HEADER: Final = struct.Struct(">BI")
_REQUEST_HEADER: Final = struct.Struct(">BBI")
_FRAME_HEADER: Final = struct.Struct(">IBBI")  # length prefix and request header
_RESPONSE_HEADER: Final = struct.Struct(">BBIH")


class Opcode(enum.IntEnum):
    """Operations (section 12). The member name, lower-cased, is the operation's name.

    Adding an operation is one line here; :meth:`Client.call` can then send it by name.
    Opcodes a response echoes are kept as plain ints, so unknown ones still decode.
    """

    HELLO = 0x01
    PING = 0x02
    ISSUE = 0x03
    VERIFY = 0x04
    RENEW = 0x05
    REFRESH = 0x06
    REVOKE = 0x07
    TRACK = 0x08
    INVALIDATE = 0x09  # sent by the daemon on tracking connections, never a request (12.17)
    STATS = 0x10
    SESSIONS = 0x11
    KEYS_LIST = 0x12
    KEYS_JWKS = 0x13
    KEYS_ROTATE = 0x14
    SNAPSHOT = 0x15
    KEYS_RELOAD = 0x16
    METRICS = 0x17

    @property
    def wire_name(self) -> str:
        """The operation's name as the spec and ``stats`` (``op.<name>``) spell it."""
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> Opcode:
        """The opcode of an operation name such as ``"keys_list"``; ``ValueError`` if unknown."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown operation name {name!r}") from None


class Status(enum.IntEnum):
    """Status codes (section 9). The member name, lower-cased, is the status name."""

    OK = 0
    RENEWED = 1
    EXPIRED = 2
    SESSION_EXPIRED = 3
    SESSION_UNKNOWN = 4
    REVOKED = 5
    FINGERPRINT_MISMATCH = 6
    REUSE_DETECTED = 7
    MAX_LIFETIME_REACHED = 8
    MALFORMED_TOKEN = 9
    BAD_SIGNATURE = 10
    WRONG_TOKEN_TYPE = 11
    FORBIDDEN = 12
    BAD_REQUEST = 13
    TOO_LARGE = 14
    UNSUPPORTED_VERSION = 15
    UNKNOWN_OPERATION = 16
    STORE_UNAVAILABLE = 17
    INTERNAL_ERROR = 18
    REFRESHED = 19

    @property
    def wire_name(self) -> str:
        """The lower_snake name of section 9, as ``tokenctl --json`` prints it."""
        return self.name.lower()


def opcode_name(code: int) -> str:
    """The operation name of an opcode, or ``0x..`` for one this client does not know."""
    try:
        return Opcode(code).wire_name
    except ValueError:
        return f"0x{code:02x}"


def status_name(code: int) -> str:
    """The status name of a code, or ``status_<code>`` for one this client does not know."""
    try:
        return Status(code).wire_name
    except ValueError:
        return f"status_{code}"


SUCCESS_STATUSES: Final = frozenset({Status.OK, Status.RENEWED, Status.REFRESHED})
"""``ok``, ``renewed`` and ``refreshed`` (verify with a refresh token, 12.4): section 9."""


def is_success(status: int) -> bool:
    """``ok``, ``renewed`` and ``refreshed`` are the only success statuses; anything else,
    unknown codes included, is a refusal (section 9)."""
    return status in SUCCESS_STATUSES


class Tag(enum.IntEnum):
    """Field tags (section 7). Tags are global: one name, type and meaning in every message."""

    MODE = 1
    SUBJECT = 2
    FINGERPRINT = 3
    AUDIENCE = 4
    CLAIMS = 5
    IDEMPOTENCY_KEY = 6
    TTL = 7
    REFRESH_TTL = 8
    MAX_LIFETIME = 9
    TOKEN = 10
    SESSION_ID = 11
    CURSOR = 12
    LIMIT = 13
    CLIENT_NAME = 14
    MESSAGE = 32
    SESSION_TOKEN = 33
    ACCESS_TOKEN = 34
    REFRESH_TOKEN = 35
    CLAIMS_JSON = 36
    EXPIRES_AT = 37
    RENEWED = 38
    TOKEN_EXPIRES_AT = 39
    REFRESH_EXPIRES_AT = 40
    MAX_EXPIRES_AT = 41
    CREATED_AT = 42
    STATE = 43
    COUNT = 44
    PROTOCOL_VERSION = 45
    SERVER_NAME = 46
    MAX_FRAME_SIZE = 47
    SESSION = 48
    NEXT_CURSOR = 49
    KEY = 50
    KID = 51
    ALGORITHM = 52
    SIGNING = 53
    JWKS = 54
    STAT = 55
    NAME = 56
    VALUE = 57
    METRICS = 58
    # hello's daemon settings (12.1): u64, seconds unless the name ends in _ms.
    DEDUP_WINDOW_MS = 59
    IDLE_TTL = 60
    RENEW_BELOW = 61
    RENEW_BY = 62
    ACCESS_TTL = 63
    REFRESH_TOKEN_TTL = 64
    MAX_LOGIN_LIFETIME = 65
    LEEWAY = 66
    STORE_HEALTHY = 67  # ping, hello
    CACHEABLE_UNTIL = 68  # verify replies on a tracking connection (12.16)
    FLUSH = 69  # invalidation frames (12.17)


class ValueType(enum.Enum):
    """Value types (section 6.3)."""

    U8 = "u8"
    BOOL = "bool"
    U64 = "u64"
    STRING = "string"
    JSON = "json"
    BYTES = "bytes"
    RECORD = "record"


TAG_TYPES: Final[Mapping[int, ValueType]] = {
    Tag.MODE: ValueType.U8,
    Tag.SUBJECT: ValueType.STRING,
    Tag.FINGERPRINT: ValueType.BYTES,
    Tag.AUDIENCE: ValueType.STRING,
    Tag.CLAIMS: ValueType.JSON,
    Tag.IDEMPOTENCY_KEY: ValueType.BYTES,
    Tag.TTL: ValueType.U64,
    Tag.REFRESH_TTL: ValueType.U64,
    Tag.MAX_LIFETIME: ValueType.U64,
    Tag.TOKEN: ValueType.STRING,
    Tag.SESSION_ID: ValueType.STRING,
    Tag.CURSOR: ValueType.STRING,
    Tag.LIMIT: ValueType.U64,
    Tag.CLIENT_NAME: ValueType.STRING,
    Tag.MESSAGE: ValueType.STRING,
    Tag.SESSION_TOKEN: ValueType.STRING,
    Tag.ACCESS_TOKEN: ValueType.STRING,
    Tag.REFRESH_TOKEN: ValueType.STRING,
    Tag.CLAIMS_JSON: ValueType.JSON,
    Tag.EXPIRES_AT: ValueType.U64,
    Tag.RENEWED: ValueType.BOOL,
    Tag.TOKEN_EXPIRES_AT: ValueType.U64,
    Tag.REFRESH_EXPIRES_AT: ValueType.U64,
    Tag.MAX_EXPIRES_AT: ValueType.U64,
    Tag.CREATED_AT: ValueType.U64,
    Tag.STATE: ValueType.U8,
    Tag.COUNT: ValueType.U64,
    Tag.PROTOCOL_VERSION: ValueType.U8,
    Tag.SERVER_NAME: ValueType.STRING,
    Tag.MAX_FRAME_SIZE: ValueType.U64,
    Tag.SESSION: ValueType.RECORD,
    Tag.NEXT_CURSOR: ValueType.STRING,
    Tag.KEY: ValueType.RECORD,
    Tag.KID: ValueType.STRING,
    Tag.ALGORITHM: ValueType.STRING,
    Tag.SIGNING: ValueType.BOOL,
    Tag.JWKS: ValueType.JSON,
    Tag.STAT: ValueType.RECORD,
    Tag.NAME: ValueType.STRING,
    Tag.VALUE: ValueType.U64,
    Tag.METRICS: ValueType.STRING,
    Tag.DEDUP_WINDOW_MS: ValueType.U64,
    Tag.IDLE_TTL: ValueType.U64,
    Tag.RENEW_BELOW: ValueType.U64,
    Tag.RENEW_BY: ValueType.U64,
    Tag.ACCESS_TTL: ValueType.U64,
    Tag.REFRESH_TOKEN_TTL: ValueType.U64,
    Tag.MAX_LOGIN_LIFETIME: ValueType.U64,
    Tag.LEEWAY: ValueType.U64,
    Tag.STORE_HEALTHY: ValueType.BOOL,
    Tag.CACHEABLE_UNTIL: ValueType.U64,
    Tag.FLUSH: ValueType.BOOL,
}

REPEATED_TAGS: Final = frozenset({Tag.SESSION, Tag.KEY, Tag.STAT})
"""The only tags that may appear more than once in a message (section 6.2 rule 3)."""

MODE_NAMES: Final[Mapping[int, str]] = {1: "session", 2: "pair"}
"""``mode(1)`` values (section 8)."""

STATE_NAMES: Final[Mapping[int, str]] = {1: "active", 2: "idle_expired", 3: "revoked"}
"""``state(43)`` values in session records (section 8)."""


# --- encoding -------------------------------------------------------------------------------

def encode_u8(value: int) -> bytes:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{value} does not fit in a u8")
    return bytes((value,))


def encode_bool(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


def encode_u64(value: int) -> bytes:
    if not 0 <= value <= 0xFFFF_FFFF_FFFF_FFFF:
        raise ValueError(f"{value} does not fit in a u64")
    return _U64.pack(value)


def encode_string(value: str) -> bytes:
    """UTF-8 without a terminator; a NUL is not allowed (section 6.3)."""
    if "\x00" in value:
        raise ValueError("a protocol string must not contain a NUL character")
    return value.encode("utf-8")


def encode_fields(fields: Iterable[tuple[int, bytes]]) -> bytes:
    """A field sequence (section 6.1), in the order given."""
    out = bytearray()
    for tag, value in fields:
        out += _FIELD_HEADER.pack(tag, len(value))
        out += value
    return bytes(out)


def encode_frame(body: bytes) -> bytes:
    """A frame: the body behind its u32 length."""
    return _U32.pack(len(body)) + body


@dataclass(frozen=True)
class Request:
    """One request without its id, which the client assigns when it sends it.

    ``fields`` are ``(tag, encoded value)`` pairs written in this order.
    """

    opcode: int
    fields: tuple[tuple[int, bytes], ...] = ()
    version: int = PROTOCOL_VERSION

    @cached_property
    def encoded_fields(self) -> bytes:
        """The field sequence, encoded once."""
        return encode_fields(self.fields)

    def body(self, request_id: int) -> bytes:
        return _REQUEST_HEADER.pack(self.version, self.opcode, request_id) + self.encoded_fields

    def encode(self, request_id: int) -> bytes:
        """The whole frame, length prefix included."""
        fields = self.encoded_fields
        return _FRAME_HEADER.pack(REQUEST_HEADER_SIZE + len(fields), self.version, self.opcode,
                                  request_id) + fields

    @property
    def body_size(self) -> int:
        return REQUEST_HEADER_SIZE + sum(FIELD_HEADER_SIZE + len(v) for _, v in self.fields)


def encode_response(opcode: int, request_id: int, status: int,
                    fields: Iterable[tuple[int, bytes]] = (), *,
                    version: int = PROTOCOL_VERSION) -> bytes:
    """A whole response frame. The client never sends one; tests and fake daemons do."""
    body = _RESPONSE_HEADER.pack(version, opcode, request_id, status) + encode_fields(fields)
    return encode_frame(body)


# --- decoding -------------------------------------------------------------------------------

def _tag_label(tag: int) -> str:
    try:
        return f"{Tag(tag).name.lower()}({tag})"
    except ValueError:
        return f"tag {tag}"


class Fields:
    """A decoded field sequence (section 6): raw values by tag, checked for well-formed lengths
    and for duplicates (rules 3 and 4). Values are typed only when read (rule 5), so a field this
    client does not read can carry anything. Unknown tags are skipped (rule 2), but unlike known
    tags they may repeat: a future version may add repeated tags.
    """

    __slots__ = ("_values", "_repeated")

    def __init__(self, values: dict[int, bytes], repeated: dict[int, list[bytes]]) -> None:
        self._values = values
        self._repeated = repeated

    @classmethod
    def parse(cls, data: bytes | memoryview) -> Fields:
        view = memoryview(data)
        values: dict[int, bytes] = {}
        repeated: dict[int, list[bytes]] = {}
        offset = 0
        end = len(view)
        while offset < end:
            if end - offset < FIELD_HEADER_SIZE:
                raise ProtocolError(
                    f"{end - offset} bytes left where a 5-byte field header should start")
            tag, length = _FIELD_HEADER.unpack_from(view, offset)
            offset += FIELD_HEADER_SIZE
            if length > end - offset:
                raise ProtocolError(
                    f"field {_tag_label(tag)} claims {length} bytes but {end - offset} remain")
            value = bytes(view[offset:offset + length])
            offset += length
            if tag in REPEATED_TAGS:
                repeated.setdefault(tag, []).append(value)
            elif tag in TAG_TYPES:
                if tag in values:
                    raise ProtocolError(f"field {_tag_label(tag)} appears more than once")
                values[tag] = value
            # Unknown tags are ignored (section 6.2 rule 2).
        return cls(values, repeated)

    def __contains__(self, tag: object) -> bool:
        return tag in self._values or tag in self._repeated

    def raw(self, tag: int) -> bytes | None:
        """The raw value of a known, non-repeated tag, or None when absent."""
        return self._values.get(tag)

    def _require(self, tag: int) -> bytes:
        value = self._values.get(tag)
        if value is None:
            raise ProtocolError(f"missing field {_tag_label(tag)}")
        return value

    # Typed readers: opt_* return None when the field is absent, the others require it.

    def opt_u8(self, tag: int) -> int | None:
        return None if tag not in self._values else self.u8(tag)

    def u8(self, tag: int) -> int:
        value = self._require(tag)
        if len(value) != 1:
            raise ProtocolError(f"field {_tag_label(tag)} is a u8 but has {len(value)} bytes")
        return value[0]

    def opt_boolean(self, tag: int) -> bool | None:
        return None if tag not in self._values else self.boolean(tag)

    def boolean(self, tag: int) -> bool:
        value = self._require(tag)
        if value == b"\x00":
            return False
        if value == b"\x01":
            return True
        raise ProtocolError(f"field {_tag_label(tag)} is a bool but holds {value.hex() or 'nothing'}")

    def opt_u64(self, tag: int) -> int | None:
        return None if tag not in self._values else self.u64(tag)

    def u64(self, tag: int) -> int:
        value = self._require(tag)
        if len(value) != 8:
            raise ProtocolError(f"field {_tag_label(tag)} is a u64 but has {len(value)} bytes")
        result: int = _U64.unpack(value)[0]
        return result

    def opt_string(self, tag: int) -> str | None:
        return None if tag not in self._values else self.string(tag)

    def string(self, tag: int) -> str:
        """A ``string`` or ``json`` value: valid UTF-8 without NUL (section 6.3)."""
        value = self._require(tag)
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"field {_tag_label(tag)} is not valid UTF-8") from None
        if "\x00" in text:
            raise ProtocolError(f"field {_tag_label(tag)} contains a NUL byte")
        return text

    def opt_bytes(self, tag: int) -> bytes | None:
        return self._values.get(tag)

    def records(self, tag: int) -> list[Fields]:
        """Every occurrence of a record tag, each parsed as a nested field sequence."""
        return [Fields.parse(value) for value in self._repeated.get(tag, [])]

    def tags(self) -> Iterator[int]:
        yield from self._values
        yield from self._repeated


@dataclass(frozen=True)
class Response:
    """One decoded response. ``fields`` has been checked for framing and duplicates only."""

    opcode: int
    request_id: int
    status: int
    fields: Fields = field(repr=False)
    version: int = PROTOCOL_VERSION

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    @property
    def ok(self) -> bool:
        """True for the success statuses: ``ok``, ``renewed`` and ``refreshed``."""
        return is_success(self.status)

    @property
    def message(self) -> str:
        """``message(32)``; refusals carry one, but a client tolerates its absence (section 9)."""
        return self.fields.opt_string(Tag.MESSAGE) or ""

    @property
    def is_connection_notice(self) -> bool:
        """The opcode-0, id-0 replies of sections 4.3 and 4.4, which answer no request."""
        return self.opcode == 0 and self.request_id == 0

    @property
    def is_invalidation(self) -> bool:
        """An invalidation frame (12.17): opcode ``invalidate`` (0x09), request id 0, sent by
        the daemon on a tracking connection; it answers no request."""
        return self.opcode == Opcode.INVALIDATE and self.request_id == 0

    def error(self) -> TokendError:
        """The exception for this refusal: a :class:`TokenRefused`, :class:`RequestRefused` or
        :class:`ServiceUnavailable` subclass by status (see :mod:`tokend_client.errors`)."""
        return error_for_status(self.status, self.status_name, self.message,
                                opcode=self.opcode, request_id=self.request_id)

    def raise_for_status(self) -> None:
        """Raise :meth:`error` unless the status is a success (``ok``, ``renewed``,
        ``refreshed``)."""
        if not self.ok:
            raise self.error()


def decode_response(body: bytes | memoryview) -> Response:
    """Decode a response body (a frame without its length prefix)."""
    if len(body) < RESPONSE_HEADER_SIZE:
        raise ProtocolError(f"response body of {len(body)} bytes is shorter than the 8-byte header")
    version, opcode, request_id, status = _RESPONSE_HEADER.unpack_from(body, 0)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"response in protocol version {version}; this client speaks 1")
    fields = Fields.parse(memoryview(body)[RESPONSE_HEADER_SIZE:])
    return Response(opcode=opcode, request_id=request_id, status=status, fields=fields,
                    version=version)


class FrameReader:
    """Reassembles frames from a byte stream (section 4.1), whatever the read boundaries."""

    def __init__(self, max_body_size: int = DEFAULT_MAX_RESPONSE_SIZE) -> None:
        self._buffer = bytearray()
        self._max_body_size = max_body_size

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_body(self) -> bytes | None:
        """The next complete body, or None when more bytes are needed."""
        if len(self._buffer) < 4:
            return None
        (length,) = _U32.unpack_from(self._buffer, 0)
        if length > self._max_body_size:
            raise ProtocolError(
                f"the daemon announced a {length}-byte frame, above this client's limit of "
                f"{self._max_body_size}")
        if len(self._buffer) < 4 + length:
            return None
        body = bytes(self._buffer[4:4 + length])
        del self._buffer[:4 + length]
        return body

    def bodies(self) -> Iterator[bytes]:
        while (body := self.next_body()) is not None:
            yield body

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def request_fields(*pairs: tuple[int, bytes | None]) -> tuple[tuple[int, bytes], ...]:
    """Drop the absent (None) values of ``(tag, value)`` pairs, keeping the order."""
    return tuple((tag, value) for tag, value in pairs if value is not None)
