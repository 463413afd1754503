"""The article's section 4 as a test: scheme 2 (verify-or-refresh) in one call, against the real
tokend.

A service receives both tokens of a pair and calls ``verify(access, refresh_token=refresh)``.
While the access token is valid, that is a plain verify (``ok``; the refresh token untouched).
Once it has expired, the daemon rotates the pair as ``refresh`` does and answers ``refreshed``
with the new pair. When many requests of one user agent arrive together with the same expired
access token (a page loading twenty resources), exactly one rotation must happen: all of them
get the same new pair (the dedup window), and the old refresh token presented after the window,
once the new pair has been used, is reuse, which revokes the family. (Before the new pair is
used, a retry after the window still gets it: lost-response recovery, within the rotation
grace, by default the family's access-token TTL.)

One daemon for the class (``--dedup-window 1s``, from ``support.Daemon``); each test uses logins
of its own. Tokens expire in whole Unix seconds (``exp``; expired once ``now >= exp``); the dedup
window counts milliseconds from the rotation: a result recorded at ``t`` ms is handed out again
while ``now < t + 1000``. Access tokens are issued with a TTL of 1 or 2 s, so each wait for an
expiry is at most 2 s. Skipped when the daemon does not know ``refresh_token(35)`` in verify (a
binary from before verify-or-refresh answers ``expired``).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import unittest
from typing import Callable

from tokend_client import (
    BadRequest,
    Client,
    Expired,
    FingerprintMismatch,
    IssueResult,
    ReuseDetected,
    Revoked,
    Status,
    VerifyResult,
    aio,
)

from .support import Daemon, tokend_binary
from .test_cli import cli

THREADS = 20


def wait_until(unix_time: float) -> None:
    delay = unix_time - time.time()
    if delay > 0:
        time.sleep(delay)


def tokens(pair: IssueResult) -> tuple[str, str]:
    assert pair.access_token is not None and pair.refresh_token is not None
    return pair.access_token, pair.refresh_token


def in_threads(calls: list[Callable[[], VerifyResult]],
               before_start: Callable[[], None]) -> tuple[list[object], float, float]:
    """Run the calls in threads released together by a barrier once ``before_start`` has
    returned: each call's result or error, and the wall-clock times of the start and the end."""
    barrier = threading.Barrier(len(calls) + 1)
    outcomes: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[i] = calls[i]()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    before_start()
    barrier.wait(timeout=30)
    started = time.time()
    for thread in threads:
        thread.join(timeout=30)
    ended = time.time()
    assert not any(thread.is_alive() for thread in threads), "a verify did not return"
    return outcomes, started, ended


class Scheme2Test(unittest.TestCase):
    daemon: Daemon
    client: Client

    @classmethod
    def setUpClass(cls) -> None:
        cls.daemon = Daemon([])
        cls.addClassCleanup(cls.daemon.stop)
        cls.client = Client(cls.daemon.socket_path, timeout=10.0, client_name="tests scheme 2")
        cls.addClassCleanup(cls.client.close)
        # Does this daemon know verify-or-refresh? An older one ignores refresh_token(35).
        pair = cls.client.issue("probe", "pair", ttl=1)
        access, refresh = tokens(pair)
        wait_until(pair.expires_at + 0.02)
        try:
            probe = cls.client.verify(access, refresh_token=refresh)
        except (Expired, BadRequest) as refusal:
            raise unittest.SkipTest(
                f"{tokend_binary()} does not rotate in verify (answered {refusal.name} "
                "to an expired access token with its refresh token): a tokend from before "
                "verify-or-refresh") from None
        assert probe.refreshed, probe

    # --- helpers --------------------------------------------------------------------------------

    def expired_pair(self, subject: str, *, fingerprint: str | None = None, ttl: int = 1,
                     refresh_ttl: int | None = None) -> IssueResult:
        pair = self.client.issue(subject, "pair", fingerprint=fingerprint, ttl=ttl,
                                 refresh_ttl=refresh_ttl)
        self.assertLessEqual(pair.expires_at - time.time(), ttl)
        wait_until(pair.expires_at + 0.02)  # the daemon: expired once now >= exp (leeway 0)
        return pair

    def stat(self, name: str) -> int:
        return self.client.stats().get(name)

    def assertOneRotation(self, outcomes: list[object], old: IssueResult,
                          fingerprint: str | None = None) -> VerifyResult:
        """All outcomes are ``refreshed`` with the very same new pair: one rotation."""
        errors = [o for o in outcomes if not isinstance(o, VerifyResult)]
        self.assertEqual(errors, [], "every concurrent verify must get the new pair")
        results = [o for o in outcomes if isinstance(o, VerifyResult)]
        first = results[0]
        self.assertTrue(all(r.refreshed for r in results), [r.status_name for r in results])
        self.assertEqual(len({(r.access_token, r.refresh_token) for r in results}), 1,
                         "more than one rotation: the new pairs differ")
        for result in results:  # byte-identical tokens, and the same times and claims
            self.assertEqual(result, first)
        old_access, old_refresh = tokens(old)
        assert first.access_token is not None and first.refresh_token is not None
        self.assertNotIn(first.access_token, (old_access, old_refresh))
        self.assertNotIn(first.refresh_token, (old_access, old_refresh))
        # The verify fields describe the new access token of the same login.
        self.assertEqual((first.status, first.status_name, first.renewed, first.mode_name,
                          first.session_id),
                         (Status.REFRESHED, "refreshed", False, "pair", old.session_id))
        self.assertEqual(first.expires_at, first.token_expires_at)
        self.assertGreater(first.token_expires_at, old.expires_at)
        self.assertEqual(first.max_expires_at, old.max_expires_at)
        assert first.refresh_expires_at is not None
        self.assertGreaterEqual(first.refresh_expires_at, first.token_expires_at)
        self.assertEqual(first.claims["sid"], old.session_id)
        self.assertEqual(first.claims["exp"], first.token_expires_at)
        self.assertEqual(first.pair, IssueResult(
            mode=2, session_id=old.session_id, expires_at=first.token_expires_at,
            max_expires_at=old.max_expires_at, access_token=first.access_token,
            refresh_token=first.refresh_token, refresh_expires_at=first.refresh_expires_at))
        return first

    def section_4(self, subject: str,
                  verifier: Callable[[int], Callable[..., VerifyResult]]) -> None:
        """The article's section 4 with ``THREADS`` concurrent verifies, thread ``i`` calling
        ``verifier(i)(access, fingerprint, refresh_token=refresh)``."""
        fingerprint = f"UA of {subject}"
        pair = self.client.issue(subject, "pair", fingerprint=fingerprint, ttl=2)
        access, refresh = tokens(pair)
        # While the access token is valid: ok, nothing rotated.
        self.assertEqual(self.client.verify(access, fingerprint, refresh_token=refresh).status,
                         Status.OK)
        refreshed, reused = self.stat("status.refreshed"), self.stat("status.reuse_detected")
        connections = self.stat("connections_total")

        calls: list[Callable[[], VerifyResult]] = [
            functools.partial(verifier(i), access, fingerprint, refresh_token=refresh)
            for i in range(THREADS)]
        outcomes, started, ended = in_threads(
            calls, before_start=lambda: wait_until(pair.expires_at + 0.02))
        self.assertGreaterEqual(started, pair.expires_at)
        new = self.assertOneRotation(outcomes, pair, fingerprint)
        self.assertLess(ended - started, 1.0, f"the {THREADS} verifies took "
                        f"{ended - started:.2f} s: too slow for the 1 s dedup window")
        self.assertEqual(self.stat("status.refreshed") - refreshed, THREADS)
        self.assertEqual(self.stat("status.reuse_detected"), reused)
        self.assertEqual(self.stat("connections_total"), connections)  # all opened before
        assert new.access_token is not None and new.refresh_token is not None

        # The next request comes with the new pair: a plain ok. It uses the new pair, so the
        # old refresh token is no longer a lost-response retry once the window is over.
        check = self.client.verify(new.access_token, fingerprint)
        self.assertEqual((check.status_name, check.refreshed, check.subject, check.access_token),
                         ("ok", False, subject, None))
        self.assertEqual(self.client.verify(new.access_token, fingerprint,
                                            refresh_token=new.refresh_token).status, Status.OK)

        # The old refresh token presented again after the dedup window (the rotation happened
        # before the verifies ended; a second after that the window is over): reuse. The family
        # is revoked: the new access token (valid for up to another second) and the new
        # refresh token with it.
        wait_until(ended + 1.05)
        with self.assertRaises(ReuseDetected):
            self.client.verify(access, fingerprint, refresh_token=refresh)
        self.assertEqual(self.stat("status.reuse_detected") - reused, 1)
        self.assertLess(time.time(), new.token_expires_at, "the new access token expired first")
        with self.assertRaises(Revoked):
            self.client.verify(new.access_token, fingerprint)
        with self.assertRaises(Revoked):
            self.client.verify(new.access_token, fingerprint, refresh_token=new.refresh_token)
        with self.assertRaises(Revoked):
            self.client.refresh(new.refresh_token, fingerprint)

    # --- the tests ------------------------------------------------------------------------------

    def test_section_4_twenty_threads_one_shared_client(self) -> None:
        shared = Client(self.daemon.socket_path, timeout=10.0)
        self.addCleanup(shared.close)
        shared.connect()
        self.section_4("shared", lambda i: shared.verify)

    def test_section_4_twenty_threads_own_clients(self) -> None:
        clients = [Client(self.daemon.socket_path, timeout=10.0) for _ in range(THREADS)]
        for client in clients:
            self.addCleanup(client.close)
            client.connect()
        self.section_4("separate", lambda i: clients[i].verify)

    def test_twenty_asyncio_tasks(self) -> None:
        pair = self.expired_pair("tasks")
        access, refresh = tokens(pair)

        async def scenario() -> list[object]:
            tokend = aio.Client(self.daemon.socket_path, timeout=10.0)
            try:
                await tokend.connect()
                outcomes = await asyncio.gather(
                    *(tokend.verify(access, refresh_token=refresh) for _ in range(THREADS)),
                    return_exceptions=True)
                new = outcomes[0]
                assert isinstance(new, VerifyResult) and new.access_token is not None
                self.assertEqual((await tokend.verify(new.access_token)).status, Status.OK)
                return list(outcomes)
            finally:
                await tokend.close()

        self.assertOneRotation(asyncio.run(scenario()), pair)

    def test_a_lost_refreshed_reply_is_recovered_until_the_new_pair_is_used(self) -> None:
        # The access TTL, 2 s, is also this family's rotation grace (the default).
        pair = self.expired_pair("lost", fingerprint="UA", ttl=2)
        access, refresh = tokens(pair)
        before = time.time()
        first = self.client.verify(access, "UA", refresh_token=refresh)
        rotated_by = time.time()
        self.assertTrue(first.refreshed)
        assert first.access_token is not None and first.refresh_token is not None
        # Its reply was lost: the service tries again after the window. The new pair is
        # unused, so the very same pair comes back.
        wait_until(rotated_by + 1.05)
        retry = self.client.verify(access, "UA", refresh_token=refresh)
        self.assertLess(time.time(), before + 2, "too slow to retry within the 2 s grace")
        self.assertEqual(retry, first)
        self.assertEqual((retry.status_name, retry.access_token, retry.refresh_token),
                         ("refreshed", first.access_token, first.refresh_token))
        # This time the user agent got it and uses it: the old pair's retry is now reuse.
        self.assertEqual(self.client.verify(first.access_token, "UA",
                                            refresh_token=first.refresh_token).status, Status.OK)
        with self.assertRaises(ReuseDetected):
            self.client.verify(access, "UA", refresh_token=refresh)
        with self.assertRaises(Revoked):
            self.client.verify(first.access_token, "UA")

    def test_valid_access_token_is_ok_and_nothing_rotates(self) -> None:
        pair = self.client.issue("valid", "pair", fingerprint="UA")
        access, refresh = tokens(pair)
        refreshed = self.stat("status.refreshed")
        for _ in range(3):
            result = self.client.verify(access, "UA", refresh_token=refresh)
            self.assertEqual((result.status_name, result.refreshed, result.subject,
                              result.token_expires_at, result.access_token, result.refresh_token,
                              result.refresh_expires_at, result.max_expires_at, result.pair),
                             ("ok", False, "valid", pair.expires_at, None, None, None, None,
                              None))
        # While it is valid the refresh token is not looked at (spec 12.4): another pair's
        # passes too. With a session token it is ignored.
        other = self.client.issue("valid", "pair")
        self.assertEqual(self.client.verify(access, "UA", refresh_token=tokens(other)[1]).status,
                         Status.OK)
        session = self.client.issue("valid", fingerprint="UA")
        self.assertFalse(self.client.verify(session.token, "UA", refresh_token=refresh).refreshed)
        self.assertEqual(self.stat("status.refreshed"), refreshed)
        with self.client.pipeline() as pipe:  # the pipeline takes it too
            piped = pipe.verify(access, "UA", refresh_token=refresh)
        self.assertEqual(piped.result().status, Status.OK)
        # The refresh token is the family's current one, unspent: refresh takes it.
        rotated = self.client.refresh(refresh, "UA")
        self.assertEqual(rotated.session_id, pair.session_id)
        self.assertEqual(self.client.verify(tokens(rotated)[0], "UA").status, Status.OK)

    def test_wrong_refresh_token_or_fingerprint_changes_nothing(self) -> None:
        other = self.client.issue("other", "pair")
        pair = self.expired_pair("mine", fingerprint="UA")
        access, refresh = tokens(pair)
        with self.assertRaises(BadRequest):  # a refresh token of another family
            self.client.verify(access, "UA", refresh_token=tokens(other)[1])
        with self.assertRaises(FingerprintMismatch):  # the rotation checks the fingerprint
            self.client.verify(access, "another UA", refresh_token=refresh)
        with self.assertRaises(Expired):  # without a refresh token: as before
            self.client.verify(access, "UA")
        # None of that spent anything: the right request rotates, the other family is intact.
        self.assertTrue(self.client.verify(access, "UA", refresh_token=refresh).refreshed)
        self.assertEqual(self.client.refresh(tokens(other)[1]).session_id, other.session_id)

    def test_revoked_family_and_expired_refresh_token(self) -> None:
        revoked = self.client.issue("revoked", "pair", ttl=1)
        self.assertEqual(self.client.revoke(revoked.access_token).count, 1)
        ended = self.expired_pair("ended", refresh_ttl=1)  # both tokens expire together
        wait_until(revoked.expires_at + 0.02)
        with self.assertRaises(Revoked):
            self.client.verify(tokens(revoked)[0], refresh_token=tokens(revoked)[1])
        with self.assertRaises(Expired):  # the rotation's refusal: the refresh token expired
            self.client.verify(tokens(ended)[0], refresh_token=tokens(ended)[1])

    def test_command_line(self) -> None:
        pair = self.expired_pair("cli", fingerprint="UA", ttl=2)  # the new one lasts 2 s
        access, refresh = tokens(pair)
        sock = ["--socket", self.daemon.socket_path, "--fingerprint", "UA"]
        code, out, _ = cli("verify", access, "--refresh-token", refresh, *sock)
        self.assertEqual((code, out["status"], out["subject"], out["renewed"]),
                         (0, "refreshed", "cli", False))
        self.assertNotIn(out["access_token"], (access, refresh))
        self.assertNotIn(out["refresh_token"], (access, refresh))
        self.assertEqual((out["max_expires_at"], out["token_expires_at"]),
                         (pair.max_expires_at, out["expires_at"]))
        self.assertGreaterEqual(out["refresh_expires_at"], out["expires_at"])
        code, again, _ = cli("verify", out["access_token"], "--refresh-token",
                             out["refresh_token"], *sock)
        self.assertEqual((code, again["status"]), (0, "ok"))
        self.assertNotIn("access_token", again)
        code, _, err = cli("verify", access, "--refresh-token", f"Bearer {refresh}", *sock)
        self.assertEqual(code, 2)
        self.assertIn("refresh token", err)


if __name__ == "__main__":
    unittest.main()
