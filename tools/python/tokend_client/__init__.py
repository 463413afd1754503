"""Python client for tokend, the local JWT token daemon (protocol version 1, proto-spec.md).

::

    from tokend_client import Client, TokendError

    with Client("/run/tokend/tokend.sock") as tokend:
        login = tokend.issue("alice", fingerprint=user_agent)
        try:
            check = tokend.verify(login.token, fingerprint=user_agent)
        except TokendError as refusal:
            print(refusal.name)          # e.g. "session_expired"

Standard library only; Python 3.11+.
"""

from . import messages, protocol
from .client import DEFAULT_CLIENT_NAME, Client, Pending, Pipeline, __version__, default_socket_path
from .errors import (
    ConnectionLostError,
    DaemonUnreachableError,
    ProtocolError,
    RequestTooLargeError,
    TokendClientError,
    TokendError,
    TokendTimeoutError,
)
from .messages import Call
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
from .protocol import PROTOCOL_VERSION, Opcode, Request, Response, Status, Tag, status_name

__all__ = [
    "DEFAULT_CLIENT_NAME",
    "PROTOCOL_VERSION",
    "Call",
    "Client",
    "ConnectionLostError",
    "DaemonUnreachableError",
    "HelloInfo",
    "IssueResult",
    "KeyInfo",
    "Opcode",
    "Pending",
    "Pipeline",
    "ProtocolError",
    "Request",
    "RequestTooLargeError",
    "Response",
    "RevokeResult",
    "SessionInfo",
    "SessionsPage",
    "SnapshotResult",
    "Stats",
    "Status",
    "Tag",
    "TokendClientError",
    "TokendError",
    "TokendTimeoutError",
    "VerifyResult",
    "__version__",
    "default_socket_path",
    "messages",
    "protocol",
    "status_name",
]
