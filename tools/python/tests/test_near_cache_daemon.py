"""The near cache against the real daemon (proto-spec.md 12.16, 12.17): read-your-revocations
over a few hundred rounds of each kind of revocation (``TOKEND_NEAR_ROUNDS``, default 300;
tools/near-cache-stale-test.py runs 10,000), what the daemon grants, and that a client without
the option sends no ``track``.

Skips when there is no daemon binary, or when the daemon predates ``track``."""

from __future__ import annotations

import os
import time
import unittest

from tokend_client import Client, Revoked, Status, TokendError, aio

from . import near_rounds
from .support import Daemon, SharedStore

ROUNDS = int(os.environ.get("TOKEND_NEAR_ROUNDS", "300"))


def require_track(socket_path: str) -> None:
    with Client(socket_path, timeout=10.0) as probe:
        if probe.call("track").status == Status.UNKNOWN_OPERATION:
            raise unittest.SkipTest("this tokend predates track (12.16): build the daemon "
                                    "with the near cache, or set TOKEND_BIN to one")


class NearCacheDaemonTest(unittest.TestCase):
    def setUp(self) -> None:
        self.daemon = Daemon([])
        self.addCleanup(self.daemon.stop)
        require_track(self.daemon.socket_path)
        self.admin = Client(self.daemon.socket_path, timeout=10.0)
        self.addCleanup(self.admin.close)

    def cached_client(self, **kwargs: object) -> Client:
        client = Client(self.daemon.socket_path, timeout=10.0, near_cache=True,
                        **kwargs)  # type: ignore[arg-type]
        self.addCleanup(client.close)
        return client

    def check(self, outcome: near_rounds.Outcome, rounds: int) -> None:
        self.assertEqual(outcome.rounds, rounds, str(outcome))
        self.assertTrue(outcome.ok, str(outcome))

    # --- read-your-revocations, strict mode ----------------------------------------------------

    def test_revoke_by_token(self) -> None:
        self.check(near_rounds.run(self.daemon.socket_path, "token", ROUNDS), ROUNDS)

    def test_revoke_by_session_id(self) -> None:
        self.check(near_rounds.run(self.daemon.socket_path, "session", ROUNDS), ROUNDS)

    def test_revoke_by_subject(self) -> None:
        self.check(near_rounds.run(self.daemon.socket_path, "subject", ROUNDS), ROUNDS)

    def test_reuse_detection_revokes_the_cached_access_token(self) -> None:
        self.check(near_rounds.run(self.daemon.socket_path, "reuse", ROUNDS), ROUNDS)

    def test_revoke_while_other_threads_use_the_connection(self) -> None:
        rounds = max(1, ROUNDS // 3)
        outcome = near_rounds.run(self.daemon.socket_path, "token", rounds, busy_threads=2)
        self.check(outcome, rounds)
        self.assertGreater(outcome.busy_calls, 0)

    # --- what the daemon grants -------------------------------------------------------------------

    def test_cacheable_until_as_the_spec_computes_it(self) -> None:
        client = self.cached_client()
        session = client.verify(self.admin.issue("carol").token)
        assert client.server is not None and client.server.renew_below is not None
        self.assertEqual(session.cacheable_until,
                         min(session.expires_at - client.server.renew_below,
                             session.token_expires_at))
        access = client.verify(self.admin.issue("dave", "pair").token)
        self.assertEqual(access.cacheable_until, access.token_expires_at)
        self.assertTrue(client.verify(self.admin.issue("erin").token,
                                      refresh_token=None).cacheable_until)

    def test_off_sends_no_track(self) -> None:
        token = self.admin.issue("frank").token
        tracks = self.admin.stats().op("track")  # setUp's probe
        with Client(self.daemon.socket_path, timeout=10.0) as plain:
            first, second = plain.verify(token), plain.verify(token)
            self.assertIsNone(first.cacheable_until)  # the daemon grants nothing untracked
            self.assertFalse(second.local)
        self.assertEqual(self.admin.stats().op("track"), tracks)
        client = self.cached_client()
        client.verify(token)
        self.assertTrue(client.verify(token).local)
        self.assertEqual(self.admin.stats().op("track"), tracks + 1)

    def test_keys_reload_flushes(self) -> None:
        client = self.cached_client()
        token = self.admin.issue("grace").token
        client.verify(token)
        self.assertTrue(client.verify(token).local)
        self.admin.keys_reload()
        self.assertFalse(client.verify(token).local)
        stats = client.near_cache_stats()
        assert stats is not None
        self.assertEqual((stats.invalidations, stats.flushes), (1, 1))

    def test_reader_mode_applies_the_frame_without_a_request(self) -> None:
        client = self.cached_client(near_cache_mode="reader")
        login = self.admin.issue("heidi")
        client.verify(login.token)
        self.assertTrue(client.verify(login.token).local)
        self.admin.revoke(login.token)
        deadline = time.monotonic() + 10
        while (stats := client.near_cache_stats()) is not None and stats.invalidations < 1:
            self.assertLess(time.monotonic(), deadline, "the reader thread applied no frame")
            time.sleep(0.001)
        with self.assertRaises(Revoked):
            client.verify(login.token)


class AioNearCacheDaemonTest(unittest.IsolatedAsyncioTestCase):
    """The asyncio client's strict mode: revoke through a threaded client (a blocking call: the
    loop reads nothing meanwhile), then verify through the asyncio client's near cache."""

    async def test_revoke_then_verify(self) -> None:
        daemon = Daemon([])
        self.addCleanup(daemon.stop)
        require_track(daemon.socket_path)
        admin = Client(daemon.socket_path, timeout=10.0)
        self.addCleanup(admin.close)
        cached = aio.Client(daemon.socket_path, timeout=10.0, near_cache=True)
        self.addAsyncCleanup(cached.close)
        stale = not_cached = 0
        for n in range(ROUNDS):
            login = admin.issue(f"aio-{n}")
            await cached.verify(login.token)
            not_cached += not (await cached.verify(login.token)).local
            if n % 2:
                admin.revoke(login.token)
            else:
                admin.revoke(session_id=login.session_id)
            try:
                await cached.verify(login.token)
                stale += 1
            except Revoked:
                pass
        self.assertEqual((stale, not_cached), (0, 0))


class SharedStoreTest(unittest.TestCase):
    """With Redis the daemon grants cached answers only while it hears other hosts'
    revocations (its Redis subscription is up); when Redis goes, near caches are flushed (12.16)."""

    def test_granted_while_subscribed_and_flushed_when_redis_goes(self) -> None:
        store = SharedStore()
        self.addCleanup(store.stop)
        require_track(store.socket_path)
        with Client(store.socket_path, timeout=10.0) as admin, \
                Client(store.socket_path, timeout=10.0, near_cache=True) as client:
            token = admin.issue("ivan").token
            deadline = time.monotonic() + 5.0
            while client.verify(token).cacheable_until is None:   # until the subscription is up
                self.assertLess(time.monotonic(), deadline, "no cacheable answer within 5 s")
                time.sleep(0.02)
            self.assertTrue(client.verify(token).local)
            store.redis_down()
            deadline = time.monotonic() + 2.0
            answered_locally = True
            while answered_locally and time.monotonic() < deadline:
                try:
                    answered_locally = client.verify(token).local
                except TokendError:      # store_unavailable: the daemon was asked
                    answered_locally = False
                time.sleep(0.005)
            self.assertFalse(answered_locally, "still answered from the cache 2 s after Redis went down")
            stats = client.near_cache_stats()
            assert stats is not None
            self.assertGreaterEqual(stats.flushes, 1)


if __name__ == "__main__":
    unittest.main()
