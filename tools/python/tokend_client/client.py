"""A thread-safe, pipelining client for tokend's Unix socket.

One :class:`Client` holds one connection, opened on first use (and again after it was lost, for
example when the daemon closed it for being idle, section 14.3). Any number of threads call it at
once: each call gets its own request id and is written at once, and whichever caller is waiting
reads the replies for all of them, matching each to its request by id, whatever order they come
in (section 13). No call waits for another's reply, and every write is interleaved with reads,
so a long pipeline never deadlocks against the daemon's flow control.
"""

from __future__ import annotations

import enum
import errno
import math
import os
import select
import socket
import threading
import time
import weakref
from types import TracebackType
from typing import Any, Callable, Generic, Literal, Mapping, Sequence, TypeVar

from . import messages
from ._version import __version__
from ._wire import ClosedByClient, Slot, Wire, closed_by_client, lost, protocol_failure
from .errors import (
    ConnectionLostError,
    DaemonUnreachableError,
    ProtocolError,
    RequestTooLargeError,
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

__all__ = ["Client", "Pending", "Pipeline", "default_socket_path"]

T = TypeVar("T")

DEFAULT_CLIENT_NAME = f"tokend_client-python {__version__}"
DEFAULT_TIMEOUT = 10.0
SNAPSHOT_TIMEOUT = 300.0
_RECV_SIZE = 256 * 1024
_PEER_GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN)


def default_socket_path() -> str:
    """``$TOKEND_SOCKET``, else ``./tokend-data/tokend.sock`` (as tokenctl)."""
    return os.environ.get("TOKEND_SOCKET") or os.path.join("tokend-data", "tokend.sock")


class _Default(enum.Enum):
    TIMEOUT = "the client's timeout"


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _timeout_error(what: str) -> TokendTimeoutError:
    return TokendTimeoutError(f"no answer from tokend within the call's deadline ({what})")


def check_frame_sizes(requests: Sequence[Request], max_frame_size: int) -> None:
    for request in requests:
        if request.body_size > max_frame_size:
            raise RequestTooLargeError(
                f"{opcode_name(request.opcode)} request body of {request.body_size} bytes "
                f"exceeds the daemon's max_frame_size of {max_frame_size}")


class _Waiter:
    """What a calling thread sleeps on: a lock taken at creation and released (under the
    connection's lock, at most once per wait) when its requests are all answered, or when it is
    handed the reader's role."""

    __slots__ = ("_lock", "remaining", "signaled", "promoted")

    def __init__(self, count: int) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.remaining = count
        self.signaled = False
        self.promoted = False


class _Dead(Exception):
    """Internal: the connection ended before the request could be written; open another."""


class _Connection:
    """One socket shared by the calling threads, leader/follower style: no thread of its own.

    Each call writes its frames itself when the socket takes them. Then one waiting caller at a
    time, the reader, polls the socket: it writes what others could not and reads every reply,
    completing whichever calls they answer; the others sleep until their own replies come.
    When the reader's own reply has come (or its deadline passed), it hands the role to a
    caller still waiting. A lone caller thus sends, polls and reads itself, with no thread
    switch; with many callers, one read hands out many replies.

    With a near cache, the invalidation frames read are applied to it as they are read, and it
    is flushed when the connection ends or can no longer write. In strict mode, a caller about
    to answer from the cache first reads what the socket holds (:meth:`drain`); in reader mode,
    a thread of the connection's own holds the reader's role for good (:meth:`start_reader`).
    Bytes are taken from the socket and fed to the frame reader under ``_recv_lock``, so that
    two readers never interleave them.
    """

    def __init__(self, path: str, max_response_size: int, deadline: float | None,
                 near_cache: NearCache | None = None) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(_remaining(deadline))
            sock.connect(path)
        except socket.timeout:
            sock.close()
            raise TokendTimeoutError(f"connecting to {path} timed out") from None
        except OSError as exc:
            sock.close()
            raise DaemonUnreachableError(
                f"cannot connect to tokend at {path}: {exc.strerror or exc}") from exc
        sock.setblocking(False)
        self._sock = sock
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._poller = select.poll()
        self._poller.register(self._wake_r.fileno(), select.POLLIN)
        self._poller.register(sock.fileno(), select.POLLIN)
        self._watching_write = False
        self._lock = threading.Lock()
        self._wire = Wire()
        self._reader = FrameReader(max_response_size)
        self._out = bytearray()
        self._reading = False  # a caller holds the reader's role
        self._followers: dict[_Waiter, None] = {}  # callers asleep, in arrival order
        self._can_write = True
        self._failed = False
        self._fds_closed = False
        self._pid = os.getpid()
        self._recv_lock = threading.Lock()  # taken before _lock, never while holding it
        self._drainers = 0  # callers in drain(): the descriptors stay open for them
        self._near = near_cache
        self._near_dropped = False
        if near_cache is not None:
            self._wire.on_invalidate = near_cache.invalidate
            self._drain_poller = select.poll()
            self._drain_poller.register(sock.fileno(), select.POLLIN)

    @property
    def alive(self) -> bool:
        return not self._failed and self._can_write and self._pid == os.getpid()

    @property
    def wire(self) -> Wire:
        return self._wire

    # --- calls ----------------------------------------------------------------------------------

    def submit(self, requests: Sequence[Request], waiter: _Waiter) -> list[Slot]:
        """Register the requests and write what the socket takes now; the rest is written by
        the reader. Raises :class:`_Dead` when the connection is closed (nothing written)."""
        wake = False
        with self._lock:
            if self._failed or not self._can_write:
                raise _Dead()
            slots = []
            frames = bytearray()
            for request in requests:
                slot = Slot(request.opcode, waiter)
                frames += request.encode(self._wire.register(slot))
                slots.append(slot)
            if self._out:
                self._out += frames
                wake = self._reading
            else:
                try:
                    sent = self._sock.send(frames)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as exc:
                    # Nothing of these frames went out: take them back and let the caller open
                    # another connection. When the daemon closed this one (idle timeout,
                    # restart), replies to earlier requests are still read by their callers.
                    for slot in slots:
                        del self._wire.in_flight[slot.request_id]
                    self._can_write = False
                    self._drop_near_cache()
                    if exc.errno not in _PEER_GONE:
                        self._end_locked(lost(f"the connection failed: {exc}; outcome unknown"))
                    elif not self._wire.in_flight:
                        self._end_locked(lost(self._wire.lost_reason()))
                    raise _Dead() from None
                if sent < len(frames):
                    self._out += memoryview(frames)[sent:]
                    wake = self._reading
        if wake:
            self._wake()
        return slots

    def wait(self, waiter: _Waiter, deadline: float | None) -> None:
        """Return when the waiter's requests are all answered or the deadline has passed,
        reading for every caller meanwhile if no one else is."""
        while True:
            with self._lock:
                if waiter.remaining == 0:
                    return
                lead = not self._reading
                if lead:
                    self._reading = True
                else:
                    self._followers[waiter] = None
            if lead:
                self._lead_then_hand_over(waiter, deadline)
                return
            timeout = _remaining(deadline)
            try:
                got = waiter._lock.acquire(timeout=-1 if timeout is None else timeout)
            except BaseException:  # KeyboardInterrupt, ...: leave, and pass on a handed role
                with self._lock:
                    self._followers.pop(waiter, None)
                    promoted, waiter.promoted = waiter.promoted, False
                if promoted:
                    self._hand_over()
                raise
            with self._lock:
                self._followers.pop(waiter, None)
                if not got and waiter.signaled:
                    got = waiter._lock.acquire(blocking=False)  # signalled as it timed out
                waiter.signaled = False
                promoted, waiter.promoted = waiter.promoted, False
            if promoted:  # handed the reader's role (which it must pass on in any case)
                self._lead_then_hand_over(waiter, deadline)
                return
            if not got:
                return  # deadline

    def abandon(self, slots: Sequence[Slot]) -> None:
        """The caller stopped waiting: a late reply is dropped (its id stays reserved until it
        comes, so that it cannot be mistaken for another request's)."""
        with self._lock:
            for slot in slots:
                slot.waiter = None

    def close(self) -> None:
        with self._lock:
            self._end_locked(closed_by_client)
            reading = self._reading
        if reading:
            self._wake()

    def discard_after_fork(self) -> None:
        """In a forked child: drop the descriptors; the parent keeps using the connection."""
        self._failed = True
        self._close_fds()

    # --- the near cache -------------------------------------------------------------------------

    def drain(self) -> None:
        """Strict mode, before an answer from the near cache: read, without blocking, whatever
        the socket holds now, applying its invalidation frames and handing its replies to their
        callers (rule 5 of 12.16). A revocation acknowledged to anyone before this call began
        had its frame written to this socket first, so it is applied when this returns; so is
        the end of the connection (which flushes the cache)."""
        if self._failed:
            return
        read = False
        with self._recv_lock:
            with self._lock:
                if self._failed:
                    return
                self._drainers += 1
            try:
                while self._drain_poller.poll(0):
                    outcome = self._read_once()
                    read = read or outcome is not None
                    if not outcome:
                        break
            except (ProtocolError, OSError) as exc:
                self._end_on(exc)
            finally:
                with self._lock:
                    self._drainers -= 1
                    # A reader asleep in poll() may be waiting for bytes taken here.
                    wake = (read or self._failed) and self._reading
                    if self._failed and not self._reading and not self._drainers:
                        self._close_fds()
        if wake:
            self._wake()

    def start_reader(self) -> None:
        """Reader mode: a daemon thread takes the reader's role for as long as the connection
        lives, so that invalidation frames are applied as soon as it is scheduled after they
        arrive, even while every verify is answered from the cache. Callers then wait as
        followers (a thread switch per reply)."""
        thread = threading.Thread(target=self._read_until_closed, daemon=True,
                                  name="tokend-near-cache-reader")
        thread.start()

    def _read_until_closed(self) -> None:
        self.wait(_Waiter(1), None)  # a waiter no reply completes: returns when the connection ends

    def _drop_near_cache(self) -> None:  # under the lock
        if self._near is not None and not self._near_dropped:
            self._near_dropped = True
            self._near.flush()

    # --- the reader's role ------------------------------------------------------------------------

    def _signal(self, waiter: _Waiter) -> None:  # under the lock
        if not waiter.signaled:
            waiter.signaled = True
            waiter._lock.release()

    def _completed(self, slot: Slot) -> None:  # under the lock
        waiter = slot.waiter
        if waiter is None:
            return
        waiter.remaining -= 1
        if waiter.remaining == 0:
            self._followers.pop(waiter, None)
            self._signal(waiter)

    def _lead_then_hand_over(self, waiter: _Waiter, deadline: float | None) -> None:
        try:
            self._lead(waiter, deadline)
        finally:
            self._hand_over()

    def _hand_over(self) -> None:
        """Pass the reader's role to the longest-waiting caller, if any."""
        with self._lock:
            while self._followers:
                follower = next(iter(self._followers))
                del self._followers[follower]
                if follower.remaining > 0:
                    follower.promoted = True
                    self._signal(follower)
                    return
            self._reading = False
            if self._failed and not self._drainers:
                self._close_fds()

    def _lead(self, waiter: _Waiter, deadline: float | None) -> None:
        sock_fd = self._sock.fileno()
        try:
            while True:
                with self._lock:
                    if waiter.remaining == 0 or self._failed:
                        return
                    want_write = self._can_write and bool(self._out)
                timeout = _remaining(deadline)
                if timeout is not None and timeout <= 0:
                    return
                if want_write != self._watching_write:
                    self._poller.modify(sock_fd,
                                        select.POLLIN | (select.POLLOUT if want_write else 0))
                    self._watching_write = want_write
                events = self._poller.poll(None if timeout is None
                                           else math.ceil(timeout * 1000))
                for fd, mask in events:
                    if fd != sock_fd:
                        self._drain_wake()
                        continue
                    if mask & select.POLLOUT:
                        self._write()
                    if mask & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        with self._recv_lock:
                            # None: taken by drain() meanwhile, or a spurious wake-up.
                            if self._read_once() is False:
                                return
        except (ProtocolError, OSError) as exc:
            self._end_on(exc)

    def _read_once(self) -> bool | None:
        """One read (under ``_recv_lock``), its bytes handed to the wire. True: something was
        read; False: the connection ended; None: nothing was there."""
        data = self._recv()
        if data is None:
            return None
        if not data:
            with self._lock:
                self._end_locked(lost(self._wire.lost_reason()))
            return False
        self._received(data)
        return True

    def _end_on(self, exc: ProtocolError | OSError) -> None:
        """Ends the connection after a reply it could not parse or a failed read or write."""
        with self._lock:
            if isinstance(exc, ProtocolError):
                self._end_locked(protocol_failure(str(exc)))
            else:
                self._end_locked(lost(f"the connection failed: {exc}; outcome unknown"))

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # a wake-up is pending already, or the connection is gone

    def _write(self) -> None:
        with self._lock:
            if not self._out or self._failed:
                return
            try:
                sent = self._sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _PEER_GONE:
                    raise
                self._can_write = False  # the daemon closed; read what it answered first
                self._drop_near_cache()
                return
            del self._out[:sent]

    def _recv(self) -> bytes | None:
        """What the socket holds; b"" at the end of the stream; None when nothing is there."""
        try:
            return self._sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            if exc.errno not in _PEER_GONE:
                raise
            return b""

    def _received(self, data: bytes) -> None:
        self._reader.feed(data)
        responses = [decode_response(body) for body in self._reader.bodies()]
        if not responses:
            return
        with self._lock:
            for response in responses:
                slot = self._wire.dispatch(response)
                if slot is not None:
                    self._completed(slot)

    def _end_locked(self, make_error: Callable[[], TokendError]) -> None:
        if self._failed:
            return
        self._failed = True
        self._drop_near_cache()
        for slot in self._wire.fail_all(make_error):
            self._completed(slot)
        self._out.clear()
        if not self._reading and not self._drainers:
            self._close_fds()

    def _close_fds(self) -> None:
        if self._fds_closed:
            return
        self._fds_closed = True
        for sock in (self._sock, self._wake_r, self._wake_w):
            try:
                sock.close()
            except OSError:
                pass


class Client:
    """A connection to tokend, shared by any number of threads.

    ``socket_path``: the daemon's socket (default :func:`default_socket_path`).
    ``timeout``: the deadline of each call in seconds: waiting for the connection, connecting,
    writing, the reply, and a repeat after a lost connection all count against it. None waits
    forever. ``client_name``: sent in ``hello``. ``negotiate``: send ``hello`` on every new
    connection, check the version, learn ``max_frame_size`` and the daemon's settings (section
    12.1; on by default).

    Calls from several threads share the connection: each is written at once with its own
    request id and returns as soon as its own reply comes, so a slow request delays no other.
    A call that reaches its deadline raises :class:`TokendTimeoutError`; the connection stays
    open for the others.

    After a lost connection (:class:`ConnectionLostError`: the daemon restarted or closed it),
    calls that are safe to repeat (``hello``, ``ping``, ``verify`` without a refresh token,
    ``renew``, ``stats``, ``sessions``, ``keys_list``, ``keys_jwks``, ``metrics``; proto-spec.md
    section 14.4) are repeated once, on a new connection, within the same deadline. Other calls
    raise.

    Errors say whose fault they are (:mod:`tokend_client.errors`): :class:`TokenRefused` (the
    token is no good: 401), :class:`ServiceUnavailable` (tokend could not answer: 503, retry
    later), :class:`RequestRefused` (the calling code's mistake). ``verify`` and ``renew``
    return normally for ``ok`` and ``renewed`` (see :attr:`VerifyResult.renewed`), and
    ``verify`` with a refresh token also for ``refreshed`` (:attr:`VerifyResult.refreshed`).

    A forked child opens its own connection on first use.

    ``near_cache``: keep verify answers in this process and answer repeated verifies of the
    same token and fingerprint from them, as long as the daemon allows (proto-spec.md 12.16 and
    12.17; off by default, and then nothing of it is sent). Every new connection then sends
    ``track`` (after ``hello``) before any verify; the daemon marks each ``ok``/``renewed``
    verify reply with ``cacheable_until``, and writes an invalidation frame to the connection
    before it acknowledges any revocation. ``near_cache_size``: answers kept at most (the least
    recently used go first). ``near_cache_mode``:

    - ``"strict"`` (default): before answering from the cache, read what the socket already
      holds, without blocking (a ``poll`` and, when something is there, a ``recv``), and apply
      its frames. Read-your-revocations: a revocation acknowledged to anyone on the host before
      the verify began is always seen.
    - ``"reader"``: a thread of the connection's own reads the socket all the time and applies
      frames as they arrive; an answer from the cache costs no system call, but may be stale
      for as long as that thread takes to be scheduled after a frame arrives (no bound is
      guaranteed: typically well under a millisecond, but a thread holding the GIL can delay it
      by the interpreter's switch interval, 5 ms, or more). Replies are also read by that
      thread, so every call that reaches the daemon costs a thread switch.

    Answers from the cache are :class:`VerifyResult` with ``local`` true, status ``ok`` and
    ``renewed`` false. :meth:`near_cache_stats` gives the counters. Only :meth:`verify` uses the
    cache (a pipeline's verifies, ``send_many`` and ``call`` always ask the daemon).
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
        self._near = NearCache(near_cache_size) if near_cache else None
        self._near_strict = near_cache_mode == "strict"
        self.near_cache_mode: NearCacheMode | None = near_cache_mode if near_cache else None
        """``"strict"`` or ``"reader"`` with the near cache, None without."""
        if self._near is not None:
            os.register_at_fork(after_in_child=_after_fork_in_child(self._near))
        self.socket_path = os.fspath(socket_path if socket_path is not None
                                     else default_socket_path())
        self.timeout = timeout
        self.client_name = client_name
        self.negotiate = negotiate
        self._max_response_size = max_response_size
        self._open_lock = threading.Lock()
        self._conn: _Connection | None = None
        self._pid = os.getpid()
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
        state = "closed" if self._closed else ("connected" if self.connected else "idle")
        return f"<tokend_client.Client {self.socket_path!r} {state}>"

    def connect(self) -> None:
        """Open the connection now (otherwise the first call does), negotiating if enabled."""
        self._connection(_deadline(self.timeout))

    def close(self) -> None:
        """Close the connection; calls in flight end with :class:`ConnectionLostError`. The
        client cannot be used afterwards."""
        self._closed = True
        with self._open_lock:
            conn, self._conn = self._conn, None
        if conn is not None and conn.alive:
            conn.close()

    @property
    def connected(self) -> bool:
        conn = self._conn
        return conn is not None and conn.alive

    def near_cache_stats(self) -> NearCacheStats | None:
        """The near cache's counters (:class:`NearCacheStats`); None when it is off."""
        return None if self._near is None else self._near.stats()

    # --- operations ---------------------------------------------------------------------------

    def hello(self, client_name: str | None = None) -> HelloInfo:
        """Identify this client and learn the daemon's version, limits and settings (12.1)."""
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
        overrides may only shorten the daemon's settings (``self.server`` holds them when the
        daemon reports them).

        Not repeated after a lost connection: the login may or may not have been created. A
        repeat is safe only with an ``idempotency_key``, unchanged, and within the daemon's dedup
        window of the first attempt (``self.server.dedup_window``, from ``hello``); within it the
        daemon hands back the same login instead of creating another. The caller decides that
        (it knows whether the key and request are the same), and repeats promptly.
        """
        return self._run(messages.issue(
            subject, mode, fingerprint=fingerprint, audience=audience, claims=claims,
            idempotency_key=idempotency_key, ttl=ttl, refresh_ttl=refresh_ttl,
            max_lifetime=max_lifetime))

    def verify(self, token: str, fingerprint: bytes | str | None = None, *,
               refresh_token: str | None = None) -> VerifyResult:
        """Check a session or access token (12.4); may slide the session (``renewed``).

        ``token`` is the token alone: an empty one, or one still starting with ``Bearer ``,
        raises ValueError. Refusals raise a :class:`TokenRefused` subclass.

        ``refresh_token`` (verify-or-refresh): the refresh token of the access token's pair. If
        the access token verifies, the result is ``ok`` and the refresh token is untouched. If
        it fails only because it has expired, the daemon rotates the pair as :meth:`refresh`
        does (fingerprint check, dedup window, reuse detection) and the result is
        ``refreshed`` (:attr:`VerifyResult.refreshed`): it describes the new access token and
        carries the new pair (``access_token``, ``refresh_token``, ..., or
        :attr:`VerifyResult.pair`), which the caller must hand back to its client. A refresh
        token of another login: :class:`BadRequest`; a refused rotation raises its refusal
        (``reuse_detected``, ``revoked``, ``expired``, ...). The refresh token is checked like
        the token (ValueError when empty, ``Bearer ``-prefixed or above 8192 bytes).

        With a refresh token, a verify is not repeated by the client after a lost connection:
        like :meth:`refresh`, it may have spent the refresh token. The caller retries it as
        :meth:`refresh` says: the same access and refresh tokens with the same fingerprint get
        the same new pair (``refreshed``) within the dedup window, and after it while that pair
        is unused, within the rotation grace; never the old pair once the new one was used.

        With the near cache (``near_cache=True``), an answer the daemon allowed to be reused for
        this token and fingerprint is returned from the cache (``local`` true), with or without
        a refresh token (the daemon would not look at the refresh token then); a ``refreshed``
        answer is never cached.
        """
        cache = self._near
        if cache is None:
            return self._run(messages.verify(token, fingerprint, refresh_token=refresh_token))
        key = cache_key(token, fingerprint)
        if len(cache) and self._near_strict:
            conn = self._conn
            if conn is not None:
                conn.drain()  # rule 5: the frames already readable first
        answer = cache.lookup(key)
        if answer is not None:
            return answer
        call = messages.verify(token, fingerprint, refresh_token=refresh_token)
        deadline = _deadline(self.timeout)
        if self._conn is None or not self._conn.alive:
            self._connection(deadline)  # opening one flushes the cache
        generation = cache.generation  # rule 2: read before the request is sent
        result = self._run(call, timeout=_remaining(deadline))
        cache.store(key, result, generation)
        return result

    def renew(self, token: str, fingerprint: bytes | str | None = None) -> VerifyResult:
        """Touch a session explicitly (12.5; session tokens only)."""
        return self._run(messages.renew(token, fingerprint))

    def refresh(self, token: str, fingerprint: bytes | str | None = None) -> IssueResult:
        """Trade a refresh token for a new pair (12.6). The presented token is spent.

        Not repeated by the client after a lost connection: its outcome is unknown, and the
        token may already be spent. The caller retries: when the reply was lost or the call
        timed out (:class:`ConnectionLostError`, :class:`TokendTimeoutError`, or any
        :class:`ServiceUnavailable`), present **the same refresh token with the same
        fingerprint** again. The daemon hands back the same new pair, byte for byte, within
        its dedup window of the first attempt (``self.server.dedup_window`` seconds, from
        ``hello``), and after it as long as that new pair is unused, within the daemon's
        rotation grace (``--rotation-grace``; by default the login's access-token TTL). Used
        means its access token was verified (``verify``, verify-or-refresh, the HTTP face's
        ``/auth`` and ``/introspect``) or its refresh token refreshed. Another fingerprint gets
        ``fingerprint_mismatch`` and no pair.

        Once the new pair was used, or after the grace, the old refresh token is taken for
        token theft: ``reuse_detected``, and the whole family is revoked, the new pair with it.
        So never present an older refresh token once a newer pair was used: keep only the
        latest pair, and retry a refresh only while its reply is still missing.
        """
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
        results = self._exchange(requests, _deadline(self.timeout))
        responses = [r if isinstance(r, Response) else None for r in results]
        for result in results:
            if isinstance(result, ConnectionLostError):
                raise ConnectionLostError(str(result), responses=responses)
            if isinstance(result, TokendError):
                raise result
        return [r for r in responses if r is not None]

    def pipeline(self) -> Pipeline:
        """A batch of requests sent together; see :class:`Pipeline`."""
        return Pipeline(self)

    # --- internals ----------------------------------------------------------------------------

    def _run(self, call: Call[T], *,
             timeout: float | None | Literal[_Default.TIMEOUT] = _Default.TIMEOUT) -> T:
        deadline = _deadline(self.timeout if timeout is _Default.TIMEOUT else timeout)
        (result,) = self._exchange([call.request], deadline)
        if (isinstance(result, ConnectionLostError) and call.safe_to_repeat
                and not isinstance(result, ClosedByClient)
                and (deadline is None or time.monotonic() < deadline)):
            # Once, on a new connection (the lost one is never reused).
            (result,) = self._exchange([call.request], deadline)
        if isinstance(result, TokendError):
            raise result
        return call.decode(result)

    def _apply_hello(self, info: HelloInfo) -> None:
        if info.protocol_version < PROTOCOL_VERSION:
            raise ProtocolError(f"the daemon reports protocol version {info.protocol_version}")
        self.server = info
        self.max_frame_size = info.max_frame_size

    def _connection(self, deadline: float | None) -> _Connection:
        conn = self._conn
        if conn is not None and conn.alive:
            return conn
        if self._pid != os.getpid():
            self._after_fork()
        timeout = _remaining(deadline)
        if not self._open_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise _timeout_error("waiting for the connection to open")
        try:
            if self._closed:
                raise TokendError("this client is closed")
            conn = self._conn
            if conn is not None and conn.alive:
                return conn
            self._conn = None
            near = self._near
            if near is not None:
                near.flush(counted=False)  # rule 4 (the last connection's end flushed it already)
            conn = _Connection(self.socket_path, self._max_response_size, deadline, near)
            try:
                if self.negotiate:
                    call = messages.hello(self.client_name)
                    (result,) = self._exchange_on(conn, [call.request], deadline)
                    if isinstance(result, TokendError):
                        raise result
                    self._apply_hello(call.decode(result))
                if near is not None:
                    self._track(conn, near, deadline)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
            return conn
        finally:
            self._open_lock.release()

    def _track(self, conn: _Connection, near: NearCache, deadline: float | None) -> None:
        """Rule 1: ``track`` before any verify. A daemon that refuses it (one from before 12.16
        answers ``unknown_operation``) sends no ``cacheable_until``: nothing is cached, and
        verifies go to the daemon as without the cache."""
        (result,) = self._exchange_on(conn, [messages.track().request], deadline)
        if isinstance(result, TokendError):
            raise result
        if result.ok:
            near.start_tracking()
            if not self._near_strict:
                conn.start_reader()

    def _after_fork(self) -> None:
        self._pid = os.getpid()
        self._open_lock = threading.Lock()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.discard_after_fork()

    def _exchange(self, requests: Sequence[Request],
                  deadline: float | None) -> list[Response | TokendError]:
        if self._closed:
            raise TokendError("this client is closed")
        if not requests:
            return []
        for _ in range(3):
            conn = self._connection(deadline)
            check_frame_sizes(requests, self.max_frame_size)  # the limit hello reported
            try:
                return self._exchange_on(conn, requests, deadline)
            except _Dead:
                continue  # closed before anything was written: another connection
        raise ConnectionLostError("tokend keeps closing new connections")

    def _exchange_on(self, conn: _Connection, requests: Sequence[Request],
                     deadline: float | None) -> list[Response | TokendError]:
        waiter = _Waiter(len(requests))
        slots = conn.submit(requests, waiter)
        try:
            conn.wait(waiter, deadline)
        finally:
            if waiter.remaining:
                conn.abandon(slots)
        results: list[Response | TokendError] = []
        timed_out: TokendTimeoutError | None = None
        for slot in slots:
            outcome = slot.outcome()
            if outcome is None:
                if timed_out is None:
                    timed_out = _timeout_error(opcode_name(slot.opcode))
                outcome = timed_out
            results.append(outcome)
        return results


def _after_fork_in_child(near: NearCache) -> Callable[[], None]:
    """For os.register_at_fork: the child's copy of the cache is dropped at once (its frames go
    to the parent's connection), without keeping the cache alive."""
    ref = weakref.ref(near)

    def after_fork() -> None:
        cache = ref()
        if cache is not None:
            cache.after_fork()
    return after_fork


class Pending(Generic[T]):
    """The future result of one request of a :class:`Pipeline`."""

    __slots__ = ("_call", "_done", "_value", "_error")

    def __init__(self, call: Call[T]) -> None:
        self._call = call
        self._done = False
        self._value: T | None = None
        self._error: TokendError | None = None

    def _resolve(self, response: Response | TokendError) -> None:
        self._done = True
        if isinstance(response, TokendError):
            self._error = response
            return
        try:
            self._value = self._call.decode(response)
        except TokendError as exc:
            self._error = exc

    def _fail(self, error: TokendError) -> None:
        self._done, self._error = True, error

    @property
    def done(self) -> bool:
        return self._done

    @property
    def error(self) -> TokendError | None:
        """The refusal or failure of this request, if any."""
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
        """Send every queued request and wait for all replies, within the client's timeout. A
        lost connection resolves the unanswered requests with :class:`ConnectionLostError` (not
        repeated); a timeout or protocol error resolves them with that error, which is then
        raised."""
        if self._executed:
            raise RuntimeError("this pipeline has been executed already")
        self._executed = True
        if not self._queue:
            return []
        try:
            results = self._client._exchange([p._call.request for p in self._queue],
                                             _deadline(self._client.timeout))
        except TokendError as exc:
            for pending in self._queue:
                pending._fail(exc)
            raise
        raised: TokendError | None = None
        for pending, result in zip(self._queue, results):
            pending._resolve(result)
            if raised is None and isinstance(result, (TokendTimeoutError, ProtocolError)):
                raised = result
        if raised is not None:
            raise raised
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

    def verify(self, token: str, fingerprint: bytes | str | None = None, *,
               refresh_token: str | None = None) -> Pending[VerifyResult]:
        return self.add(messages.verify(token, fingerprint, refresh_token=refresh_token))

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
