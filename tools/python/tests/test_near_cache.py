"""The near cache (proto-spec.md 12.16, 12.17) against the fake daemon, which answers hello,
track and verify and sends invalidation frames when a test says: every rule of 12.16 for the
threaded client in both modes, and for the asyncio client.

The fake daemon writes a frame with ``sendall`` on a Unix socket: when that returns, the bytes
are in the client's socket, as they are when the real daemon acknowledges a revocation."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import threading
import time
import unittest
from dataclasses import dataclass
from typing import Any, Callable
from unittest import mock

from tokend_client import Client, NearCacheStats, Revoked, Status, TokendTimeoutError
from tokend_client import aio
from tokend_client.protocol import Opcode, Tag, encode_response, encode_u8, encode_u64, opcode_name

from .fakedaemon import FakeConnection, FakeDaemon, ReceivedRequest

FAR = int(time.time()) + 3600  # a cacheable_until well in the future


@dataclass
class Login:
    subject: str
    session_id: str
    until: int | None = FAR  # cacheable_until, None: not sent
    status: int = Status.OK  # ok, renewed, refreshed, or a refusal
    before_reply: Callable[[FakeConnection], None] | None = None  # e.g. send a frame first


def verify_answer(request: ReceivedRequest, login: Login) -> bytes:
    if login.status not in (Status.OK, Status.RENEWED, Status.REFRESHED):
        return encode_response(Opcode.VERIFY, request.request_id, login.status,
                               [(Tag.MESSAGE, b"refused by the fake")])
    fields = [(Tag.MODE, encode_u8(2 if login.status == Status.REFRESHED else 1)),
              (Tag.SUBJECT, login.subject.encode()), (Tag.SESSION_ID, login.session_id.encode()),
              (Tag.CLAIMS_JSON,
               json.dumps({"sub": login.subject, "sid": login.session_id}).encode()),
              (Tag.EXPIRES_AT, encode_u64(FAR + 100)),
              (Tag.TOKEN_EXPIRES_AT, encode_u64(FAR + 200)),
              (Tag.RENEWED, b"\x01" if login.status == Status.RENEWED else b"\x00")]
    if login.until is not None:
        fields.append((Tag.CACHEABLE_UNTIL, encode_u64(login.until)))
    if login.status == Status.REFRESHED:
        fields += [(Tag.ACCESS_TOKEN, b"new-access"), (Tag.REFRESH_TOKEN, b"new-refresh"),
                   (Tag.REFRESH_EXPIRES_AT, encode_u64(FAR + 300)),
                   (Tag.MAX_EXPIRES_AT, encode_u64(FAR + 400))]
    return encode_response(Opcode.VERIFY, request.request_id, login.status, fields)


class NearFake:
    """A fake daemon serving ``connections`` connections in turn, each until the client closes
    it: hello, track (answered ``track_status``), ping, and verify from ``logins`` by token.
    ``requests`` logs (connection number, operation name, token) of every request."""

    def __init__(self, connections: int = 1, track_status: int = Status.OK) -> None:
        self.logins: dict[str, Login] = {}
        self.requests: list[tuple[int, str, str | None]] = []
        self.conns: list[FakeConnection] = []
        self.track_status = track_status
        self.daemon = FakeDaemon(*([self._serve] * connections))

    @property
    def path(self) -> str:
        return self.daemon.path

    def login(self, token: str, subject: str = "alice", session_id: str | None = None,
              **kwargs: Any) -> Login:
        login = self.logins[token] = Login(subject, session_id or f"sid-{token}", **kwargs)
        return login

    def verifies(self, token: str | None = None) -> int:
        """Verifies the daemon received (of ``token``, or of any)."""
        return sum(1 for _, op, t in self.requests
                   if op == "verify" and (token is None or t == token))

    def ops(self, connection: int) -> list[str]:
        return [op for n, op, _ in self.requests if n == connection]

    def _serve(self, conn: FakeConnection) -> None:
        number = len(self.conns)
        self.conns.append(conn)
        while (request := conn.read_request()) is not None:
            token = request.fields.string(Tag.TOKEN) if Tag.TOKEN in request.fields else None
            self.requests.append((number, opcode_name(request.opcode), token))
            if request.opcode == Opcode.HELLO:
                conn.send(encode_response(Opcode.HELLO, request.request_id, 0, [
                    (Tag.PROTOCOL_VERSION, encode_u8(1)), (Tag.SERVER_NAME, b"fake 0"),
                    (Tag.MAX_FRAME_SIZE, encode_u64(65536))]))
            elif request.opcode == Opcode.TRACK:
                fields = [] if self.track_status == Status.OK else [(Tag.MESSAGE, b"unknown")]
                conn.send(encode_response(Opcode.TRACK, request.request_id, self.track_status,
                                          fields))
            elif request.opcode == Opcode.VERIFY:
                assert token is not None
                login = self.logins[token]
                if login.before_reply is not None:
                    login.before_reply(conn)
                conn.send(verify_answer(request, login))
            else:
                conn.send(encode_response(request.opcode, request.request_id, Status.OK))

    def close(self) -> None:
        self.daemon.close()


class Clock:
    """The near cache's clock, set by the test (``tokend_client.near_cache._now``)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Wait for something another thread does; fails only if it takes ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.001)


class NearCacheTest(unittest.TestCase):
    mode = "strict"

    def fake(self, connections: int = 1, track_status: int = Status.OK) -> NearFake:
        fake = NearFake(connections, track_status)
        self.addCleanup(fake.close)
        return fake

    def client(self, fake: NearFake, **kwargs: Any) -> Client:
        options: dict[str, Any] = {"timeout": 5.0, "near_cache": True,
                                   "near_cache_mode": self.mode}
        options.update(kwargs)
        client = Client(fake.path, **options)
        self.addCleanup(client.close)
        return client

    def stats(self, client: Client) -> NearCacheStats:
        stats = client.near_cache_stats()
        assert stats is not None
        return stats

    def frames_sent(self, client: Client, invalidations: int) -> None:
        """After the fake daemon sent frames: in reader mode, wait until the reader thread has
        applied them (strict mode needs nothing: the next verify reads them first)."""
        if self.mode == "reader":
            wait_until(lambda: self.stats(client).invalidations >= invalidations,
                       f"{invalidations} frames applied by the reader thread")

    # --- rule 1: track, and only cacheable_until --------------------------------------------------

    def test_off_by_default_sends_no_track_and_caches_nothing(self) -> None:
        fake = self.fake()
        fake.login("t")
        client = Client(fake.path, timeout=5.0)
        self.addCleanup(client.close)
        first, second = client.verify("t"), client.verify("t")
        self.assertEqual(fake.ops(0), ["hello", "verify", "verify"])
        self.assertEqual((first.local, second.local), (False, False))
        self.assertEqual(first.cacheable_until, FAR)  # decoded, but not used
        self.assertIsNone(client.near_cache_stats())
        self.assertIsNone(client.near_cache_mode)

    def test_track_after_hello_before_any_verify(self) -> None:
        fake = self.fake()
        fake.login("t")
        client = self.client(fake)
        client.verify("t")
        self.assertEqual(fake.ops(0), ["hello", "track", "verify"])
        self.assertTrue(self.stats(client).tracking)

    def test_track_without_negotiation(self) -> None:
        fake = self.fake()
        fake.login("t")
        client = self.client(fake, negotiate=False)
        client.verify("t")
        client.verify("t")
        self.assertEqual(fake.ops(0), ["track", "verify"])

    def test_a_hit_is_the_cached_reply_marked_local(self) -> None:
        fake = self.fake()
        fake.login("t", subject="bob", status=Status.RENEWED)
        client = self.client(fake)
        first = client.verify("t")
        second = client.verify("t")
        third = client.verify("t")
        self.assertEqual(fake.verifies(), 1)
        self.assertEqual((first.status_name, first.renewed, first.local),
                         ("renewed", True, False))
        self.assertEqual(second, dataclasses.replace(first, status=Status.OK, renewed=False,
                                                     local=True))
        self.assertEqual((second.subject, second.claims["sub"]), ("bob", "bob"))
        self.assertIs(third, second)
        self.assertEqual(self.stats(client), NearCacheStats(
            hits=2, misses=1, invalidations=0, flushes=0, evictions=0, entries=1, tracking=True))

    def test_no_cacheable_until_no_caching(self) -> None:
        fake = self.fake()
        fake.login("t", until=None)
        client = self.client(fake)
        for _ in range(3):
            self.assertFalse(client.verify("t").local)
        self.assertEqual(fake.verifies("t"), 3)
        self.assertEqual(self.stats(client).entries, 0)

    def test_refusals_are_not_cached(self) -> None:
        fake = self.fake()
        fake.login("t", status=Status.REVOKED)
        client = self.client(fake)
        for _ in range(2):
            with self.assertRaises(Revoked):
                client.verify("t")
        self.assertEqual(fake.verifies("t"), 2)

    def test_track_refused_caches_nothing(self) -> None:
        # A daemon from before 12.16 answers unknown_operation: the cache stays empty (and a
        # reply's cacheable_until, which such a daemon would not send, is not trusted).
        fake = self.fake(track_status=Status.UNKNOWN_OPERATION)
        fake.login("t")
        client = self.client(fake)
        for _ in range(3):
            self.assertFalse(client.verify("t").local)
        self.assertEqual(fake.verifies("t"), 3)
        self.assertFalse(self.stats(client).tracking)

    def test_the_key_is_the_token_and_the_fingerprint_bytes(self) -> None:
        fake = self.fake()
        fake.login("t")
        fake.login("u")
        client = self.client(fake)
        client.verify("t", "UA")
        self.assertTrue(client.verify("t", b"UA").local)  # str and its UTF-8 bytes
        self.assertTrue(client.verify("t", bytearray(b"UA")).local)  # type: ignore[arg-type]
        self.assertFalse(client.verify("t", "UB").local)
        self.assertFalse(client.verify("t").local)
        self.assertTrue(client.verify("t", b"").local)  # empty is absent (6.2 rule 6)
        self.assertTrue(client.verify("t", "").local)
        self.assertFalse(client.verify("u", "UA").local)
        self.assertEqual(fake.verifies("t"), 3)

    def test_expiry_at_cacheable_until(self) -> None:
        fake = self.fake()
        fake.login("t", until=1_000_000)
        client = self.client(fake)
        clock = Clock(999_999.0)
        with mock.patch("tokend_client.near_cache._now", clock):
            client.verify("t")
            clock.now = 999_999.999
            self.assertTrue(client.verify("t").local)
            clock.now = 1_000_000.0  # time.time() < T no longer holds
            self.assertFalse(client.verify("t").local)
            self.assertEqual(fake.verifies("t"), 2)
            clock.now = 1_000_001.0  # stored again with the same T: expired at once
            self.assertFalse(client.verify("t").local)
        self.assertEqual(fake.verifies("t"), 3)

    def test_refreshed_is_never_cached(self) -> None:
        fake = self.fake()
        fake.login("expired-access", status=Status.REFRESHED)  # and with a cacheable_until
        client = self.client(fake)
        for _ in range(2):
            result = client.verify("expired-access", refresh_token="r1")
            self.assertTrue(result.refreshed)
            self.assertFalse(result.local)
        self.assertEqual(fake.verifies("expired-access"), 2)
        self.assertEqual(self.stats(client).entries, 0)

    def test_a_refresh_token_may_hit_the_access_tokens_answer(self) -> None:
        fake = self.fake()
        fake.login("access")
        client = self.client(fake)
        client.verify("access", "UA")
        result = client.verify("access", "UA", refresh_token="refresh")
        self.assertTrue(result.local)
        self.assertEqual(fake.verifies("access"), 1)

    def test_a_verify_with_a_refresh_token_is_cached_when_ok(self) -> None:
        fake = self.fake()
        fake.login("access")
        client = self.client(fake)
        self.assertFalse(client.verify("access", refresh_token="refresh").local)
        self.assertTrue(client.verify("access").local)
        self.assertEqual(fake.verifies("access"), 1)

    def test_a_bad_fingerprint_type_raises_even_when_cached(self) -> None:
        fake = self.fake()
        fake.login("t")
        client = self.client(fake)
        client.verify("t", b"\x00\x00")
        with self.assertRaises(TypeError):
            client.verify("t", 2)  # type: ignore[arg-type]  # bytes(2) would be b"\0\0"

    # --- rule 3: frames ---------------------------------------------------------------------------

    def cached(self, fake: NearFake, client: Client, *tokens: str) -> None:
        for token in tokens:
            client.verify(token)
            self.assertTrue(client.verify(token).local, token)

    def test_frame_by_session_id(self) -> None:
        fake = self.fake()
        fake.login("a1", subject="alice", session_id="A")
        fake.login("a2", subject="alice", session_id="A")  # two tokens of one login
        fake.login("b", subject="alice", session_id="B")
        client = self.client(fake)
        self.cached(fake, client, "a1", "a2", "b")
        fake.conns[0].invalidate(session_id="A")
        self.frames_sent(client, 1)
        self.assertFalse(client.verify("a1").local)
        self.assertFalse(client.verify("a2").local)
        self.assertTrue(client.verify("b").local)
        stats = self.stats(client)
        self.assertEqual((stats.invalidations, stats.flushes), (1, 0))

    def test_frame_by_subject_compares_bytes(self) -> None:
        fake = self.fake()
        fake.login("a1", subject="josé", session_id="A1")  # é as one code point
        fake.login("a2", subject="josé", session_id="A2")
        fake.login("d", subject="jose\u0301", session_id="D")  # é decomposed: other bytes
        fake.login("c", subject="carol", session_id="C")
        client = self.client(fake)
        self.cached(fake, client, "a1", "a2", "d", "c")
        fake.conns[0].invalidate(subject="josé")
        self.frames_sent(client, 1)
        self.assertEqual([client.verify(t).local for t in ("a1", "a2", "d", "c")],
                         [False, False, True, True])
        # A subject that is not UTF-8 matches nothing (and does not break the connection).
        fake.conns[0].invalidate(subject=b"\xff")
        self.frames_sent(client, 2)
        self.assertEqual([client.verify(t).local for t in ("a1", "d", "c")], [True, True, True])

    def test_flush_frame(self) -> None:
        fake = self.fake()
        for token in ("a", "b"):
            fake.login(token, session_id=token)
        client = self.client(fake)
        self.cached(fake, client, "a", "b")
        fake.conns[0].invalidate(flush=True)
        self.frames_sent(client, 1)
        self.assertEqual([client.verify(t).local for t in ("a", "b")], [False, False])
        stats = self.stats(client)
        self.assertEqual((stats.invalidations, stats.flushes), (1, 1))

    def test_a_frame_naming_none_of_the_three_is_a_flush(self) -> None:
        fake = self.fake()
        for token in ("a", "b"):
            fake.login(token, session_id=token)
        client = self.client(fake)
        self.cached(fake, client, "a", "b")
        fake.conns[0].invalidate(extra=((200, b"a field of a later version"),))
        self.frames_sent(client, 1)
        self.assertEqual([client.verify(t).local for t in ("a", "b")], [False, False])
        self.assertEqual(self.stats(client).flushes, 1)

    def test_unknown_fields_of_a_frame_are_ignored(self) -> None:
        fake = self.fake()
        for token in ("a", "b"):
            fake.login(token, session_id=token)
        client = self.client(fake)
        self.cached(fake, client, "a", "b")
        fake.conns[0].invalidate(session_id="a", extra=((200, b"x"), (201, b"")))
        self.frames_sent(client, 1)
        self.assertEqual([client.verify(t).local for t in ("a", "b")], [False, True])
        self.assertEqual(self.stats(client).flushes, 0)

    # --- rule 2: a frame while a verify is in flight ----------------------------------------------

    def test_a_reply_read_after_a_frame_sent_meanwhile_is_not_cached(self) -> None:
        fake = self.fake()
        # The daemon sends a frame (about another login) between the verify and its reply: the
        # reply may be older than the revocation, so it is not kept.
        fake.login("t", before_reply=lambda conn: conn.invalidate(session_id="another"))
        fake.login("u")  # the same without a frame: kept
        client = self.client(fake)
        self.assertFalse(client.verify("t").local)
        self.assertFalse(client.verify("t").local)
        self.assertFalse(client.verify("u").local)
        self.assertTrue(client.verify("u").local)
        self.assertEqual((fake.verifies("t"), fake.verifies("u")), (2, 1))
        self.assertEqual(self.stats(client).invalidations, 2)

    # --- rule 4: the connection ends --------------------------------------------------------------

    def test_connection_loss_flushes_and_the_next_connection_tracks(self) -> None:
        fake = self.fake(connections=2)
        fake.login("t")
        client = self.client(fake)
        self.cached(fake, client, "t")
        fake.conns[0].sock.shutdown(socket.SHUT_RDWR)  # the daemon goes away
        if self.mode == "reader":  # the reader thread sees the end on its own
            wait_until(lambda: self.stats(client).flushes == 1, "the reader saw the close")
        result = client.verify("t")  # strict: the end is read before the cache answers
        self.assertFalse(result.local)
        self.assertEqual(fake.ops(1), ["hello", "track", "verify"])
        self.assertTrue(client.verify("t").local)  # cached again, from the new connection
        stats = self.stats(client)
        self.assertEqual((stats.flushes, stats.entries, stats.tracking), (1, 1, True))

    def test_close_flushes(self) -> None:
        fake = self.fake()
        fake.login("t")
        client = self.client(fake)
        self.cached(fake, client, "t")
        client.close()
        stats = self.stats(client)
        self.assertEqual((stats.flushes, stats.entries, stats.tracking), (1, 0, False))

    # --- size and counters ------------------------------------------------------------------------

    def test_least_recently_used_goes_first(self) -> None:
        fake = self.fake()
        for token in ("a", "b", "c"):
            fake.login(token)
        client = self.client(fake, near_cache_size=2)
        client.verify("a")
        client.verify("b")
        self.assertTrue(client.verify("a").local)  # a is now more recent than b
        client.verify("c")  # evicts b
        self.assertTrue(client.verify("a").local)
        self.assertFalse(client.verify("b").local)  # evicts c
        self.assertTrue(client.verify("a").local)
        self.assertFalse(client.verify("c").local)
        self.assertEqual([fake.verifies(t) for t in "abc"], [1, 2, 2])
        stats = self.stats(client)
        self.assertEqual((stats.entries, stats.evictions), (2, 3))

    def test_counters(self) -> None:
        fake = self.fake()
        fake.login("a", session_id="A")
        fake.login("b", session_id="B", until=None)
        client = self.client(fake)
        self.assertEqual(self.stats(client), NearCacheStats())  # nothing yet, not connected
        client.verify("a")
        client.verify("a")
        client.verify("b")
        client.verify("b")
        fake.conns[0].invalidate(session_id="nobody")
        fake.conns[0].invalidate(flush=True)
        self.frames_sent(client, 2)
        client.verify("a")
        self.assertEqual(self.stats(client), NearCacheStats(
            hits=1, misses=4, invalidations=2, flushes=1, evictions=0, entries=1,
            tracking=True))

    def test_options_are_checked(self) -> None:
        with self.assertRaises(ValueError):
            Client("/nonexistent", near_cache=True, near_cache_size=0)
        with self.assertRaises(ValueError):
            Client("/nonexistent", near_cache=True,
                   near_cache_mode="lazy")  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            Client("/nonexistent", near_cache=True, near_cache_size=1.5)  # type: ignore[arg-type]
        Client("/nonexistent", near_cache_mode="lazy")  # type: ignore[arg-type]  # ignored when off

    @unittest.skipUnless(hasattr(os, "fork"), "no os.fork here")
    def test_a_forked_child_starts_empty(self) -> None:
        fake = self.fake()
        fake.login("t")
        client = self.client(fake)
        self.cached(fake, client, "t")
        pid = os.fork()
        if pid == 0:  # the child: its copy of the cache is gone, its frames would not come
            stats = client.near_cache_stats()
            os._exit(0 if stats is not None and stats.entries == 0 and not stats.tracking
                     else 1)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertTrue(client.verify("t").local)  # the parent's is untouched


class StrictModeTest(NearCacheTest):
    """Rule 5, read-your-revocations: a frame in the socket when a verify begins is applied
    before the cache answers, with no request sent to read it."""

    mode = "strict"

    def test_a_frame_already_in_the_socket_is_seen_by_the_next_verify(self) -> None:
        fake = self.fake()
        client = self.client(fake)
        for n in range(300):
            token = f"t{n}"
            login = fake.login(token, session_id=f"S{n}")
            client.verify(token)
            self.assertTrue(client.verify(token).local)
            login.status = Status.REVOKED  # the daemon's state, and then its frame
            fake.conns[0].invalidate(session_id=f"S{n}")
            with self.assertRaises(Revoked):
                client.verify(token)
        self.assertEqual(self.stats(client).invalidations, 300)

    def test_replies_read_by_the_drain_reach_their_callers(self) -> None:
        # Callers waiting for replies (one of them polling the socket as the reader) while
        # another thread's cache hits read the socket first: every reply must still reach its
        # caller at once (a lost wake-up would leave one waiting until its 5 s timeout).
        fake = self.fake()
        fake.login("cached")
        for n in range(4):
            fake.login(f"miss{n}", until=None)
        client = self.client(fake)
        client.verify("cached")
        errors: list[BaseException] = []

        def misses(n: int) -> None:
            try:
                for _ in range(150):
                    self.assertFalse(client.verify(f"miss{n}").local)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=misses, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        hits = 0
        while any(thread.is_alive() for thread in threads):
            self.assertTrue(client.verify("cached").local)
            hits += 1
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(fake.verifies(), 1 + 4 * 150)
        self.assertGreater(hits, 0)


class ReaderModeTest(NearCacheTest):
    """Reader mode: the connection's own thread applies frames as they arrive, with no request
    needed to read them; an answer from the cache reads nothing."""

    mode = "reader"

    def test_frames_are_applied_without_any_request(self) -> None:
        fake = self.fake()
        fake.login("t", session_id="S")
        client = self.client(fake)
        self.cached(fake, client, "t")
        sent = len(fake.requests)
        fake.conns[0].invalidate(session_id="S")
        wait_until(lambda: self.stats(client).invalidations == 1, "the reader applied the frame")
        self.assertEqual(len(fake.requests), sent)  # read by the thread, not by a request
        self.assertFalse(client.verify("t").local)

    def test_the_reader_thread_ends_with_the_connection(self) -> None:
        fake = self.fake()
        fake.login("t")
        client = self.client(fake)
        client.verify("t")
        readers = [t for t in threading.enumerate() if t.name == "tokend-near-cache-reader"]
        self.assertEqual(len(readers), 1)
        client.close()
        readers[0].join(timeout=5)
        self.assertFalse(readers[0].is_alive())

    def test_a_timeout_leaves_the_reader_reading(self) -> None:
        fake = self.fake()
        fake.login("t")
        late = threading.Event()  # the daemon answers "slow" once the caller has given up
        fake.login("slow", before_reply=lambda conn: late.wait(10))
        client = self.client(fake)
        client.connect()  # hello and track within the usual timeout
        client.timeout = 0.1
        with self.assertRaises(TokendTimeoutError):
            client.verify("slow")
        late.set()
        client.timeout = 5.0
        self.assertFalse(client.verify("t").local)  # the reader thread read its reply
        self.assertTrue(client.verify("t").local)
        self.assertEqual(fake.ops(0), ["hello", "track", "verify", "verify"])  # one connection


class AioNearCacheTest(unittest.IsolatedAsyncioTestCase):
    mode = "strict"

    def fake(self, connections: int = 1, track_status: int = Status.OK) -> NearFake:
        fake = NearFake(connections, track_status)
        self.addCleanup(fake.close)
        return fake

    async def client(self, fake: NearFake, **kwargs: Any) -> aio.Client:
        options: dict[str, Any] = {"timeout": 5.0, "near_cache": True,
                                   "near_cache_mode": self.mode}
        options.update(kwargs)
        client = aio.Client(fake.path, **options)
        self.addAsyncCleanup(client.close)
        return client

    def stats(self, client: aio.Client) -> NearCacheStats:
        stats = client.near_cache_stats()
        assert stats is not None
        return stats

    async def applied(self, client: aio.Client, invalidations: int) -> None:
        """Until the loop has read and applied that many frames (it needs only to run)."""
        deadline = time.monotonic() + 10
        while self.stats(client).invalidations < invalidations:
            if time.monotonic() > deadline:
                raise AssertionError(f"{invalidations} frames not applied within 10 s")
            await asyncio.sleep(0.001)

    async def test_off_by_default(self) -> None:
        fake = self.fake()
        fake.login("t")
        client = aio.Client(fake.path, timeout=5.0)
        self.addAsyncCleanup(client.close)
        self.assertFalse((await client.verify("t")).local)
        self.assertFalse((await client.verify("t")).local)
        self.assertEqual(fake.ops(0), ["hello", "verify", "verify"])
        self.assertIsNone(client.near_cache_stats())

    async def test_track_hit_miss_and_counters(self) -> None:
        fake = self.fake()
        fake.login("t", status=Status.RENEWED)
        fake.login("u", until=None)
        client = await self.client(fake)
        first = await client.verify("t", "UA")
        second = await client.verify("t", b"UA")
        self.assertEqual(second, dataclasses.replace(first, status=Status.OK, renewed=False,
                                                     local=True))
        self.assertFalse((await client.verify("u")).local)
        self.assertFalse((await client.verify("u")).local)
        self.assertEqual(fake.ops(0), ["hello", "track", "verify", "verify", "verify"])
        self.assertEqual(self.stats(client), NearCacheStats(
            hits=1, misses=3, invalidations=0, flushes=0, evictions=0, entries=1,
            tracking=True))

    async def test_frames_by_session_subject_and_flush(self) -> None:
        fake = self.fake()
        fake.login("a", subject="alice", session_id="A")
        fake.login("b", subject="bob", session_id="B")
        fake.login("c", subject="carol", session_id="C")
        client = await self.client(fake)
        for token in "abc":
            await client.verify(token)
        conn = fake.conns[0]
        conn.invalidate(session_id="A")
        conn.invalidate(subject="bob")
        await self.applied(client, 2)  # in either mode, once the loop has read them
        self.assertEqual([(await client.verify(t)).local for t in "abc"], [False, False, True])
        conn.invalidate(extra=((200, b""),))  # none of the three: a flush
        await self.applied(client, 3)
        self.assertFalse((await client.verify("c")).local)
        stats = self.stats(client)
        self.assertEqual((stats.invalidations, stats.flushes), (3, 1))

    async def test_a_reply_read_after_a_frame_sent_meanwhile_is_not_cached(self) -> None:
        fake = self.fake()
        fake.login("t", before_reply=lambda conn: conn.invalidate(session_id="another"))
        client = await self.client(fake)
        await client.verify("t")
        self.assertFalse((await client.verify("t")).local)
        self.assertEqual(fake.verifies("t"), 2)

    async def test_connection_loss_flushes(self) -> None:
        fake = self.fake(connections=2)
        fake.login("t")
        client = await self.client(fake)
        await client.verify("t")
        self.assertTrue((await client.verify("t")).local)
        fake.conns[0].sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 10
        while self.stats(client).flushes == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.001)  # the loop reads the end
        self.assertFalse((await client.verify("t")).local)
        self.assertEqual(fake.ops(1), ["hello", "track", "verify"])
        self.assertTrue((await client.verify("t")).local)
        stats = self.stats(client)
        self.assertEqual((stats.flushes, stats.hits, stats.misses, stats.entries),
                         (1, 2, 2, 1))

    async def test_unread_frame(self) -> None:
        """A frame in the socket that the loop has not read yet (no await since it came):
        strict mode asks the daemon; reader mode answers from the cache, stale, as its
        documentation says."""
        fake = self.fake()
        login = fake.login("t", session_id="S")
        client = await self.client(fake)
        await client.verify("t")
        login.status = Status.REVOKED
        fake.conns[0].invalidate(session_id="S")  # blocking send: the loop runs nothing
        if self.mode == "strict":
            with self.assertRaises(Revoked):
                await client.verify("t")
        else:
            self.assertTrue((await client.verify("t")).local)  # stale until the loop reads
            await self.applied(client, 1)
            with self.assertRaises(Revoked):
                await client.verify("t")

    async def test_read_your_revocations_many_rounds(self) -> None:
        fake = self.fake()
        client = await self.client(fake)
        for n in range(100):
            login = fake.login(f"t{n}", session_id=f"S{n}")
            await client.verify(f"t{n}")
            login.status = Status.REVOKED
            fake.conns[0].invalidate(session_id=f"S{n}")
            if self.mode == "reader":
                await self.applied(client, n + 1)  # reader mode: once the loop has read it
            with self.assertRaises(Revoked):
                await client.verify(f"t{n}")


class AioReaderModeTest(AioNearCacheTest):
    mode = "reader"


del NearCacheTest  # run through its two modes only
