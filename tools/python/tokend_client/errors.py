"""Errors raised by the tokend client.

::

    TokendClientError
    ├── TokendError            the daemon refused a request (any status but ok/renewed)
    ├── ProtocolError          the daemon's bytes do not follow proto-spec.md
    ├── ConnectionLostError    the connection closed with requests unanswered (outcome unknown)
    ├── DaemonUnreachableError the socket could not be opened
    ├── TokendTimeoutError     the daemon made no progress within the timeout
    └── RequestTooLargeError   a request body above the daemon's max_frame_size (nothing sent)
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConnectionLostError",
    "DaemonUnreachableError",
    "ProtocolError",
    "RequestTooLargeError",
    "TokendClientError",
    "TokendError",
    "TokendTimeoutError",
]


class TokendClientError(Exception):
    """Base class of every error this package raises on purpose."""


class TokendError(TokendClientError):
    """A refusal: the daemon answered with a status other than ``ok`` or ``renewed``.

    ``status`` is the numeric code, ``name`` its lower_snake name as in proto-spec.md section 9
    (``status_<code>`` for a code this client does not know, as tokenctl prints it), and
    ``message`` the daemon's human-readable reason (empty when it sent none). Compare by
    ``status`` or ``name``, never by ``message``: the text may change at any time.
    """

    status: int
    name: str
    message: str
    opcode: int
    request_id: int

    def __init__(self, status: int, name: str, message: str = "", *, opcode: int = 0,
                 request_id: int = 0) -> None:
        super().__init__(f"{name} ({status}): {message}" if message else f"{name} ({status})")
        self.status = status
        self.name = name
        self.message = message
        self.opcode = opcode
        self.request_id = request_id


class ProtocolError(TokendClientError):
    """The daemon sent something this protocol does not allow: a frame or body that cannot be
    parsed, a malformed field sequence, a duplicate field, a missing or ill-typed field in a
    successful reply. After a framing error the client closes the connection (section 14.2)."""


class ConnectionLostError(TokendClientError, ConnectionError):
    """The connection closed before the request was answered. Its outcome is unknown: it may or
    may not have been carried out (proto-spec.md section 14.4 says which operations are safe to
    repeat). The next call opens a new connection.

    From :meth:`Client.send_many`, ``responses`` holds, in request order, the replies that did
    arrive and None for the others.
    """

    responses: list[Any]

    def __init__(self, message: str, *, responses: list[Any] | None = None) -> None:
        super().__init__(message)
        self.responses = responses if responses is not None else []


class DaemonUnreachableError(TokendClientError, ConnectionError):
    """The daemon's socket could not be opened (missing, refused, or no permission)."""


class TokendTimeoutError(TokendClientError, TimeoutError):
    """The daemon neither accepted nor sent a byte within the timeout. The connection is closed,
    since the stream may be left mid-frame; requests in flight have an unknown outcome."""


class RequestTooLargeError(TokendClientError, ValueError):
    """A request body is larger than the daemon's ``max_frame_size`` (section 4.2), so it was not
    sent: the daemon would answer ``too_large`` and close the connection."""
