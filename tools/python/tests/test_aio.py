"""tokend_client.aio against the real tokend and against the scripted fake daemon."""

from __future__ import annotations

import asyncio
import threading
import time
import unittest
from typing import Any, Awaitable, Callable, TypeVar

from tokend_client import (
    BadRequest,
    ConnectionLostError,
    DaemonUnreachableError,
    FingerprintMismatch,
    MalformedToken,
    ReuseDetected,
    Revoked,
    TokendError,
    TokendTimeoutError,
    TokenRefused,
    WrongTokenType,
    aio,
    messages,
)
from tokend_client.protocol import Opcode, Tag

from .fakedaemon import FakeConnection, FakeDaemon
from .support import MAX_FRAME_SIZE, Daemon, token_claims
from .test_concurrency import SETTINGS, refresh_reply
from .test_fake_daemon import ping_reply, refreshed_reply, verify_reply

T = TypeVar("T")


def run(coroutine: Awaitable[T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(30):
            return await coroutine
    return asyncio.run(bounded())


class AioDaemonCase(unittest.TestCase):
    daemon_args: list[str] = []
    dedup_window = "1s"

    def setUp(self) -> None:
        self.daemon = Daemon(self.daemon_args, dedup_window=self.dedup_window)
        self.addCleanup(self.daemon.stop)

    def client(self, **kwargs: Any) -> aio.Client:
        return aio.Client(self.daemon.socket_path, client_name="aio tests 1", **kwargs)


class AioDaemonTest(AioDaemonCase):
    def test_operations_and_errors(self) -> None:
        async def scenario() -> None:
            async with self.client(timeout=10.0) as tokend:
                await tokend.connect()
                info = tokend.server
                assert info is not None
                self.assertEqual((info.protocol_version, info.max_frame_size),
                                 (1, MAX_FRAME_SIZE))
                self.assertTrue(info.server_name.startswith("tokend "))
                if info.reports_settings:
                    self.assertEqual(info.dedup_window, 1.0)  # --dedup-window 1s
                    self.assertEqual((info.idle_ttl, info.access_ttl, info.leeway),
                                     (7200, 1800, 0))
                await tokend.ping()

                login = await tokend.issue("alice", fingerprint="UA", claims={"role": "x"})
                check = await tokend.verify(login.token, "UA")
                self.assertEqual((check.subject, check.claims["role"], check.renewed),
                                 ("alice", "x", False))
                with self.assertRaises(FingerprintMismatch) as caught:
                    await tokend.verify(login.token, "other")
                self.assertIsInstance(caught.exception, TokenRefused)
                self.assertEqual(caught.exception.name, "fingerprint_mismatch")
                with self.assertRaises(MalformedToken):
                    await tokend.verify("garbage")
                with self.assertRaisesRegex(ValueError, "Bearer"):
                    await tokend.verify("Bearer " + login.token)
                with self.assertRaises(BadRequest):
                    await tokend.issue("alice", ttl=10**9)

                pair = await tokend.issue("bob", "pair")
                assert pair.refresh_token is not None
                with self.assertRaises(WrongTokenType):
                    await tokend.renew(pair.token)
                rotated = await tokend.refresh(pair.refresh_token)
                self.assertEqual(rotated.session_id, pair.session_id)

                self.assertEqual((await tokend.revoke(login.token)).count, 1)
                with self.assertRaises(Revoked):
                    await tokend.verify(login.token, "UA")
                self.assertEqual(len(await tokend.all_sessions(limit=1)), 2)
                self.assertEqual([k.algorithm for k in await tokend.keys_list()], ["HS256"])
                self.assertEqual(await tokend.keys_jwks(), {"keys": []})
                self.assertIn("tokend_requests_total", await tokend.metrics())
                replies = await tokend.send_many([messages.ping().request] * 3)
                self.assertTrue(all(r.ok for r in replies))
                self.assertEqual((await tokend.call("ping")).status_name, "ok")
                stats = await tokend.stats()
                self.assertEqual(stats["connections"], 1)
            self.assertFalse(tokend.connected)
            await tokend.ping()  # closing is not final: a new connection
            await tokend.close()

        run(scenario())

    def test_concurrent_tasks_share_one_connection(self) -> None:
        async def scenario() -> None:
            async with self.client() as tokend:
                tokens = [(await tokend.issue(f"user-{n}")).token for n in range(20)]
                checks = await asyncio.gather(*(tokend.verify(tokens[n % 20])
                                                for n in range(400)))
                self.assertEqual([c.subject for c in checks],
                                 [f"user-{n % 20}" for n in range(400)])
                stats = await tokend.stats()
                self.assertEqual(stats["connections"], 1)
                self.assertEqual(stats.op("verify"), 400)

        run(scenario())

    def test_one_connection_per_event_loop(self) -> None:
        tokend = self.client()

        async def first() -> str:
            try:
                return (await tokend.issue("carol")).token
            finally:
                await tokend.close()  # before the loop ends (asyncio.run closes it)

        token = run(first())

        async def count(barrier: threading.Barrier) -> int:
            loop = asyncio.get_running_loop()
            try:
                await tokend.verify(token)
                await loop.run_in_executor(None, barrier.wait, 10)
                return (await tokend.stats())["connections"]
            finally:
                await loop.run_in_executor(None, barrier.wait, 10)
                await tokend.close()  # closes this loop's connection, and asks the other's

        # Two loops in two threads at once: one connection each.
        barrier = threading.Barrier(2)
        results: list[object] = []

        def in_thread() -> None:
            try:
                results.append(run(count(barrier)))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion
                results.append(exc)

        threads = [threading.Thread(target=in_thread) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        self.assertEqual(results, [2, 2])

        async def after() -> int:
            try:
                return (await tokend.stats())["connections"]
            finally:
                await tokend.close()

        self.assertEqual(run(after()), 1)

    def test_unreachable(self) -> None:
        tokend = aio.Client(self.daemon.socket_path + ".missing")
        with self.assertRaises(DaemonUnreachableError):
            run(tokend.ping())


class AioLostResponseTest(AioDaemonCase):
    """Lost-response recovery of refresh with the asyncio client (as LostResponseTest in
    test_client.py): after the 300 ms dedup window a retry gets the same pair while it is
    unused (within the grace: by default the family's access TTL), and is reuse once it was
    used."""

    dedup_window = "300ms"

    def test_retry_before_and_after_the_new_pair_is_used(self) -> None:
        async def scenario() -> None:
            async with self.client(timeout=10.0) as tokend:
                pair = await tokend.issue("lost", "pair", fingerprint="UA")
                assert pair.refresh_token is not None
                new = await tokend.refresh(pair.refresh_token, "UA")
                await asyncio.sleep(0.35)  # past the window, which began before the reply
                assert new.access_token is not None and new.refresh_token is not None
                # Two tasks retry at once: both get the same pair, byte for byte.
                retries = await asyncio.gather(tokend.refresh(pair.refresh_token, "UA"),
                                               tokend.refresh(pair.refresh_token, "UA"))
                for retry in retries:
                    self.assertEqual(retry, new)
                    self.assertEqual((retry.access_token, retry.refresh_token),
                                     (new.access_token, new.refresh_token))
                self.assertEqual((await tokend.stats()).status("reuse_detected"), 0)
                check = await tokend.verify(new.access_token, "UA")  # live; and now used
                self.assertEqual((check.session_id, check.claims["tokend_gen"]), (pair.session_id, 1))
                with self.assertRaises(ReuseDetected):
                    await tokend.refresh(pair.refresh_token, "UA")
                with self.assertRaises(Revoked):
                    await tokend.verify(new.access_token, "UA")
                with self.assertRaises(Revoked):
                    await tokend.refresh(new.refresh_token, "UA")

        run(scenario())

    def test_tokens_carry_their_generation(self) -> None:
        async def scenario() -> None:
            async with self.client(timeout=10.0) as tokend:
                pair = await tokend.issue("gen", "pair")
                assert pair.access_token is not None and pair.refresh_token is not None
                new = await tokend.refresh(pair.refresh_token)
                assert new.access_token is not None and new.refresh_token is not None
                for token, generation in ((pair.access_token, 0), (pair.refresh_token, 0),
                                          (new.access_token, 1), (new.refresh_token, 1)):
                    gen = token_claims(token)["tokend_gen"]
                    self.assertIs(type(gen), int)
                    self.assertEqual(gen, generation)
                with self.assertRaises(BadRequest):  # registered: issue may not set it
                    await tokend.issue("gen", "pair", claims={"tokend_gen": 0})

        run(scenario())


class AioNoRotationGraceTest(AioDaemonCase):
    """``--rotation-grace 0s``: after the window, a retry is reuse even if the pair is unused."""

    dedup_window = "300ms"
    daemon_args = ["--rotation-grace", "0s"]

    def test_a_retry_after_the_window_is_reuse(self) -> None:
        async def scenario() -> None:
            async with self.client(timeout=10.0) as tokend:
                pair = await tokend.issue("nograce", "pair")
                assert pair.refresh_token is not None
                new = await tokend.refresh(pair.refresh_token)
                rotated_by = time.time()
                assert new.access_token is not None
                self.assertEqual(await tokend.refresh(pair.refresh_token), new)  # in the window
                await asyncio.sleep(max(0.0, rotated_by + 0.35 - time.time()))
                with self.assertRaises(ReuseDetected):
                    await tokend.refresh(pair.refresh_token)
                with self.assertRaises(Revoked):
                    await tokend.verify(new.access_token)

        run(scenario())


class AioMillisecondDedupWindowTest(AioDaemonCase):
    dedup_window = "1500ms"

    def test_hello_reports_the_window_in_milliseconds(self) -> None:
        async def scenario() -> None:
            async with self.client() as tokend:
                info = await tokend.hello()
                if not info.reports_settings:
                    self.skipTest(f"{info.server_name} does not report its settings")
                self.assertEqual((info.dedup_window_ms, info.dedup_window), (1500, 1.5))
                self.assertEqual(tokend.server, info)

        run(scenario())


class AioIdleTimeoutTest(AioDaemonCase):
    daemon_args = ["--idle-timeout", "1s"]

    def test_reconnects_after_the_daemon_closed_an_idle_connection(self) -> None:
        async def scenario() -> None:
            async with self.client() as tokend:
                before = (await tokend.stats())["connections_total"]
                await asyncio.sleep(2.2)
                self.assertFalse(tokend.connected)  # noticed as soon as it happened
                await tokend.ping()
                self.assertEqual((await tokend.stats())["connections_total"], before + 1)

        run(scenario())


class AioFakeDaemonTest(unittest.TestCase):
    def serve(self, *scripts: Callable[[FakeConnection], None],
              timeout: float = 5.0) -> aio.Client:
        daemon = FakeDaemon(*scripts)
        self.addCleanup(daemon.close)
        self.daemon = daemon
        return aio.Client(daemon.path, timeout=timeout)

    def test_slow_replies_do_not_queue_behind_each_other(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            for request in reversed(conn.read_requests(5)):
                conn.send_later(0.5, verify_reply(request, request.fields.string(Tag.TOKEN)))
            conn.read_request()

        tokend = self.serve(script)

        async def timed(n: int) -> tuple[float, str]:
            started = time.monotonic()
            subject = (await tokend.verify(f"user-{n}")).subject
            return time.monotonic() - started, subject

        async def scenario() -> list[tuple[float, str]]:
            await tokend.connect()
            try:
                return await asyncio.gather(*(timed(n) for n in range(5)))
            finally:
                await tokend.close()

        results = run(scenario())
        self.assertEqual([s for _, s in results], [f"user-{n}" for n in range(5)])
        for seconds, _ in results:
            self.assertLess(seconds, 1.2, results)

    def test_deadline_covers_the_whole_call(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            first = conn.read_requests(5)[0]
            late = conn.read_requests(1)[0]
            conn.send(ping_reply(first) + ping_reply(late))  # the first reply is dropped
            conn.read_request()

        tokend = self.serve(script, timeout=1.0)

        async def timed() -> tuple[float, object]:
            started = time.monotonic()
            outcome: object = None
            try:
                await tokend.ping()
            except TokendError as exc:
                outcome = exc
            return time.monotonic() - started, outcome

        async def scenario() -> list[tuple[float, object]]:
            await tokend.connect()
            try:
                results = await asyncio.gather(*(timed() for _ in range(5)))
                await tokend.ping()  # the connection is still there
                return results
            finally:
                await tokend.close()

        for seconds, outcome in run(scenario()):
            self.assertIsInstance(outcome, TokendTimeoutError)
            self.assertGreater(seconds, 0.9)
            self.assertLess(seconds, 1.6)
        self.assertEqual(self.daemon.connections, 1)

    def test_repeats(self) -> None:
        def drops_it(conn: FakeConnection) -> None:
            conn.answer_hello(settings=SETTINGS)
            conn.read_requests(1)

        def answers(conn: FakeConnection) -> None:
            conn.answer_hello(settings=SETTINGS)
            request = conn.read_requests(1)[0]
            conn.send(verify_reply(request, "alice"))
            request = conn.read_requests(1)[0]
            self.assertEqual(request.opcode, Opcode.REFRESH)
            conn.send(refresh_reply(request))
            conn.read_request()

        tokend = self.serve(drops_it, answers, drops_it)

        async def scenario() -> None:
            try:
                self.assertEqual((await tokend.verify("t")).subject, "alice")  # repeated
                assert tokend.server is not None
                self.assertEqual(tokend.server.dedup_window, 5.0)
                self.assertEqual((await tokend.refresh("rt")).access_token, "a")
                # The answering connection closes when its script ends; then refresh is not
                # repeated.
            finally:
                await tokend.close()

        run(scenario())
        self.assertEqual(self.daemon.connections, 2)

    def test_refresh_is_not_repeated(self) -> None:
        def drops_it(conn: FakeConnection) -> None:
            conn.answer_hello()
            conn.read_requests(1)

        tokend = self.serve(drops_it, drops_it)
        with self.assertRaises(ConnectionLostError):
            run(tokend.refresh("rt"))
        self.assertEqual(self.daemon.connections, 1)

    def test_verify_or_refresh(self) -> None:
        def drops_it(conn: FakeConnection) -> None:
            conn.answer_hello()
            conn.read_requests(1)

        def answers(conn: FakeConnection) -> None:
            conn.answer_hello()
            request = conn.read_requests(1)[0]
            self.assertEqual(request.fields.string(Tag.REFRESH_TOKEN), "r1")
            conn.send(refreshed_reply(request))
            conn.read_request()

        tokend = self.serve(drops_it, answers)

        async def scenario() -> None:
            try:
                with self.assertRaises(ConnectionLostError):  # not repeated: it may have rotated
                    await tokend.verify("access", refresh_token="r1")
                self.assertEqual(self.daemon.connections, 1)
                result = await tokend.verify("access", "UA", refresh_token="r1")
                self.assertEqual((result.refreshed, result.access_token, result.refresh_token),
                                 (True, "new-access-for-r1", "new-r1"))
            finally:
                await tokend.close()

        run(scenario())


if __name__ == "__main__":
    unittest.main()
