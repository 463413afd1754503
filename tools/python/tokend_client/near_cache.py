"""The near cache: verify answers kept in the client, dropped by the daemon's invalidation frames
(proto-spec.md sections 12.16 and 12.17). No I/O here: the clients feed it.

What a caching client MUST do (12.16), and where this package does it:

1. ``track`` on the connection whose verifies it caches, and cache only replies carrying
   ``cacheable_until(68)``, until that time: the clients send ``track`` on every new connection
   before any verify; :meth:`NearCache.store` takes only replies with ``cacheable_until`` (and
   never a ``refreshed`` one), :meth:`NearCache.lookup` only answers while ``time.time() < T``.
2. Not cache a reply if an invalidation frame arrived between sending the verify and reading
   its reply: :attr:`NearCache.generation` counts every frame applied (and every flush); the
   caller reads it before sending, and :meth:`NearCache.store` refuses the reply if it moved.
3. Apply each frame as it is read: the connections call :meth:`NearCache.invalidate` from the
   code that reads replies, in stream order.
4. Drop everything when the connection closes, fails or is replaced: :meth:`NearCache.flush`.
5. Read-your-revocations: the clients' strict mode reads what is readable on the socket, without
   blocking, before answering from the cache.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Final, Literal

from .models import NearCacheStats, VerifyResult
from .protocol import Response, Status, Tag

__all__ = ["DEFAULT_NEAR_CACHE_SIZE", "NEAR_CACHE_MODES", "NearCache", "NearCacheMode",
           "cache_key", "check_options", "combined"]

NearCacheMode = Literal["strict", "reader"]
NEAR_CACHE_MODES: Final = ("strict", "reader")
DEFAULT_NEAR_CACHE_SIZE: Final = 10000

Key = tuple[str, bytes]


def _now() -> float:
    return time.time()  # a function of its own, so that the tests can move the clock


def cache_key(token: str, fingerprint: bytes | bytearray | memoryview | str | None) -> Key:
    """The cache key of a verify: the token and the fingerprint's bytes (absent and empty are
    the same, section 6.2 rule 6)."""
    if fingerprint is None:
        return (token, b"")
    if isinstance(fingerprint, bytes):
        return (token, fingerprint)
    if isinstance(fingerprint, str):
        return (token, fingerprint.encode("utf-8"))
    if isinstance(fingerprint, (bytearray, memoryview)):
        return (token, bytes(fingerprint))
    raise TypeError(f"the fingerprint must be bytes or a str, not {type(fingerprint).__name__}")


def check_options(size: int, mode: str) -> None:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError("near_cache_size must be an int")
    if size < 1:
        raise ValueError(f"near_cache_size must be at least 1, not {size}")
    if mode not in NEAR_CACHE_MODES:
        raise ValueError(f"near_cache_mode must be 'strict' or 'reader', not {mode!r}")


@dataclass(frozen=True)
class _Entry:
    answer: VerifyResult  # what a hit returns: status ok, renewed false, local true
    until: int
    session_id: bytes
    subject: bytes


class NearCache:
    """Verify answers by (token, fingerprint bytes), least recently used first out, with the
    invalidation frames of one connection at a time applied to them. Thread-safe."""

    def __init__(self, size: int = DEFAULT_NEAR_CACHE_SIZE) -> None:
        check_options(size, "strict")
        self.size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()
        self._by_session: dict[bytes, set[Key]] = {}
        self._by_subject: dict[bytes, set[Key]] = {}
        self.generation = 0
        """Moves on every frame applied and every flush (rule 2: read it before sending a
        verify, hand it to :meth:`store` with the reply)."""
        self.tracking = False
        """Set when the current connection's ``track`` was accepted; cleared by a flush."""
        self._hits = 0
        self._misses = 0
        self._invalidations = 0
        self._flushes = 0
        self._evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    # --- answers --------------------------------------------------------------------------------

    def lookup(self, key: Key) -> VerifyResult | None:
        """The cached answer for a verify, if one is held and its time has not come; counts a
        hit or a miss (a miss being a verify the caller now sends to the daemon)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if _now() < entry.until:
                    self._entries.move_to_end(key)
                    self._hits += 1
                    return entry.answer
                self._remove(key, entry)
            self._misses += 1
            return None

    def miss(self) -> None:
        """Count a verify sent to the daemon without a lookup (the asyncio client's strict mode,
        when bytes not yet read may hold a frame)."""
        with self._lock:
            self._misses += 1

    def store(self, key: Key, result: VerifyResult, generation: int) -> bool:
        """Keep a verify reply read from the daemon, if it may be kept: it carries
        ``cacheable_until`` (so it came on a tracking connection), was not ``refreshed``, and no
        frame was applied nor the cache flushed since ``generation`` was read (before the
        verify was sent). True when kept."""
        until = result.cacheable_until
        if until is None or result.refreshed or result.local:
            return False
        answer = replace(result, status=int(Status.OK), renewed=False, local=True)
        entry = _Entry(answer, until, result.session_id.encode("utf-8"),
                       result.subject.encode("utf-8"))
        with self._lock:
            if generation != self.generation or not self.tracking:
                return False
            old = self._entries.pop(key, None)
            if old is not None:
                self._unindex(key, old)
            self._entries[key] = entry
            self._by_session.setdefault(entry.session_id, set()).add(key)
            self._by_subject.setdefault(entry.subject, set()).add(key)
            while len(self._entries) > self.size:
                oldest, dropped = self._entries.popitem(last=False)
                self._unindex(oldest, dropped)
                self._evictions += 1
        return True

    # --- invalidation ---------------------------------------------------------------------------

    def invalidate(self, frame: Response) -> None:
        """Apply an invalidation frame (12.17): drop the answers of its ``session_id(11)``, or of
        its ``subject(2)`` (compared as bytes), or all of them for ``flush(69)`` and for a frame
        naming none of the three. Unknown fields are ignored. A frame naming more than one
        (which the daemon never sends) drops the answers of each."""
        fields = frame.fields
        session_id = fields.raw(Tag.SESSION_ID)
        subject = fields.raw(Tag.SUBJECT)
        flush = Tag.FLUSH in fields or (session_id is None and subject is None)
        with self._lock:
            self.generation += 1
            self._invalidations += 1
            if flush:
                self._flushes += 1
                self._clear()
                return
            if session_id is not None:
                for key in list(self._by_session.get(session_id, ())):
                    self._remove(key, self._entries[key])
            if subject is not None:
                for key in list(self._by_subject.get(subject, ())):
                    self._remove(key, self._entries[key])

    def flush(self, *, counted: bool = True) -> None:
        """Drop everything (rule 4: the connection closed, failed or was replaced) and stop
        caching until the next connection's ``track`` is accepted. ``counted``: count it in
        ``flushes`` (not for the precautionary flush when a connection opens)."""
        with self._lock:
            self.generation += 1
            self.tracking = False
            if counted:
                self._flushes += 1
            self._clear()

    def start_tracking(self) -> None:
        """The current connection's ``track`` was accepted: its replies may be cached."""
        with self._lock:
            self.tracking = True

    def after_fork(self) -> None:
        """In a forked child: a new lock (another thread may have held the parent's at the
        fork) and nothing cached (the child opens its own connection)."""
        self._lock = threading.Lock()
        self.generation += 1
        self.tracking = False
        self._clear()

    def stats(self) -> NearCacheStats:
        with self._lock:
            return NearCacheStats(hits=self._hits, misses=self._misses,
                                  invalidations=self._invalidations, flushes=self._flushes,
                                  evictions=self._evictions, entries=len(self._entries),
                                  tracking=self.tracking)

    # --- under the lock -------------------------------------------------------------------------

    def _clear(self) -> None:
        self._entries.clear()
        self._by_session.clear()
        self._by_subject.clear()

    def _remove(self, key: Key, entry: _Entry) -> None:
        del self._entries[key]
        self._unindex(key, entry)

    def _unindex(self, key: Key, entry: _Entry) -> None:
        for index, value in ((self._by_session, entry.session_id),
                             (self._by_subject, entry.subject)):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]


def combined(stats: list[NearCacheStats]) -> NearCacheStats:
    """Counters of several caches (the asyncio client's, one per event loop) added up;
    ``tracking`` when any of them tracks."""
    return NearCacheStats(hits=sum(s.hits for s in stats), misses=sum(s.misses for s in stats),
                          invalidations=sum(s.invalidations for s in stats),
                          flushes=sum(s.flushes for s in stats),
                          evictions=sum(s.evictions for s in stats),
                          entries=sum(s.entries for s in stats),
                          tracking=any(s.tracking for s in stats))

