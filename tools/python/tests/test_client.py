"""End-to-end tests of the client against the real tokend.

The daemon binary is ``$TOKEND_BIN`` (default ``<repo>/.build/debug/tokend``). Each test starts
it on a temporary state directory and socket, as the same uid as the tests (so this process has
the issue and admin roles), and kills it in tearDown.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
import unittest

from tokend_client import (
    BadSignature,
    Client,
    ConnectionLostError,
    IssueResult,
    MalformedToken,
    RequestRefused,
    ServiceUnavailable,
    TokenRefused,
    RequestTooLargeError,
    Status,
    TokendError,
    messages,
    status_name,
)
from tokend_client.protocol import Opcode, Request, Tag, encode_string

from .support import MAX_FRAME_SIZE, Daemon, sleep_until, token_claims


def tamper_signature(token: str) -> str:
    header, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    return f"{header}.{payload}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


def session_id_bytes(session_id: str) -> bytes:
    return base64.urlsafe_b64decode(session_id + "=" * (-len(session_id) % 4))


class DaemonTestCase(unittest.TestCase):
    daemon_args: list[str] = []
    dedup_window = "1s"

    def setUp(self) -> None:
        self.daemon = Daemon(self.daemon_args, dedup_window=self.dedup_window)
        self.client = Client(self.daemon.socket_path, timeout=10.0, client_name="tests 1")

    def tearDown(self) -> None:
        self.client.close()
        self.daemon.stop()

    def assertRefused(self, name: str) -> "unittest.case._AssertRaisesContext[TokendError]":
        """Expect a TokendError and check that its name and code agree with section 9."""
        test = self

        class Context:
            def __enter__(self) -> None:
                return None

            def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                         tb: object) -> bool:
                test.assertIsNotNone(exc, f"expected a {name} refusal, got success")
                test.assertIsInstance(exc, TokendError)
                assert isinstance(exc, TokendError) and exc.status is not None
                test.assertEqual(exc.name, name, exc.message)
                test.assertEqual(exc.status, Status[name.upper()])
                test.assertEqual(status_name(exc.status), exc.name)
                # The class says whose fault it is.
                kind = (TokenRefused if Status.EXPIRED <= exc.status <= Status.WRONG_TOKEN_TYPE
                        else ServiceUnavailable if exc.status >= Status.STORE_UNAVAILABLE
                        else RequestRefused)
                test.assertIsInstance(exc, kind)
                test.assertTrue(exc.message, "refusals carry a message")
                return True

        return Context()  # type: ignore[return-value]

    def assertReuseRevokes(self, spent: str, new: IssueResult, fingerprint: bytes | str) -> None:
        """The spent refresh token is reuse, and the family it belongs to is revoked: the new
        pair neither verifies nor refreshes."""
        assert new.access_token and new.refresh_token
        with self.assertRefused("reuse_detected"):
            self.client.refresh(spent, fingerprint)
        with self.assertRefused("revoked"):
            self.client.verify(new.access_token, fingerprint)
        with self.assertRefused("revoked"):
            self.client.refresh(new.refresh_token, fingerprint)


class TokendTest(DaemonTestCase):
    def test_hello_negotiation(self) -> None:
        self.client.connect()
        self.assertIsNotNone(self.client.server)
        info = self.client.hello("tests 2")
        self.assertEqual(info.protocol_version, 1)
        self.assertTrue(info.server_name.startswith("tokend "), info.server_name)
        self.assertEqual(info.max_frame_size, MAX_FRAME_SIZE)
        self.assertEqual(self.client.max_frame_size, MAX_FRAME_SIZE)
        self.assertEqual(self.client.server, info)
        self.client.ping()

    def test_issue_and_verify_session(self) -> None:
        before = int(time.time())
        login = self.client.issue("alice", fingerprint="Mozilla/5.0", audience="api",
                                  claims={"role": "admin", "n": [1, 2]})
        self.assertEqual(login.mode_name, "session")
        self.assertIsNotNone(login.session_token)
        self.assertIsNone(login.access_token)
        self.assertEqual(len(login.session_id), 22)
        self.assertAlmostEqual(login.expires_at, before + 7200, delta=2)
        self.assertAlmostEqual(login.max_expires_at, before + 43200, delta=2)

        check = self.client.verify(login.token, fingerprint="Mozilla/5.0")
        self.assertEqual((check.status_name, check.renewed), ("ok", False))
        self.assertEqual((check.mode, check.subject, check.session_id), (1, "alice", login.session_id))
        self.assertEqual(check.expires_at, login.expires_at)
        self.assertEqual(check.token_expires_at, login.max_expires_at)
        self.assertEqual(check.claims["role"], "admin")
        self.assertEqual(check.claims["n"], [1, 2])
        self.assertEqual((check.claims["sub"], check.claims["sid"], check.claims["aud"]),
                         ("alice", login.session_id, "api"))

        with self.assertRefused("fingerprint_mismatch"):
            self.client.verify(login.token, fingerprint="curl/8")
        with self.assertRefused("fingerprint_mismatch"):
            self.client.verify(login.token)

        unbound = self.client.issue("bob")
        self.assertEqual(self.client.verify(unbound.token, fingerprint="anything").subject, "bob")

    def test_verify_slides_and_renew_extends(self) -> None:
        # Idle TTL 3000 s: less than renew-below (3600 s) remains from the start, so a verify
        # slides the session, to min(expires_at + renew-by, now + 3000, max_expires_at): never
        # further than the login's own idle TTL after this use (spec 12.4).
        login = self.client.issue("carol", ttl=3000)
        time.sleep(1.05 - time.time() % 1)  # into the next second, so now + 3000 is later
        slid = self.client.verify(login.token)
        self.assertTrue(slid.renewed)
        self.assertEqual(slid.status, Status.RENEWED)
        self.assertGreater(slid.expires_at, login.expires_at)
        self.assertLessEqual(slid.expires_at, int(time.time()) + 3000)
        again = self.client.verify(login.token)
        self.assertEqual(again.renewed, again.expires_at != slid.expires_at)
        self.assertEqual(again.status_name, "renewed" if again.renewed else "ok")
        self.assertLessEqual(again.expires_at, int(time.time()) + 3000)

        # renew sets the idle expiry to now + the session's idle TTL.
        kept = self.client.renew(login.token)
        self.assertEqual(kept.renewed, kept.expires_at != again.expires_at)
        self.assertLessEqual(kept.expires_at, int(time.time()) + 3000)

        fresh = self.client.issue("carol", ttl=60)
        time.sleep(1.05 - time.time() % 1)  # into the next second, so now + 60 is later
        moved = self.client.renew(fresh.token)
        self.assertTrue(moved.renewed)
        self.assertGreater(moved.expires_at, fresh.expires_at)
        self.assertLessEqual(moved.expires_at, int(time.time()) + 60)

        pair = self.client.issue("carol", "pair")
        with self.assertRefused("wrong_token_type"):
            self.client.renew(pair.token)

    def test_pair_refresh_dedup_and_reuse(self) -> None:
        pair = self.client.issue("dave", "pair", fingerprint=b"\x00device-1\xff", ttl=600)
        self.assertEqual(pair.mode_name, "pair")
        assert pair.access_token and pair.refresh_token and pair.refresh_expires_at
        self.assertIsNone(pair.session_token)
        self.assertEqual(pair.expires_at + 3000, pair.refresh_expires_at)  # 600 s vs 3600 s
        access = self.client.verify(pair.access_token, b"\x00device-1\xff")
        self.assertEqual((access.mode_name, access.renewed), ("pair", False))
        self.assertEqual(access.token_expires_at, pair.expires_at)
        with self.assertRefused("wrong_token_type"):
            self.client.verify(pair.refresh_token, b"\x00device-1\xff")
        with self.assertRefused("fingerprint_mismatch"):
            self.client.refresh(pair.refresh_token, b"device-2")

        rotated = self.client.refresh(pair.refresh_token, b"\x00device-1\xff")
        rotated_by = time.time()  # the daemon rotated before it answered
        repeat = self.client.refresh(pair.refresh_token, b"\x00device-1\xff")
        self.assertEqual(rotated.session_id, pair.session_id)
        self.assertNotEqual(rotated.access_token, pair.access_token)
        self.assertNotEqual(rotated.refresh_token, pair.refresh_token)
        self.assertEqual(repeat, rotated)  # within the dedup window: the very same pair
        self.assertEqual((repeat.access_token, repeat.refresh_token),
                         (rotated.access_token, rotated.refresh_token))
        assert rotated.access_token and rotated.refresh_token
        # The new pair is used: its access token verified. From then on, once the dedup window
        # is over, the spent refresh token is no lost-response retry but reuse.
        self.assertEqual(self.client.verify(rotated.access_token, b"\x00device-1\xff").subject, "dave")

        sleep_until(rotated_by + 1.05)  # past the 1 s window, which counts milliseconds
        self.assertReuseRevokes(pair.refresh_token, rotated, b"\x00device-1\xff")

    def test_revoke(self) -> None:
        login = self.client.issue("erin")
        self.assertEqual(self.client.revoke(login.token).count, 1)
        with self.assertRefused("revoked"):
            self.client.verify(login.token)
        self.assertEqual(self.client.revoke(login.token).count, 0)  # already revoked

        a, b = self.client.issue("frank"), self.client.issue("frank", "pair")
        other = self.client.issue("grace")
        self.assertEqual(self.client.revoke(subject="frank").count, 2)
        assert b.access_token
        with self.assertRefused("revoked"):
            self.client.verify(b.access_token)
        with self.assertRefused("revoked"):
            self.client.verify(a.token)
        self.assertEqual(self.client.revoke(session_id=other.session_id).count, 1)
        self.assertEqual(self.client.revoke(subject="nobody").count, 0)
        with self.assertRefused("session_unknown"):
            self.client.revoke(session_id="AAAAAAAAAAAAAAAAAAAAAA")
        with self.assertRaises(ValueError):
            self.client.revoke(login.token, subject="erin")

    def test_stats_counters(self) -> None:
        login = self.client.issue("heidi")
        self.client.verify(login.token)
        with self.assertRefused("malformed_token"):
            self.client.verify("x")
        stats = self.client.stats()
        self.assertEqual(stats["sessions_active"], 1)
        self.assertEqual(stats["records"], 1)
        self.assertEqual(stats["keys"], 1)
        self.assertEqual(stats["connections"], 1)
        # hello (on connect), issue, two verifies; the stats reply does not count itself.
        self.assertEqual((stats.op("hello"), stats.op("issue"), stats.op("verify")), (1, 1, 2))
        self.assertEqual(stats["requests_total"], 4)
        self.assertEqual(stats.status("ok"), 3)
        self.assertEqual(stats.status(Status.MALFORMED_TOKEN), 1)
        # Every operation and every status of this client's tables has its row, so the
        # daemon's names are this client's names.
        # invalidate (0x09) is never a request (12.17), so it has no row.
        for op in Opcode:
            if op is Opcode.INVALIDATE:
                self.assertNotIn(f"op.{op.wire_name}", stats)
            elif op is not Opcode.TRACK or "op.track" in stats:
                self.assertIn(f"op.{op.wire_name}", stats)
        for status in Status:
            self.assertIn(f"status.{status.wire_name}", stats)
        later = self.client.stats()
        self.assertEqual(later["requests_total"], 5)
        self.assertEqual(later.op("stats"), 1)
        if "op.track" not in stats:  # only a daemon from before track (12.16) lacks the row
            self.assertEqual(self.client.call("track").status_name, "unknown_operation")

    def test_bad_tokens(self) -> None:
        login = self.client.issue("ivan")
        for garbage in ("not-a-token", "a.b.c", "e30.e30.", login.token + "x"):
            with self.subTest(token=garbage), self.assertRaises(TokenRefused) as caught:
                self.client.verify(garbage)
            self.assertIn(caught.exception.name, ("malformed_token", "bad_signature"))
            self.assertIsInstance(caught.exception, (MalformedToken, BadSignature))
            assert caught.exception.status is not None
            self.assertEqual(caught.exception.name, status_name(caught.exception.status))
        for mistake, says in (("", "empty"), ("   ", "empty"), ("Bearer " + login.token, "Bearer"),
                              ("bearer\t" + login.token, "Bearer"), ("Bearer", "Bearer"),
                              ("a\0b", "NUL"), ("x" * 8193, "8192")):
            with self.subTest(token=mistake[:20]), self.assertRaisesRegex(ValueError, says):
                self.client.verify(mistake)
        with self.assertRefused("bad_signature"):
            self.client.verify(tamper_signature(login.token))
        with self.assertRefused("bad_signature"):
            self.client.refresh(tamper_signature(login.token))

    def test_pipelining_100_verifies(self) -> None:
        with self.client.pipeline() as issuing:
            logins = [issuing.issue(f"user-{n}", fingerprint=f"fp-{n}") for n in range(100)]
        tokens = [p.result().token for p in logins]
        self.assertEqual(len(set(tokens)), 100)

        with self.client.pipeline() as pipe:
            checks = []
            for n, token in enumerate(tokens):
                # every seventh with the wrong fingerprint; a ping and a bad token in between
                checks.append(pipe.verify(token, f"fp-{n}" if n % 7 else "wrong"))
                if n % 25 == 0:
                    pipe.ping()
                    pipe.verify("garbage")
        self.assertEqual(len(pipe), 100 + 4 + 4)
        for n, check in enumerate(checks):
            if n % 7 == 0:
                self.assertIsInstance(check.error, TokendError)
                assert isinstance(check.error, TokendError)
                self.assertEqual(check.error.name, "fingerprint_mismatch")
            else:
                result = check.result()
                self.assertEqual(result.subject, f"user-{n}")
                self.assertEqual(result.session_id, logins[n].result().session_id)
        self.assertEqual(self.client.stats().op("verify"), 104)

    def test_pipelining_thousands_without_reading_in_between(self) -> None:
        # Far beyond --max-in-flight (256) and the socket buffers: the client must read
        # while it writes (section 13), or both sides block.
        token = self.client.issue("judy").token
        count = 3000
        responses = self.client.send_many([messages.verify(token).request] * count)
        self.assertEqual(len(responses), count)
        self.assertEqual(len({r.request_id for r in responses}), count)
        self.assertTrue(all(r.ok and r.fields.string(Tag.SUBJECT) == "judy" for r in responses))

    def test_error_names(self) -> None:
        with self.assertRaises(ValueError):
            self.client.issue("")  # found before sending
        with self.assertRefused("bad_request"):
            self.client.issue("kate", ttl=10**9)  # above the daemon's idle TTL
        with self.assertRefused("bad_request"):
            self.client.issue("kate", claims={"sub": "someone else"})
        with self.assertRefused("unknown_operation"):
            self.client.call(0x7F).raise_for_status()
        other = Daemon([])
        try:
            with Client(other.socket_path) as elsewhere:
                foreign = elsewhere.issue("kate").token
        finally:
            other.stop()
        with self.assertRefused("bad_signature"):
            self.client.verify(foreign)  # signed by another daemon's key
        response = self.client.call("ping")
        self.assertEqual((response.status, response.status_name, response.ok), (0, "ok", True))

    def test_unsupported_version_keeps_the_connection(self) -> None:
        connections = self.client.stats()["connections_total"]
        (reply,) = self.client.send_many([Request(Opcode.PING, version=2)])
        self.assertEqual((reply.opcode, reply.status_name), (Opcode.PING, "unsupported_version"))
        self.assertIn("2", reply.message)
        self.client.ping()
        self.assertEqual(self.client.stats()["connections_total"], connections)

    def test_oversized_requests(self) -> None:
        connections = self.client.stats()["connections_total"]
        huge = encode_string(json.dumps({"blob": "x" * MAX_FRAME_SIZE}))
        with self.assertRaises(RequestTooLargeError):
            self.client.call("issue", [(Tag.SUBJECT, b"leo"), (Tag.CLAIMS, huge)])
        with self.assertRaises(ValueError):
            self.client.issue("leo", claims={"blob": "x" * 20000})  # above claims' own limit
        self.client.ping()  # nothing was sent; same connection
        self.assertEqual(self.client.stats()["connections_total"], connections)

        # A client that skipped hello and assumed a larger limit gets too_large and a close.
        blind = Client(self.daemon.socket_path, negotiate=False)
        self.addCleanup(blind.close)
        blind.max_frame_size = 10 * MAX_FRAME_SIZE
        with self.assertRaises(ConnectionLostError) as caught:
            blind.call("ping", [(Tag.CLIENT_NAME, encode_string("x" * MAX_FRAME_SIZE))])
        self.assertIn("too_large", str(caught.exception))
        blind.ping()  # on a new connection
        self.assertGreaterEqual(self.client.stats().status("too_large"), 1)

    def test_idempotent_issue(self) -> None:
        first = self.client.issue("mallory", claims={"a": 1}, idempotency_key="login-42")
        again = self.client.issue("mallory", claims={"a": 1}, idempotency_key="login-42")
        self.assertEqual(first, again)
        self.assertEqual(first.session_token, again.session_token)
        with self.assertRefused("bad_request"):
            self.client.issue("mallory", claims={"a": 2}, idempotency_key="login-42")
        other = self.client.issue("mallory", claims={"a": 1})
        self.assertNotEqual(other.session_id, first.session_id)

    def test_admin_operations(self) -> None:
        logins = [self.client.issue(f"s{n}") for n in range(5)]
        self.client.revoke(logins[0].token)
        mine = self.client.sessions("s1")
        self.assertEqual([s.session_id for s in mine.sessions], [logins[1].session_id])
        self.assertEqual(mine.sessions[0].state_name, "active")
        everything = self.client.all_sessions(limit=2)
        self.assertEqual(sorted(s.session_id for s in everything),
                         sorted(l.session_id for l in logins))
        # "Session-id order" is the order of the ids' 16 bytes, not of their base64url text.
        self.assertEqual([s.session_id for s in everything],
                         sorted((s.session_id for s in everything), key=session_id_bytes))
        states = {s.session_id: s.state_name for s in everything}
        self.assertEqual(states[logins[0].session_id], "revoked")

        keys = self.client.keys_list()
        self.assertEqual([k.signing for k in keys], [True])
        self.assertEqual(keys[0].algorithm, "HS256")
        self.assertEqual(self.client.keys_jwks(), {"keys": []})
        new_key = self.client.keys_rotate()
        self.assertTrue(new_key.signing)
        self.assertNotEqual(new_key.kid, keys[0].kid)
        self.assertEqual({k.kid: k.signing for k in self.client.keys_list()},
                         {keys[0].kid: False, new_key.kid: True})
        self.assertEqual(self.client.verify(logins[2].token).subject, "s2")  # old key verifies

        snap = self.client.snapshot()
        self.assertEqual(snap.count, 5)
        self.assertTrue(snap.message)


class HelloSettingsTest(DaemonTestCase):
    daemon_args = ["--session-idle", "1h", "--renew-below", "20m", "--renew-by", "10m",
                   "--access-ttl", "5m", "--refresh-ttl", "30m", "--max-lifetime", "2h",
                   "--leeway", "3s"]

    def test_hello_reports_the_settings_that_bound_issue(self) -> None:
        info = self.client.hello()
        if not info.reports_settings:
            self.skipTest(f"{info.server_name} does not report its settings in hello (59-66)")
        self.assertEqual(self.client.server, info)
        self.assertEqual((info.dedup_window_ms, info.dedup_window), (1000, 1.0))
        self.assertEqual((info.idle_ttl, info.renew_below, info.renew_by, info.access_ttl,
                          info.refresh_token_ttl, info.max_login_lifetime, info.leeway),
                         (3600, 1200, 600, 300, 1800, 7200, 3))
        self.assertIs(info.store_healthy, True)  # the embedded store, writable
        assert (info.idle_ttl and info.access_ttl and info.refresh_token_ttl
                and info.max_login_lifetime)
        # The largest overrides issue takes, in each mode.
        self.client.issue("una", ttl=info.idle_ttl, max_lifetime=info.max_login_lifetime,
                          refresh_ttl=info.refresh_token_ttl)
        self.client.issue("una", "pair", ttl=info.access_ttl,
                          refresh_ttl=info.refresh_token_ttl)
        for mode, overrides in (("session", {"ttl": info.idle_ttl + 1}),
                                ("pair", {"ttl": info.access_ttl + 1}),
                                ("pair", {"refresh_ttl": info.refresh_token_ttl + 1}),
                                ("session", {"max_lifetime": info.max_login_lifetime + 1})):
            with self.subTest(mode=mode, **overrides), self.assertRefused("bad_request"):
                self.client.issue("una", mode, **overrides)  # type: ignore[arg-type]


class LostResponseTest(DaemonTestCase):
    """Lost-response recovery of refresh: after the dedup window (300 ms here), a retry of the
    spent refresh token, with the same fingerprint, still gets the same new pair while that
    pair is unused, within the rotation grace (by default the family's access-token TTL, 30
    min). Used means its access token verified, or its refresh token refreshed: then the
    retry is reuse."""

    dedup_window = "300ms"

    def rotated(self, subject: str) -> tuple[IssueResult, IssueResult, float]:
        """A pair, the pair its refresh made (nothing used yet), and a time by which the
        rotation was made (the end of the reply)."""
        pair = self.client.issue(subject, "pair", fingerprint="UA")
        assert pair.refresh_token is not None
        new = self.client.refresh(pair.refresh_token, "UA")
        return pair, new, time.time()

    def test_a_retry_after_the_window_gets_the_same_unused_pair(self) -> None:
        pair, new, rotated_by = self.rotated("lost")
        assert pair.refresh_token and new.access_token and new.refresh_token
        sleep_until(rotated_by + 0.35)  # past the window
        retry = self.client.refresh(pair.refresh_token, "UA")
        retry_again = self.client.refresh(pair.refresh_token, "UA")  # the reply was lost twice
        self.assertEqual(retry, new)
        self.assertEqual(retry_again, new)
        self.assertEqual((retry.access_token, retry.refresh_token),
                         (new.access_token, new.refresh_token))  # byte for byte
        # Another fingerprint gets no pair, and spends or revokes nothing.
        with self.assertRefused("fingerprint_mismatch"):
            self.client.refresh(pair.refresh_token, "another UA")
        self.assertEqual(self.client.refresh(pair.refresh_token, "UA"), new)
        self.assertEqual(self.client.stats().status("reuse_detected"), 0)
        # The family is live: the pair works, and rotates on.
        self.assertEqual(self.client.verify(new.access_token, "UA").session_id, pair.session_id)
        later = self.client.refresh(new.refresh_token, "UA")
        assert later.access_token is not None
        self.assertEqual(self.client.verify(later.access_token, "UA").subject, "lost")
        self.assertEqual(self.client.sessions("lost").sessions[0].state_name, "active")

    def test_a_retry_after_the_new_access_token_was_verified_is_reuse(self) -> None:
        pair, new, rotated_by = self.rotated("used")
        assert pair.refresh_token and new.access_token and new.refresh_token
        self.client.verify(new.access_token, "UA")  # the legitimate holder uses the new pair
        sleep_until(rotated_by + 0.35)
        self.assertReuseRevokes(pair.refresh_token, new, "UA")
        self.assertEqual(self.client.stats().status("reuse_detected"), 1)

    def test_a_retry_after_the_new_refresh_token_was_refreshed_is_reuse(self) -> None:
        pair, new, _ = self.rotated("refreshed")
        assert pair.refresh_token and new.refresh_token
        later = self.client.refresh(new.refresh_token, "UA")  # uses the new pair
        assert later.access_token and later.refresh_token
        sleep_until(time.time() + 0.35)  # past both windows
        self.assertReuseRevokes(pair.refresh_token, later, "UA")

    def test_a_failed_verify_does_not_use_the_pair(self) -> None:
        # A verify refused for its fingerprint did not come from the pair's holder.
        pair, new, rotated_by = self.rotated("mismatch")
        assert pair.refresh_token and new.access_token
        with self.assertRefused("fingerprint_mismatch"):
            self.client.verify(new.access_token, "another UA")
        sleep_until(rotated_by + 0.35)
        self.assertEqual(self.client.refresh(pair.refresh_token, "UA"), new)

    def test_tokens_carry_their_generation(self) -> None:
        pair, new, _ = self.rotated("gen")
        assert pair.access_token and pair.refresh_token and new.access_token and new.refresh_token
        for token, generation in ((pair.access_token, 0), (pair.refresh_token, 0),
                                  (new.access_token, 1), (new.refresh_token, 1)):
            gen = token_claims(token)["tokend_gen"]
            self.assertIs(type(gen), int)  # an integer: not a bool, a float or a string
            self.assertEqual(gen, generation)
        self.assertEqual(self.client.verify(new.access_token, "UA").claims["tokend_gen"], 1)
        self.assertEqual(token_claims(self.client.refresh(new.refresh_token, "UA").token)["tokend_gen"],
                         2)
        # A registered claim now, like sid: issue's claims may not set it.
        with self.assertRefused("bad_request"):
            self.client.issue("gen", "pair", claims={"tokend_gen": 7})
        with self.assertRefused("bad_request"):
            self.client.issue("gen", claims={"tokend_gen": 0})


class RotationGraceTest(DaemonTestCase):
    """``--rotation-grace 2s``: a retry of an unused pair gets it back until 2 s after the
    refresh, and is reuse after that."""

    dedup_window = "300ms"
    daemon_args = ["--rotation-grace", "2s"]

    def test_the_grace_ends(self) -> None:
        pair = self.client.issue("grace", "pair")
        assert pair.refresh_token
        sent = time.time()
        new = self.client.refresh(pair.refresh_token)
        assert new.access_token
        rotated_by = time.time()
        sleep_until(rotated_by + 0.35)
        self.assertEqual(self.client.refresh(pair.refresh_token), new)
        self.assertLess(time.time(), sent + 2, "too slow to retry within the 2 s grace")
        sleep_until(rotated_by + 2.05)  # never used, but the grace is over
        with self.assertRefused("reuse_detected"):
            self.client.refresh(pair.refresh_token)
        with self.assertRefused("revoked"):
            self.client.verify(new.access_token)


class NoRotationGraceTest(DaemonTestCase):
    """``--rotation-grace 0s``: only the dedup window hands the pair back."""

    dedup_window = "300ms"
    daemon_args = ["--rotation-grace", "0s"]

    def test_a_retry_after_the_window_is_reuse(self) -> None:
        pair = self.client.issue("nograce", "pair", fingerprint="UA")
        assert pair.refresh_token
        new = self.client.refresh(pair.refresh_token, "UA")
        rotated_by = time.time()
        assert new.access_token and new.refresh_token
        self.assertEqual(self.client.refresh(pair.refresh_token, "UA"), new)  # in the window
        sleep_until(rotated_by + 0.35)  # never used, and yet
        self.assertReuseRevokes(pair.refresh_token, new, "UA")


class MillisecondDedupWindowTest(DaemonTestCase):
    """``--dedup-window 1500ms``, with ``--rotation-grace 0s`` so that the window alone decides
    what a retry gets (a grace would hand the unused pair back after the window too)."""

    dedup_window = "1500ms"
    daemon_args = ["--rotation-grace", "0s"]

    def test_the_window_counts_milliseconds(self) -> None:
        info = self.client.hello()
        if not info.reports_settings:
            self.skipTest(f"{info.server_name} does not report its settings in hello")
        self.assertEqual((info.dedup_window_ms, info.dedup_window), (1500, 1.5))
        pair = self.client.issue("ms", "pair")
        assert pair.refresh_token
        sent = time.time()
        new = self.client.refresh(pair.refresh_token)
        rotated_by = time.time()
        sleep_until(rotated_by + 1.1)  # past a window cut down to 1 s
        self.assertEqual(self.client.refresh(pair.refresh_token), new)
        self.assertLess(time.time(), sent + 1.5, "too slow to retry within the 1.5 s window")
        sleep_until(rotated_by + 1.55)  # within a window rounded up to 2 s
        with self.assertRefused("reuse_detected"):
            self.client.refresh(pair.refresh_token)


class IdleTimeoutTest(DaemonTestCase):
    daemon_args = ["--idle-timeout", "1s"]

    def test_reconnects_after_the_daemon_closed_an_idle_connection(self) -> None:
        connections = self.client.stats()["connections_total"]
        time.sleep(2.5)
        self.client.ping()  # the closed connection is noticed before sending
        self.assertEqual(self.client.stats()["connections_total"], connections + 1)


if __name__ == "__main__":
    unittest.main()
