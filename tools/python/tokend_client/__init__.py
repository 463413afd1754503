"""Python client for tokend, the local JWT token daemon (protocol version 1, proto-spec.md).

::

    from tokend_client import Client, ServiceUnavailable, TokenRefused

    tokend = Client("/run/tokend/tokend.sock")     # one per process, shared by its threads
    login = tokend.issue("alice", fingerprint=user_agent)
    try:
        check = tokend.verify(login.token, fingerprint=user_agent)
    except TokenRefused as refusal:    # expired, revoked, ...: 401, log in again
        print(refusal.name)            # e.g. "session_expired"
    except ServiceUnavailable:         # store_unavailable, connection lost, timeout: 503
        ...

:mod:`tokend_client.aio` has the same client for asyncio. Standard library only; Python 3.11+.
"""

from . import messages, protocol
from ._version import __version__
from .client import DEFAULT_CLIENT_NAME, Client, Pending, Pipeline, default_socket_path
from .errors import (
    BadRequest,
    BadSignature,
    ConnectionLostError,
    DaemonUnreachableError,
    Expired,
    FingerprintMismatch,
    Forbidden,
    InternalError,
    MalformedToken,
    MaxLifetimeReached,
    ProtocolError,
    RequestRefused,
    RequestTooLargeError,
    ReuseDetected,
    Revoked,
    ServiceUnavailable,
    SessionExpired,
    SessionUnknown,
    StoreUnavailable,
    TokendClientError,
    TokendError,
    TokendTimeoutError,
    TokenRefused,
    TooLarge,
    UnknownOperation,
    UnsupportedVersion,
    WrongTokenType,
)
from .fingerprint import http_fingerprint
from .messages import Call
from .models import (
    HelloInfo,
    IssueResult,
    KeyInfo,
    NearCacheStats,
    RevokeResult,
    SessionInfo,
    SessionsPage,
    SnapshotResult,
    Stats,
    VerifyResult,
)
from .protocol import PROTOCOL_VERSION, Opcode, Request, Response, Status, Tag, status_name

__all__ = [
    "BadRequest",
    "BadSignature",
    "Call",
    "Client",
    "ConnectionLostError",
    "DEFAULT_CLIENT_NAME",
    "DaemonUnreachableError",
    "Expired",
    "FingerprintMismatch",
    "Forbidden",
    "HelloInfo",
    "InternalError",
    "IssueResult",
    "KeyInfo",
    "MalformedToken",
    "MaxLifetimeReached",
    "NearCacheStats",
    "Opcode",
    "PROTOCOL_VERSION",
    "Pending",
    "Pipeline",
    "ProtocolError",
    "Request",
    "RequestRefused",
    "RequestTooLargeError",
    "Response",
    "ReuseDetected",
    "RevokeResult",
    "Revoked",
    "ServiceUnavailable",
    "SessionExpired",
    "SessionInfo",
    "SessionUnknown",
    "SessionsPage",
    "SnapshotResult",
    "Stats",
    "Status",
    "StoreUnavailable",
    "Tag",
    "TokenRefused",
    "TokendClientError",
    "TokendError",
    "TokendTimeoutError",
    "TooLarge",
    "UnknownOperation",
    "UnsupportedVersion",
    "VerifyResult",
    "WrongTokenType",
    "__version__",
    "default_socket_path",
    "http_fingerprint",
    "messages",
    "protocol",
    "status_name",
]
