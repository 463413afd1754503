"""Many threads on one connection, deadlines, and repeats after a lost connection, against the
scripted fake daemon; hello's settings as they come over the wire."""

from __future__ import annotations

import threading
import time
import unittest
from typing import Any, Callable

from tokend_client import (
    Client,
    ConnectionLostError,
    TokendError,
    TokendTimeoutError,
)
from tokend_client.protocol import Opcode, Status, Tag, encode_response, encode_u8, encode_u64

from .fakedaemon import FakeConnection, FakeDaemon, ReceivedRequest
from .test_fake_daemon import ping_reply, refreshed_reply, verify_reply

SETTINGS = {59: 5000, 60: 7200, 61: 3600, 62: 1800, 63: 900, 64: 3600, 65: 43200, 66: 2}


def refresh_reply(request: ReceivedRequest) -> bytes:
    return encode_response(Opcode.REFRESH, request.request_id, Status.OK, [
        (Tag.MODE, encode_u8(2)), (Tag.SESSION_ID, b"sid"), (Tag.ACCESS_TOKEN, b"a"),
        (Tag.REFRESH_TOKEN, b"r"), (Tag.EXPIRES_AT, encode_u64(10)),
        (Tag.REFRESH_EXPIRES_AT, encode_u64(20)), (Tag.MAX_EXPIRES_AT, encode_u64(30))])


def in_threads(count: int, work: Callable[[int], object]) -> list[tuple[float, object]]:
    """Run ``work(i)`` in ``count`` threads started together: (seconds taken, result or error)
    for each."""
    results: list[tuple[float, object]] = [(0.0, None)] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        started = time.monotonic()
        try:
            outcome: object = work(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome = exc
        results[i] = (time.monotonic() - started, outcome)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


class ConcurrencyTest(unittest.TestCase):
    def serve(self, *scripts: Callable[[FakeConnection], None], timeout: float = 5.0) -> Client:
        daemon = FakeDaemon(*scripts)
        self.addCleanup(daemon.close)
        client = Client(daemon.path, timeout=timeout)
        self.addCleanup(client.close)
        self.daemon = daemon
        return client

    def test_slow_replies_do_not_queue_behind_each_other(self) -> None:
        # The daemon takes 0.5 s over each request, all at once (as tokend does): five
        # concurrent calls all return after about 0.5 s, not 0.5, 1, 1.5, 2 and 2.5 s.
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            for request in conn.read_requests(5):
                conn.send_later(0.5, verify_reply(request, request.fields.string(Tag.TOKEN)))
            conn.read_request()

        client = self.serve(script)
        client.connect()
        results = in_threads(5, lambda i: client.verify(f"user-{i}").subject)
        self.assertEqual([r for _, r in results], [f"user-{i}" for i in range(5)])
        for seconds, _ in results:
            self.assertGreater(seconds, 0.45)
            self.assertLess(seconds, 1.2, [round(s, 2) for s, _ in results])
        self.assertEqual(self.daemon.connections, 1)

    def test_deadline_covers_the_whole_call(self) -> None:
        # The daemon never answers: five concurrent calls with a 2 s timeout all give up at
        # about 2 s (not 2, 4, 6, 8 and 10 s), and the connection stays open.
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            conn.read_requests(5)
            conn.read_request()

        client = self.serve(script, timeout=2.0)
        client.connect()
        results = in_threads(5, lambda i: client.verify(f"user-{i}"))
        for seconds, outcome in results:
            self.assertIsInstance(outcome, TokendTimeoutError)
            self.assertGreater(seconds, 1.9)
            # (a serialised client: 2, 4, 6, 8 and 10 s)
            self.assertLess(seconds, 3.0, [round(s, 2) for s, _ in results])
        self.assertTrue(client.connected)

    def test_deadline_includes_waiting_for_the_connection(self) -> None:
        # hello is answered after 1.5 s: calls with a 0.5 s deadline give up at 0.5 s, whether
        # they are opening the connection or waiting for another thread to.
        def script(conn: FakeConnection) -> None:
            time.sleep(1.5)
            conn.answer_hello()
            conn.read_request()

        client = self.serve(script, timeout=0.5)
        results = in_threads(3, lambda i: client.ping())
        for seconds, outcome in results:
            self.assertIsInstance(outcome, TokendTimeoutError)
            self.assertLess(seconds, 1.0, [round(s, 2) for s, _ in results])

    def test_many_threads_share_one_connection(self) -> None:
        # 16 threads x 50 calls; the daemon answers in batches, in reverse order.
        total = 16 * 50

        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            answered = 0
            while answered < total:
                batch = [conn.read_request()]
                while conn.buffer or answered + len(batch) < total and _readable(conn):
                    request = conn.read_request()
                    if request is None:
                        break
                    batch.append(request)
                conn.send(b"".join(verify_reply(r, r.fields.string(Tag.TOKEN))
                                   for r in reversed(batch) if r is not None))
                answered += len(batch)
            conn.read_request()

        client = self.serve(script)

        def work(i: int) -> list[str]:
            return [client.verify(f"t{i}-{n}").subject for n in range(50)]

        results = in_threads(16, work)
        for i, (_, subjects) in enumerate(results):
            self.assertEqual(subjects, [f"t{i}-{n}" for n in range(50)])
        self.assertEqual(self.daemon.connections, 1)

    def test_safe_operations_are_repeated_once_on_a_new_connection(self) -> None:
        def drops_it(conn: FakeConnection) -> None:
            conn.answer_hello()
            conn.read_requests(1)  # then closes without answering

        def answers(conn: FakeConnection) -> None:
            conn.answer_hello()
            request = conn.read_requests(1)[0]
            conn.send(verify_reply(request, "alice"))
            conn.read_request()

        client = self.serve(drops_it, answers)
        self.assertEqual(client.verify("t").subject, "alice")
        self.assertEqual(self.daemon.connections, 2)

    def test_a_safe_operation_is_repeated_only_once(self) -> None:
        def drops_it(conn: FakeConnection) -> None:
            conn.answer_hello()
            conn.read_requests(1)

        client = self.serve(drops_it, drops_it, drops_it)
        with self.assertRaises(ConnectionLostError):
            client.ping()
        self.assertEqual(self.daemon.connections, 2)

    def test_refresh_and_issue_are_not_repeated(self) -> None:
        seen: list[int] = []

        def drops_it(conn: FakeConnection) -> None:
            conn.answer_hello()
            seen.append(conn.read_requests(1)[0].opcode)

        def answers(conn: FakeConnection) -> None:
            conn.answer_hello()
            request = conn.read_requests(1)[0]
            seen.append(request.opcode)
            conn.send(refresh_reply(request))
            conn.read_request()

        client = self.serve(drops_it, drops_it, answers)
        with self.assertRaises(ConnectionLostError):
            client.refresh("rt")
        with self.assertRaises(ConnectionLostError):
            client.issue("alice", idempotency_key="k")
        self.assertEqual(seen, [Opcode.REFRESH, Opcode.ISSUE])
        self.assertEqual(client.refresh("rt").access_token, "a")  # a new connection
        for method in (Client.refresh, Client.issue):  # and the docstrings say why
            self.assertIn("dedup window", " ".join((method.__doc__ or "").split()))

    def test_verify_with_a_refresh_token_is_not_repeated(self) -> None:
        # It may have rotated the pair (spent the refresh token), as refresh does.
        seen: list[str | None] = []

        def drops_it(conn: FakeConnection) -> None:
            conn.answer_hello()
            seen.append(conn.read_requests(1)[0].fields.opt_string(Tag.REFRESH_TOKEN))

        def answers(conn: FakeConnection) -> None:
            conn.answer_hello()
            request = conn.read_requests(1)[0]
            seen.append(request.fields.opt_string(Tag.REFRESH_TOKEN))
            conn.send(refreshed_reply(request))
            conn.read_request()

        client = self.serve(drops_it, answers)
        with self.assertRaises(ConnectionLostError):
            client.verify("access", refresh_token="r1")
        self.assertEqual(seen, ["r1"])
        result = client.verify("access", refresh_token="r1")  # the caller's repeat
        self.assertEqual((result.refreshed, result.refresh_token), (True, "new-r1"))
        self.assertEqual(self.daemon.connections, 2)
        self.assertIn("dedup window", " ".join((Client.verify.__doc__ or "").split()))

    def test_refusals_of_one_thread_do_not_touch_the_others(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            for request in conn.read_requests(8):
                token = request.fields.string(Tag.TOKEN)
                if token.endswith("bad"):
                    conn.send(encode_response(Opcode.VERIFY, request.request_id,
                                              Status.STORE_UNAVAILABLE, [(Tag.MESSAGE, b"down")]))
                else:
                    conn.send(verify_reply(request, token))
            conn.read_request()

        client = self.serve(script)
        client.connect()
        results = in_threads(8, lambda i: client.verify(f"u{i}" + ("bad" if i % 2 else "")))
        for i, (_, outcome) in enumerate(results):
            if i % 2:
                self.assertIsInstance(outcome, TokendError)
                assert isinstance(outcome, TokendError)
                self.assertEqual(outcome.name, "store_unavailable")
            else:
                self.assertEqual(getattr(outcome, "subject", outcome), f"u{i}")

    def test_close_ends_calls_in_flight(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            conn.read_requests(1)
            conn.read_request()

        client = self.serve(script)
        client.connect()
        timer = threading.Timer(0.3, client.close)
        timer.start()
        started = time.monotonic()
        with self.assertRaises(ConnectionLostError):
            client.renew("t")  # safe, but a closed client does not repeat it
        self.assertLess(time.monotonic() - started, 2)
        timer.join()
        with self.assertRaisesRegex(TokendError, "closed"):
            client.ping()


class HelloSettingsTest(unittest.TestCase):
    def hello_with(self, settings: dict[int, int] | None) -> Client:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello(settings=settings)
            conn.send(ping_reply(conn.read_requests(1)[0]))
            conn.read_request()

        daemon = FakeDaemon(script)
        self.addCleanup(daemon.close)
        client = Client(daemon.path, timeout=5)
        self.addCleanup(client.close)
        client.ping()
        return client

    def test_settings_are_read(self) -> None:
        info = self.hello_with(SETTINGS).server
        assert info is not None
        self.assertEqual((info.dedup_window_ms, info.dedup_window, info.idle_ttl,
                          info.renew_below, info.renew_by, info.access_ttl,
                          info.refresh_token_ttl, info.max_login_lifetime, info.leeway),
                         (5000, 5.0, 7200, 3600, 1800, 900, 3600, 43200, 2))
        self.assertTrue(info.reports_settings)

    def test_an_older_daemon_sends_none(self) -> None:
        info = self.hello_with(None).server
        assert info is not None
        self.assertEqual((info.max_frame_size, info.dedup_window_ms, info.dedup_window,
                          info.leeway), (65536, None, None, None))
        self.assertFalse(info.reports_settings)


def _readable(conn: FakeConnection) -> bool:
    import select
    return bool(select.select([conn.sock], [], [], 0.005)[0])


if __name__ == "__main__":
    unittest.main()


class InterruptedWaitTest(unittest.TestCase):
    def test_an_interrupted_caller_does_not_take_the_readers_role_with_it(self) -> None:
        import tokend_client.client as client_module

        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            while (request := conn.read_request()) is not None:
                conn.send_later(0.3, verify_reply(request, request.fields.string(Tag.TOKEN)))

        daemon = FakeDaemon(script)
        self.addCleanup(daemon.close)
        client = Client(daemon.path, timeout=5)
        self.addCleanup(client.close)
        client.connect()

        class InterruptedOnce:
            def __init__(self, lock: Any) -> None:
                self.lock = lock

            def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
                if blocking:
                    time.sleep(0.1)
                    raise KeyboardInterrupt
                return bool(self.lock.acquire(blocking, timeout))

            def release(self) -> None:
                self.lock.release()

        class Interrupted(client_module._Waiter):
            def __init__(self, count: int) -> None:
                super().__init__(count)
                self._lock = InterruptedOnce(self._lock)  # type: ignore[assignment]

        results: dict[str, object] = {}

        def leader() -> None:
            results["leader"] = client.verify("first").subject

        first = threading.Thread(target=leader)
        first.start()
        time.sleep(0.05)  # the first call is reading; the next one follows
        original = client_module._Waiter
        client_module._Waiter = Interrupted  # type: ignore[misc]
        try:
            with self.assertRaises(KeyboardInterrupt):
                client.verify("second")
        finally:
            client_module._Waiter = original  # type: ignore[misc]
        first.join(timeout=5)
        self.assertEqual(results["leader"], "first")
        started = time.monotonic()
        self.assertEqual(client.verify("third").subject, "third")  # someone reads again
        self.assertLess(time.monotonic() - started, 2)
