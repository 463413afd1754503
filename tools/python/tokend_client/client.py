"""A synchronous, pipelining client for tokend's Unix socket.

One :class:`Client` holds one connection, opened on first use (and again after the daemon
closed it, for example for being idle, section 14.3). Every write is interleaved with reads, so a
long pipeline never deadlocks against the daemon's flow control (section 13). Responses are
matched to requests by request id, never by position.
"""

from __future__ import annotations

import enum
import errno
import os
import selectors
import socket
import threading
from types import TracebackType
from typing import Any, Generic, Literal, Mapping, Sequence, TypeVar

from . import messages
from .errors import (
    ConnectionLostError,
    DaemonUnreachableError,
    ProtocolError,
    RequestTooLargeError,
    TokendClientError,
    TokendTimeoutError,
)
from .messages import Call, ModeArg, Seconds
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
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_RESPONSE_SIZE,
    PROTOCOL_VERSION,
    FrameReader,
    Opcode,
    Request,
    Response,
    Status,
    decode_response,
    opcode_name,
)

__all__ = ["Client", "Pending", "Pipeline", "default_socket_path"]

__version__ = "0.1.0"

T = TypeVar("T")

DEFAULT_CLIENT_NAME = f"tokend_client-python {__version__}"
DEFAULT_TIMEOUT = 10.0
SNAPSHOT_TIMEOUT = 300.0
_MAX_REQUEST_ID = 0xFFFF_FFFF
_RECV_SIZE = 256 * 1024
_SEND_CHUNK = 256 * 1024
_PEER_GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN)


def default_socket_path() -> str:
    """``$TOKEND_SOCKET``, else ``./tokend-data/tokend.sock`` (as tokenctl)."""
    return os.environ.get("TOKEND_SOCKET") or os.path.join("tokend-data", "tokend.sock")


class _Default(enum.Enum):
    TIMEOUT = "the client's timeout"


class _Lost(Exception):
    """Internal: the connection ended (EOF or reset) while requests were unanswered."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Client:
    """A connection to tokend.

    ``socket_path``: the daemon's socket (default :func:`default_socket_path`).
    ``timeout``: seconds the daemon may go without accepting or sending a byte while a request is
    outstanding (also the connect timeout); None waits forever.
    ``client_name``: sent in ``hello``. ``negotiate``: send ``hello`` on every new connection,
    check the version and learn ``max_frame_size`` (section 12.1; on by default).

    Refusals raise :class:`TokendError`; ``verify`` and ``renew`` return normally for ``ok`` and
    ``renewed`` (see :attr:`VerifyResult.renewed`). A client may be shared between threads: its
    calls are serialised. Use :meth:`pipeline` to have many requests in flight at once.
    """

    def __init__(self, socket_path: str | os.PathLike[str] | None = None, *,
                 timeout: float | None = DEFAULT_TIMEOUT,
                 client_name: str | None = DEFAULT_CLIENT_NAME,
                 negotiate: bool = True,
                 max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE) -> None:
        self.socket_path = os.fspath(socket_path if socket_path is not None
                                     else default_socket_path())
        self.timeout = timeout
        self.client_name = client_name
        self.negotiate = negotiate
        self._max_response_size = max_response_size
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._reader = FrameReader(max_response_size)
        self._next_id = 1
        self._in_flight: dict[int, int] = {}  # request id -> opcode
        self._answered: dict[int, Response] = {}
        self._notice: Response | None = None  # an opcode-0 reply about this connection
        self._closed = False
        self.server: HelloInfo | None = None
        """What the latest ``hello`` said (None before one)."""
        self.max_frame_size = DEFAULT_MAX_FRAME_SIZE
        """The largest request body the daemon takes: learned from ``hello``; without
        negotiation, the spec's default (65536) unless set by hand."""

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self._sock else "idle")
        return f"<tokend_client.Client {self.socket_path!r} {state}>"

    def connect(self) -> None:
        """Open the connection now (otherwise the first call does), negotiating if enabled."""
        with self._lock:
            self._ensure_connected()

    def close(self) -> None:
        """Close the connection. The client cannot be used afterwards."""
        with self._lock:
            self._closed = True
            self._drop_connection()

    @property
    def connected(self) -> bool:
        return self._sock is not None

    # --- operations ---------------------------------------------------------------------------

    def hello(self, client_name: str | None = None) -> HelloInfo:
        """Identify this client and learn the daemon's version and limits (12.1)."""
        info = self._run(messages.hello(client_name if client_name is not None
                                        else self.client_name))
        self._apply_hello(info)
        return info

    def ping(self) -> None:
        """Liveness (12.2)."""
        self._run(messages.ping())

    def issue(self, subject: str, mode: ModeArg = "session", *,
              fingerprint: bytes | str | None = None,
              audience: str | None = None,
              claims: Mapping[str, Any] | str | None = None,
              idempotency_key: bytes | str | None = None,
              ttl: Seconds | None = None,
              refresh_ttl: Seconds | None = None,
              max_lifetime: Seconds | None = None) -> IssueResult:
        """Create a login (12.3; issue role). ``claims`` is a mapping (sent as compact JSON) or
        JSON text sent as it is. ``ttl`` is the idle TTL (session) or access TTL (pair);
        overrides may only shorten the daemon's settings."""
        return self._run(messages.issue(
            subject, mode, fingerprint=fingerprint, audience=audience, claims=claims,
            idempotency_key=idempotency_key, ttl=ttl, refresh_ttl=refresh_ttl,
            max_lifetime=max_lifetime))

    def verify(self, token: str, fingerprint: bytes | str | None = None) -> VerifyResult:
        """Check a session or access token (12.4); may slide the session (``renewed``)."""
        return self._run(messages.verify(token, fingerprint))

    def renew(self, token: str, fingerprint: bytes | str | None = None) -> VerifyResult:
        """Touch a session explicitly (12.5; session tokens only)."""
        return self._run(messages.renew(token, fingerprint))

    def refresh(self, token: str, fingerprint: bytes | str | None = None) -> IssueResult:
        """Trade a refresh token for a new pair (12.6). The presented token is spent."""
        return self._run(messages.refresh(token, fingerprint))

    def revoke(self, token: str | None = None, *, session_id: str | None = None,
               subject: str | None = None) -> RevokeResult:
        """End logins (12.7): by ``token`` (anyone), ``session_id`` or ``subject`` (issue
        role). Exactly one must be given."""
        return self._run(messages.revoke(token, session_id=session_id, subject=subject))

    def stats(self) -> Stats:
        """The daemon's counters (12.8; admin role)."""
        return self._run(messages.stats())

    def sessions(self, subject: str | None = None, *, cursor: str | None = None,
                 limit: int | None = None) -> SessionsPage:
        """One page of sessions and families (12.9; admin role)."""
        return self._run(messages.sessions(subject, cursor=cursor, limit=limit))

    def all_sessions(self, *, limit: int = 100) -> list[SessionInfo]:
        """Every session and family, page by page."""
        result: list[SessionInfo] = []
        cursor: str | None = None
        while True:
            page = self.sessions(cursor=cursor, limit=limit)
            result.extend(page.sessions)
            if page.next_cursor is None:
                return result
            cursor = page.next_cursor

    def keys_list(self) -> list[KeyInfo]:
        """The daemon's keys (12.10; admin role)."""
        return self._run(messages.keys_list())

    def keys_jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (12.11)."""
        return self._run(messages.keys_jwks())

    def keys_rotate(self) -> KeyInfo:
        """Generate a new signing key (12.12; admin role)."""
        return self._run(messages.keys_rotate())

    def keys_reload(self) -> list[KeyInfo]:
        """Read the key directory again, as SIGHUP does (12.14; admin role); the keys now held."""
        return self._run(messages.keys_reload())

    def metrics(self) -> str:
        """Every metric in the Prometheus text format (12.15; admin role)."""
        return self._run(messages.metrics())

    def snapshot(self, *, timeout: float | None = SNAPSHOT_TIMEOUT) -> SnapshotResult:
        """Write a snapshot now (12.13; admin role); waits up to ``timeout`` for it."""
        return self._run(messages.snapshot(), timeout=timeout)

    def call(self, opcode: Opcode | int | str,
             fields: Sequence[tuple[int, bytes]] = ()) -> Response:
        """Send any operation, by opcode or name, with encoded ``(tag, value)`` fields, and return
        the response as it is (refusals included; see :meth:`Response.raise_for_status`)."""
        return self._run(messages.raw(opcode, tuple(fields)))

    def send_many(self, requests: Sequence[Request]) -> list[Response]:
        """Pipeline raw requests: write them all (reading meanwhile), match the replies by id,
        and return them in request order. Raises :class:`ConnectionLostError` if the connection
        closes first; its ``responses`` holds the replies that did arrive (None elsewhere)."""
        results = self._exchange(requests, self.timeout)
        responses = [r if isinstance(r, Response) else None for r in results]
        for result in results:
            if isinstance(result, TokendClientError):
                raise ConnectionLostError(str(result), responses=responses)
        return [r for r in responses if r is not None]

    def pipeline(self) -> Pipeline:
        """A batch of requests sent together; see :class:`Pipeline`."""
        return Pipeline(self)

    # --- internals ----------------------------------------------------------------------------

    def _run(self, call: Call[T], *,
             timeout: float | None | Literal[_Default.TIMEOUT] = _Default.TIMEOUT) -> T:
        wait = self.timeout if timeout is _Default.TIMEOUT else timeout
        (result,) = self._exchange([call.request], wait)
        if isinstance(result, TokendClientError):
            raise result
        return call.decode(result)

    def _apply_hello(self, info: HelloInfo) -> None:
        if info.protocol_version < PROTOCOL_VERSION:
            raise ProtocolError(f"the daemon reports protocol version {info.protocol_version}")
        self.server = info
        self.max_frame_size = info.max_frame_size

    def _exchange(self, requests: Sequence[Request],
                  timeout: float | None) -> list[Response | TokendClientError]:
        with self._lock:
            self._ensure_connected()
            return self._exchange_connected(requests, timeout)

    def _ensure_connected(self) -> None:
        if self._closed:
            raise TokendClientError("this client is closed")
        if self._sock is not None:
            self._poll_idle()
        if self._sock is None:
            self._open()

    def _open(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except socket.timeout:
            sock.close()
            raise TokendTimeoutError(f"connecting to {self.socket_path} timed out") from None
        except OSError as exc:
            sock.close()
            raise DaemonUnreachableError(
                f"cannot connect to tokend at {self.socket_path}: {exc.strerror or exc}") from exc
        sock.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(sock, selectors.EVENT_READ)
        self._sock, self._selector = sock, selector
        self._reader = FrameReader(self._max_response_size)
        self._notice = None
        if not self.negotiate:
            return
        try:
            call = messages.hello(self.client_name)
            (result,) = self._exchange_connected([call.request], self.timeout)
            if isinstance(result, TokendClientError):
                raise result
            self._apply_hello(call.decode(result))
        except BaseException:
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        if self._selector is not None:
            self._selector.close()
        if self._sock is not None:
            self._sock.close()
        self._sock = None
        self._selector = None
        self._in_flight.clear()
        self._answered.clear()

    def _allocate_id(self) -> int:
        # Ids run 1..2^32-1 (0 is left to the opcode-0 replies, section 5.2), skipping any
        # still in flight.
        while True:
            request_id = self._next_id
            self._next_id = request_id + 1 if request_id < _MAX_REQUEST_ID else 1
            if request_id not in self._in_flight and request_id not in self._answered:
                return request_id

    def _exchange_connected(self, requests: Sequence[Request],
                            timeout: float | None) -> list[Response | TokendClientError]:
        for request in requests:
            if request.body_size > self.max_frame_size:
                raise RequestTooLargeError(
                    f"{opcode_name(request.opcode)} request body of {request.body_size} bytes "
                    f"exceeds the daemon's max_frame_size of {self.max_frame_size}")
        if len(requests) > _MAX_REQUEST_ID - len(self._in_flight):
            raise ValueError("too many requests for one connection's id space")
        out = bytearray()
        ids: list[int] = []
        for request in requests:
            request_id = self._allocate_id()
            self._in_flight[request_id] = request.opcode
            ids.append(request_id)
            out += request.encode(request_id)
        lost: ConnectionLostError | None = None
        try:
            self._pump(out, ids, timeout)
        except _Lost as exc:
            lost = ConnectionLostError(exc.reason)
        except BaseException:
            self._drop_connection()
            raise
        results: list[Response | TokendClientError] = []
        for request_id in ids:
            self._in_flight.pop(request_id, None)
            response = self._answered.pop(request_id, None)
            if response is not None:
                results.append(response)
            else:
                assert lost is not None
                results.append(lost)
        if lost is not None:
            self._drop_connection()
        return results

    def _pump(self, out: bytearray, ids: list[int], timeout: float | None) -> None:
        """Write ``out`` and read replies until every id in ``ids`` is answered."""
        sock, selector = self._sock, self._selector
        assert sock is not None and selector is not None
        view = memoryview(out)
        sent = 0
        can_write = True
        pending = set(ids)
        registered = selectors.EVENT_READ
        try:
            while pending:
                pending.difference_update(self._answered.keys())
                if not pending:
                    break
                want_write = can_write and sent < len(view)
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0)
                if events != registered:
                    selector.modify(sock, events)
                    registered = events
                ready = selector.select(timeout)
                if not ready:
                    raise TokendTimeoutError(
                        f"tokend sent nothing for {timeout} s with {len(pending)} request(s) "
                        "unanswered; connection closed")
                mask = ready[0][1]
                if mask & selectors.EVENT_WRITE:
                    try:
                        sent += sock.send(view[sent:sent + _SEND_CHUNK])
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as exc:
                        if exc.errno not in _PEER_GONE:
                            raise
                        can_write = False  # the daemon closed; read what it answered first
                if mask & selectors.EVENT_READ:
                    self._read_available()
        finally:
            if registered != selectors.EVENT_READ and self._selector is not None:
                selector.modify(sock, selectors.EVENT_READ)

    def _read_available(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            data = sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno not in _PEER_GONE:
                raise
            data = b""
        if not data:
            raise _Lost(self._lost_reason())
        self._reader.feed(data)
        for body in self._reader.bodies():
            self._dispatch(decode_response(body))

    def _lost_reason(self) -> str:
        if self._notice is not None and self._notice.status == Status.TOO_LARGE:
            return ("tokend closed the connection after a too_large reply "
                    f"({self._notice.message}); outcome unknown")
        return "tokend closed the connection before answering; outcome unknown"

    def _dispatch(self, response: Response) -> None:
        if response.is_connection_notice:
            if response.status == Status.TOO_LARGE:
                # The daemon answers what it read before, then closes (section 4.3).
                self._notice = response
                return
            raise ProtocolError(
                "tokend could not read one of this client's frames as a request: "
                f"{response.status_name}: {response.message}")
        opcode = self._in_flight.get(response.request_id)
        if opcode is None:
            return  # answers no request in flight: ignored (section 14.2)
        if response.opcode != opcode:
            raise ProtocolError(
                f"the reply to request {response.request_id} echoes opcode "
                f"{opcode_name(response.opcode)}, not {opcode_name(opcode)}")
        del self._in_flight[response.request_id]
        self._answered[response.request_id] = response

    def _poll_idle(self) -> None:
        """Before reusing an idle connection, notice whether the daemon closed it meanwhile
        (idle timeout, restart): then a new one is opened instead of failing the request."""
        sock = self._sock
        assert sock is not None
        try:
            while True:
                try:
                    data = sock.recv(_RECV_SIZE)
                except (BlockingIOError, InterruptedError):
                    return
                if not data:
                    break
                self._reader.feed(data)
                for body in self._reader.bodies():
                    self._dispatch(decode_response(body))
        except OSError as exc:
            if exc.errno not in _PEER_GONE:
                self._drop_connection()
                raise
        except BaseException:
            self._drop_connection()
            raise
        self._drop_connection()


class Pending(Generic[T]):
    """The future result of one request of a :class:`Pipeline`."""

    __slots__ = ("_call", "_done", "_value", "_error")

    def __init__(self, call: Call[T]) -> None:
        self._call = call
        self._done = False
        self._value: T | None = None
        self._error: TokendClientError | None = None

    def _resolve(self, response: Response | TokendClientError) -> None:
        self._done = True
        if isinstance(response, TokendClientError):
            self._error = response
            return
        try:
            self._value = self._call.decode(response)
        except TokendClientError as exc:
            self._error = exc

    def _fail(self, error: TokendClientError) -> None:
        self._done, self._error = True, error

    @property
    def done(self) -> bool:
        return self._done

    @property
    def error(self) -> TokendClientError | None:
        """The refusal (:class:`TokendError`) or failure of this request, if any."""
        return self._error

    def result(self) -> T:
        """The decoded result; raises the request's error. Only after the pipeline ran."""
        if not self._done:
            raise RuntimeError("the pipeline has not been executed yet")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Pipeline:
    """Requests queued here are written together when :meth:`execute` runs (or the ``with``
    block ends), each with its own request id; replies are matched by id, whatever their order.
    Each queued call returns a :class:`Pending`; a refusal of one request does not affect the
    others. ::

        with client.pipeline() as p:
            checks = [p.verify(t) for t in tokens]
        for check in checks:
            if check.error is None:
                print(check.result().subject)
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._queue: list[Pending[Any]] = []
        self._executed = False

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None and not self._executed:
            self.execute()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, call: Call[T]) -> Pending[T]:
        if self._executed:
            raise RuntimeError("this pipeline has been executed already")
        pending = Pending(call)
        self._queue.append(pending)
        return pending

    def execute(self) -> list[Pending[Any]]:
        """Send every queued request and wait for all replies. A connection failure resolves
        the unanswered requests with :class:`ConnectionLostError`; a timeout or protocol error
        fails every request not yet answered and is raised."""
        if self._executed:
            raise RuntimeError("this pipeline has been executed already")
        self._executed = True
        if not self._queue:
            return []
        try:
            results = self._client._exchange([p._call.request for p in self._queue],
                                             self._client.timeout)
        except TokendClientError as exc:
            for pending in self._queue:
                pending._fail(exc)
            raise
        for pending, result in zip(self._queue, results):
            pending._resolve(result)
        return list(self._queue)

    # One method per operation, as on Client.

    def hello(self, client_name: str | None = None) -> Pending[HelloInfo]:
        return self.add(messages.hello(client_name))

    def ping(self) -> Pending[None]:
        return self.add(messages.ping())

    def issue(self, subject: str, mode: ModeArg = "session", *,
              fingerprint: bytes | str | None = None,
              audience: str | None = None,
              claims: Mapping[str, Any] | str | None = None,
              idempotency_key: bytes | str | None = None,
              ttl: Seconds | None = None,
              refresh_ttl: Seconds | None = None,
              max_lifetime: Seconds | None = None) -> Pending[IssueResult]:
        return self.add(messages.issue(
            subject, mode, fingerprint=fingerprint, audience=audience, claims=claims,
            idempotency_key=idempotency_key, ttl=ttl, refresh_ttl=refresh_ttl,
            max_lifetime=max_lifetime))

    def verify(self, token: str, fingerprint: bytes | str | None = None) -> Pending[VerifyResult]:
        return self.add(messages.verify(token, fingerprint))

    def renew(self, token: str, fingerprint: bytes | str | None = None) -> Pending[VerifyResult]:
        return self.add(messages.renew(token, fingerprint))

    def refresh(self, token: str, fingerprint: bytes | str | None = None) -> Pending[IssueResult]:
        return self.add(messages.refresh(token, fingerprint))

    def revoke(self, token: str | None = None, *, session_id: str | None = None,
               subject: str | None = None) -> Pending[RevokeResult]:
        return self.add(messages.revoke(token, session_id=session_id, subject=subject))

    def stats(self) -> Pending[Stats]:
        return self.add(messages.stats())

    def sessions(self, subject: str | None = None, *, cursor: str | None = None,
                 limit: int | None = None) -> Pending[SessionsPage]:
        return self.add(messages.sessions(subject, cursor=cursor, limit=limit))

    def keys_list(self) -> Pending[list[KeyInfo]]:
        return self.add(messages.keys_list())

    def keys_jwks(self) -> Pending[dict[str, Any]]:
        return self.add(messages.keys_jwks())

    def call(self, opcode: Opcode | int | str,
             fields: Sequence[tuple[int, bytes]] = ()) -> Pending[Response]:
        return self.add(messages.raw(opcode, tuple(fields)))
