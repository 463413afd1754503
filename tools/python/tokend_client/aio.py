"""The tokend client for asyncio: the operations, results and errors of
:class:`tokend_client.Client`, as coroutines.

::

    from tokend_client import ServiceUnavailable, TokenRefused
    from tokend_client.aio import Client

    tokend = Client("/run/tokend/tokend.sock", timeout=2.0)

    async def handle(token: str, user_agent: str) -> str:
        try:
            login = await tokend.verify(token, fingerprint=user_agent)
        except TokenRefused:           # 401
            ...
        except ServiceUnavailable:     # 503
            ...
        return login.subject

A client holds one connection per event loop, opened on first use there. Concurrent calls
(tasks) share it: each request is written at once with its own id and its task resumes when its
own reply comes, whatever order replies come in (section 13). The deadline, repeats of safe
operations after a lost connection and the errors are those of the threaded client.
"""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
import weakref
from dataclasses import replace
from types import TracebackType
from typing import Any, Literal, Mapping, Sequence, TypeVar

from . import messages
from ._wire import ClosedByClient, Slot, Wire, closed_by_client, lost, protocol_failure
from .client import (
    DEFAULT_CLIENT_NAME,
    DEFAULT_TIMEOUT,
    SNAPSHOT_TIMEOUT,
    _Default,
    check_frame_sizes,
    default_socket_path,
)
from .errors import (
    ConnectionLostError,
    DaemonUnreachableError,
    ProtocolError,
    TokendError,
    TokendTimeoutError,
)
from .messages import Call, ModeArg, Seconds
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
from .near_cache import (
    DEFAULT_NEAR_CACHE_SIZE,
    NearCache,
    NearCacheMode,
    cache_key,
    check_options,
    combined,
)
from .protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_RESPONSE_SIZE,
    PROTOCOL_VERSION,
    FrameReader,
    Opcode,
    Request,
    Response,
    decode_response,
    opcode_name,
)

__all__ = ["Client"]

T = TypeVar("T")

_Outcome = Response | TokendError


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


class _Connection(asyncio.Protocol):
    """One connection on one event loop: replies are matched to the futures of their calls as
    they are read. With a near cache, the connection has its own (``near``): invalidation frames
    are applied to it in :meth:`data_received`, in stream order, and it is flushed when the
    connection ends."""

    def __init__(self, max_response_size: int, near_cache_size: int | None = None,
                 on_end: Any = None) -> None:
        self.wire = Wire()
        self._reader = FrameReader(max_response_size)
        self._transport: asyncio.Transport | None = None
        self._failed = False
        self._paused: asyncio.Future[None] | None = None
        self.near = NearCache(near_cache_size) if near_cache_size is not None else None
        if self.near is not None:
            self.wire.on_invalidate = self.near.invalidate
        self._poller: Any = None  # select.poll of the socket, for readable()
        self._on_end = on_end  # called once with this connection when it ends

    @property
    def alive(self) -> bool:
        return not self._failed and self._transport is not None

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self.near is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                self._poller = select.poll()
                self._poller.register(sock.fileno(), select.POLLIN)

    def readable(self) -> bool:
        """Whether the socket holds bytes the event loop has not read yet (or its end): the
        near cache's strict mode then asks the daemon rather than the cache. Unknown (no
        socket to poll): True."""
        if self._poller is None:
            return True
        return bool(self._poller.poll(0))

    def data_received(self, data: bytes) -> None:
        try:
            self._reader.feed(data)
            for body in self._reader.bodies():
                slot = self.wire.dispatch(decode_response(body))
                if slot is not None:
                    self._complete(slot)
        except ProtocolError as exc:
            self._fail(protocol_failure(str(exc)))

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost ends the calls

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self.wire.lost_reason() if exc is None else (
            f"the connection failed: {exc!r}; outcome unknown")
        self._fail(lost(reason))

    def pause_writing(self) -> None:
        if self._paused is None:
            self._paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    # --- calls ----------------------------------------------------------------------------------

    def _complete(self, slot: Slot) -> None:
        future = slot.waiter
        if future is not None and not future.done():
            future.set_result(None)

    def _fail(self, make_error: Any) -> None:
        first, self._failed = not self._failed, True
        if first and self.near is not None:
            self.near.flush()  # rule 4
            if self._on_end is not None:
                self._on_end(self)
        for slot in self.wire.fail_all(make_error):
            self._complete(slot)
        paused, self._paused = self._paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if not self._failed:
            self._fail(closed_by_client)

    async def exchange(self, requests: Sequence[Request],
                       deadline: float | None) -> list[_Outcome]:
        loop = asyncio.get_running_loop()
        transport = self._transport
        assert transport is not None and not self._failed
        slots: list[Slot] = []
        frames = bytearray()
        for request in requests:
            slot = Slot(request.opcode, loop.create_future())
            frames += request.encode(self.wire.register(slot))
            slots.append(slot)
        transport.write(frames)
        futures = [slot.waiter for slot in slots]
        try:
            if self._paused is not None:
                # The daemon reads slower than we write: wait for it (within the deadline).
                await asyncio.wait([self._paused], timeout=_remaining(deadline))
            if len(futures) == 1:
                try:
                    async with asyncio.timeout(_remaining(deadline)):
                        await futures[0]
                except TimeoutError:
                    pass
            else:
                await asyncio.wait(futures, timeout=_remaining(deadline))
        finally:
            for slot in slots:
                if not slot.done:
                    slot.waiter = None  # a late reply is dropped; the id stays reserved
        results: list[_Outcome] = []
        timed_out: TokendTimeoutError | None = None
        for slot in slots:
            outcome = slot.outcome()
            if outcome is None:
                if timed_out is None:
                    timed_out = TokendTimeoutError(
                        "no answer from tokend within the call's deadline "
                        f"({opcode_name(slot.opcode)})")
                outcome = timed_out
            results.append(outcome)
        return results


class Client:
    """An asyncio connection to tokend (one per event loop), shared by any number of tasks.

    Arguments, attributes, operations, results and errors are those of
    :class:`tokend_client.Client`; the operations are coroutines. ``timeout`` is each call's
    deadline, waiting for the connection, connecting and a repeat after a lost connection
    included.

    ``await client.close()`` (or leaving ``async with``) closes its connections; a later call
    opens a new one. Close it in each event loop that used it before the loop ends (in an ASGI
    app, at lifespan shutdown; with ``asyncio.run``, at the end of the coroutine): asyncio
    cannot close a connection of a loop that has ended, which is then only reclaimed by the
    garbage collector, with a ResourceWarning.

    ``near_cache``, ``near_cache_size``: as for :class:`tokend_client.Client`; each event loop's
    connection has a cache of its own (of that size), dropped when the connection ends.
    Invalidation frames are applied by the protocol's ``data_received``, that is as soon as
    the event loop reads them. ``near_cache_mode``:

    - ``"strict"`` (default): an answer comes from the cache only when the socket holds
      nothing the loop has not read yet (a ``poll`` with no timeout); otherwise the verify goes
      to the daemon. Every frame the daemon wrote before the verify began has then been read
      and applied, so read-your-revocations holds as in the threaded client.
    - ``"reader"``: no ``poll``; the cache answers with the frames the loop has read so far. A
      frame that arrived after the loop last polled its sockets is not seen until the loop's
      next I/O phase: a verify answered from the cache before it, by a task that was already
      running or ready, may be stale (for as long as the callbacks ahead of the loop's next
      poll take to run). Revocations made through this same connection are always seen (their
      frame precedes their reply in the stream).
    """

    def __init__(self, socket_path: str | os.PathLike[str] | None = None, *,
                 timeout: float | None = DEFAULT_TIMEOUT,
                 client_name: str | None = DEFAULT_CLIENT_NAME,
                 negotiate: bool = True,
                 max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
                 near_cache: bool = False,
                 near_cache_size: int = DEFAULT_NEAR_CACHE_SIZE,
                 near_cache_mode: NearCacheMode = "strict") -> None:
        if near_cache:
            check_options(near_cache_size, near_cache_mode)
        self._near_size: int | None = near_cache_size if near_cache else None
        self._near_strict = near_cache_mode == "strict"
        self.near_cache_mode: NearCacheMode | None = near_cache_mode if near_cache else None
        """``"strict"`` or ``"reader"`` with the near cache, None without."""
        self._near_ended = NearCacheStats()  # the counters of the connections that ended
        self.socket_path = os.fspath(socket_path if socket_path is not None
                                     else default_socket_path())
        self.timeout = timeout
        self.client_name = client_name
        self.negotiate = negotiate
        self._max_response_size = max_response_size
        # Per event loop; a loop of another thread may touch them at the same time.
        self._registry = threading.Lock()
        self._connections: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Connection] = (
            weakref.WeakKeyDictionary())
        self._open_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary())
        self.server: HelloInfo | None = None
        """What the latest ``hello`` said (None before one)."""
        self.max_frame_size = DEFAULT_MAX_FRAME_SIZE
        """The largest request body the daemon takes, learned from ``hello``."""

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "connected" if self.connected else "idle"
        return f"<tokend_client.aio.Client {self.socket_path!r} {state}>"

    @property
    def connected(self) -> bool:
        """Whether this event loop's connection is open."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        with self._registry:
            conn = self._connections.get(loop)
        return conn is not None and conn.alive

    def near_cache_stats(self) -> NearCacheStats | None:
        """The near cache's counters, added up over every connection this client opened (in
        any event loop); ``entries`` and ``tracking`` are those of the open connections. None
        when the near cache is off."""
        if self._near_size is None:
            return None
        with self._registry:
            ended = self._near_ended
            live = [conn.near for conn in self._connections.values()
                    if conn.alive and conn.near is not None]
        return combined([ended, *(near.stats() for near in live)])

    def _near_connection_ended(self, conn: _Connection) -> None:
        if conn.near is not None:
            ended = replace(conn.near.stats(), entries=0, tracking=False)
            with self._registry:
                self._near_ended = combined([self._near_ended, ended])

    async def connect(self) -> None:
        """Open this event loop's connection now, negotiating if enabled."""
        await self._connection(_deadline(self.timeout))

    async def close(self) -> None:
        """Close this event loop's connection, and ask the other running loops to close theirs;
        calls in flight end with :class:`ConnectionLostError` (not repeated). The client stays
        usable: a later call opens a new connection."""
        current: asyncio.AbstractEventLoop | None
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        with self._registry:
            connections = list(self._connections.items())
            self._connections.clear()
        for loop, conn in connections:
            if loop is current:
                conn.close()
            elif not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(conn.close)
                except RuntimeError:
                    pass  # closed meanwhile

    # --- operations ---------------------------------------------------------------------------

    async def hello(self, client_name: str | None = None) -> HelloInfo:
        """Identify this client and learn the daemon's version, limits and settings (12.1)."""
        info = await self._run(messages.hello(client_name if client_name is not None
                                              else self.client_name))
        self._apply_hello(info)
        return info

    async def ping(self) -> None:
        """Liveness (12.2)."""
        await self._run(messages.ping())

    async def issue(self, subject: str, mode: ModeArg = "session", *,
                    fingerprint: bytes | str | None = None,
                    audience: str | None = None,
                    claims: Mapping[str, Any] | str | None = None,
                    idempotency_key: bytes | str | None = None,
                    ttl: Seconds | None = None,
                    refresh_ttl: Seconds | None = None,
                    max_lifetime: Seconds | None = None) -> IssueResult:
        """Create a login (12.3; issue role). Not repeated after a lost connection: see
        :meth:`tokend_client.Client.issue`."""
        return await self._run(messages.issue(
            subject, mode, fingerprint=fingerprint, audience=audience, claims=claims,
            idempotency_key=idempotency_key, ttl=ttl, refresh_ttl=refresh_ttl,
            max_lifetime=max_lifetime))

    async def verify(self, token: str, fingerprint: bytes | str | None = None, *,
                     refresh_token: str | None = None) -> VerifyResult:
        """Check a session or access token (12.4); may slide the session (``renewed``). With
        ``refresh_token``, an expired access token's pair is rotated (``refreshed``, the new
        pair in the result): see :meth:`tokend_client.Client.verify`. Not repeated after a lost
        connection when it carries a refresh token (the caller retries it, as for
        ``refresh``). With the near cache, answers may come from it (``local`` true; see the
        class)."""
        if self._near_size is None:
            return await self._run(messages.verify(token, fingerprint,
                                                   refresh_token=refresh_token))
        key = cache_key(token, fingerprint)
        loop = asyncio.get_running_loop()
        with self._registry:
            conn = self._connections.get(loop)
        counted = False
        if conn is not None and conn.alive and conn.near is not None:
            if self._near_strict and len(conn.near) and conn.readable():
                pass  # unread bytes may hold a frame: the daemon answers this one
            else:
                answer = conn.near.lookup(key)
                if answer is not None:
                    return answer
                counted = True
        call = messages.verify(token, fingerprint, refresh_token=refresh_token)
        deadline = _deadline(self.timeout)
        conn = await self._connection(deadline)
        near = conn.near
        assert near is not None
        if not counted:
            near.miss()
        generation = near.generation  # rule 2: read before the request is sent
        result = await self._run(call, deadline=deadline)
        near.store(key, result, generation)
        return result

    async def renew(self, token: str, fingerprint: bytes | str | None = None) -> VerifyResult:
        """Touch a session explicitly (12.5; session tokens only)."""
        return await self._run(messages.renew(token, fingerprint))

    async def refresh(self, token: str, fingerprint: bytes | str | None = None) -> IssueResult:
        """Trade a refresh token for a new pair (12.6). Not repeated after a lost connection;
        on a lost or timed-out reply, retry with the same refresh token and fingerprint (the
        same new pair comes back while it is unused): see
        :meth:`tokend_client.Client.refresh`."""
        return await self._run(messages.refresh(token, fingerprint))

    async def revoke(self, token: str | None = None, *, session_id: str | None = None,
                     subject: str | None = None) -> RevokeResult:
        """End logins (12.7): by ``token``, ``session_id`` or ``subject``; exactly one."""
        return await self._run(messages.revoke(token, session_id=session_id, subject=subject))

    async def stats(self) -> Stats:
        """The daemon's counters (12.8; admin role)."""
        return await self._run(messages.stats())

    async def sessions(self, subject: str | None = None, *, cursor: str | None = None,
                       limit: int | None = None) -> SessionsPage:
        """One page of sessions and families (12.9; admin role)."""
        return await self._run(messages.sessions(subject, cursor=cursor, limit=limit))

    async def all_sessions(self, *, limit: int = 100) -> list[SessionInfo]:
        """Every session and family, page by page."""
        result: list[SessionInfo] = []
        cursor: str | None = None
        while True:
            page = await self.sessions(cursor=cursor, limit=limit)
            result.extend(page.sessions)
            if page.next_cursor is None:
                return result
            cursor = page.next_cursor

    async def keys_list(self) -> list[KeyInfo]:
        """The daemon's keys (12.10; admin role)."""
        return await self._run(messages.keys_list())

    async def keys_jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (12.11)."""
        return await self._run(messages.keys_jwks())

    async def keys_rotate(self) -> KeyInfo:
        """Generate a new signing key (12.12; admin role)."""
        return await self._run(messages.keys_rotate())

    async def keys_reload(self) -> list[KeyInfo]:
        """Read the key directory again (12.14; admin role); the keys now held."""
        return await self._run(messages.keys_reload())

    async def metrics(self) -> str:
        """Every metric in the Prometheus text format (12.15; admin role)."""
        return await self._run(messages.metrics())

    async def snapshot(self, *, timeout: float | None = SNAPSHOT_TIMEOUT) -> SnapshotResult:
        """Write a snapshot now (12.13; admin role); waits up to ``timeout`` for it."""
        return await self._run(messages.snapshot(), deadline=_deadline(timeout))

    async def call(self, opcode: Opcode | int | str,
                   fields: Sequence[tuple[int, bytes]] = ()) -> Response:
        """Any operation, by opcode or name, with encoded fields; the response as it is."""
        return await self._run(messages.raw(opcode, tuple(fields)))

    async def send_many(self, requests: Sequence[Request]) -> list[Response]:
        """Pipeline raw requests and return the replies in request order, as
        :meth:`tokend_client.Client.send_many`."""
        results = await self._exchange(requests, _deadline(self.timeout))
        responses = [r if isinstance(r, Response) else None for r in results]
        for result in results:
            if isinstance(result, ConnectionLostError):
                raise ConnectionLostError(str(result), responses=responses)
            if isinstance(result, TokendError):
                raise result
        return [r for r in responses if r is not None]

    # --- internals ----------------------------------------------------------------------------

    async def _run(self, call: Call[T], *,
                   deadline: float | None | Literal[_Default.TIMEOUT] = _Default.TIMEOUT) -> T:
        limit = _deadline(self.timeout) if deadline is _Default.TIMEOUT else deadline
        (result,) = await self._exchange([call.request], limit)
        if (isinstance(result, ConnectionLostError) and call.safe_to_repeat
                and not isinstance(result, ClosedByClient)
                and (limit is None or time.monotonic() < limit)):
            (result,) = await self._exchange([call.request], limit)  # once, on a new connection
        if isinstance(result, TokendError):
            raise result
        return call.decode(result)

    def _apply_hello(self, info: HelloInfo) -> None:
        if info.protocol_version < PROTOCOL_VERSION:
            raise ProtocolError(f"the daemon reports protocol version {info.protocol_version}")
        self.server = info
        self.max_frame_size = info.max_frame_size

    async def _exchange(self, requests: Sequence[Request],
                        deadline: float | None) -> list[_Outcome]:
        if not requests:
            return []
        for _ in range(3):
            conn = await self._connection(deadline)
            check_frame_sizes(requests, self.max_frame_size)
            if conn.alive:
                return await conn.exchange(requests, deadline)
        raise ConnectionLostError("tokend keeps closing new connections")

    async def _connection(self, deadline: float | None) -> _Connection:
        loop = asyncio.get_running_loop()
        with self._registry:
            conn = self._connections.get(loop)
            if conn is not None and conn.alive:
                return conn
            lock = self._open_locks.get(loop)
            if lock is None:
                lock = self._open_locks[loop] = asyncio.Lock()
        try:
            async with asyncio.timeout(_remaining(deadline)):
                async with lock:
                    with self._registry:
                        conn = self._connections.get(loop)
                    if conn is not None and conn.alive:
                        return conn
                    conn = await self._open(loop, deadline)
                    with self._registry:
                        self._connections[loop] = conn
                    return conn
        except TimeoutError:
            raise TokendTimeoutError(
                f"no connection to tokend at {self.socket_path} within the call's deadline"
            ) from None

    async def _open(self, loop: asyncio.AbstractEventLoop,
                    deadline: float | None) -> _Connection:
        size, near_size = self._max_response_size, self._near_size
        on_end = self._near_connection_ended
        try:
            _, conn = await loop.create_unix_connection(
                lambda: _Connection(size, near_size, on_end), self.socket_path)
        except OSError as exc:
            raise DaemonUnreachableError(
                f"cannot connect to tokend at {self.socket_path}: {exc.strerror or exc}"
            ) from exc
        try:
            if self.negotiate:
                call = messages.hello(self.client_name)
                (result,) = await conn.exchange([call.request], deadline)
                if isinstance(result, TokendError):
                    raise result
                self._apply_hello(call.decode(result))
            if conn.near is not None:
                # Rule 1: track before any verify. A daemon that refuses it (one from before
                # 12.16) sends no cacheable_until: nothing is cached.
                (result,) = await conn.exchange([messages.track().request], deadline)
                if isinstance(result, TokendError):
                    raise result
                if result.ok:
                    conn.near.start_tracking()
        except BaseException:
            conn.close()
            raise
        return conn
