"""The hex examples of proto-spec.md section 17, read from the spec itself: every example request
is built with this package's encoders and compared byte for byte, and every example response is
decoded with the decoder the client uses for that operation."""

from __future__ import annotations

import re
import struct
import unittest
from pathlib import Path
from typing import Callable

from tokend_client.client import check_frame_sizes
from tokend_client import messages
from tokend_client.errors import RequestTooLargeError, TokendError
from tokend_client.models import (
    HelloInfo,
    IssueResult,
    KeyInfo,
    RevokeResult,
    SessionInfo,
    SnapshotResult,
    VerifyResult,
)
from tokend_client.protocol import (
    Opcode,
    Request,
    Response,
    Status,
    Tag,
    decode_response,
    encode_frame,
    encode_u8,
)

SPEC = Path(__file__).resolve().parents[3] / "proto-spec.md"

T0 = 1767225600
FINGERPRINT = bytes.fromhex("9f86d081884c7d65")
ALICE_SID = "FmV0Pq3zX8sRkT2aYbW4nA"
BOB_SID = "Tr5Kc0wLx9HdMvE7uJq1gQ"


class Example:
    def __init__(self, number: int, title: str) -> None:
        self.number = number
        self.title = title
        self.request = b""
        self.response = b""
        self.request_label = ""
        self.response_label = ""


def load_examples() -> dict[int, Example]:
    text = SPEC.read_text(encoding="utf-8")
    start = text.index("<!-- examples:begin")
    end = text.index("<!-- examples:end -->")
    examples: dict[int, Example] = {}
    current: Example | None = None
    expecting: str | None = None
    label = ""
    lines = text[start:end].splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = re.match(r"### 17\.(\d+) (.*)", line)
        if heading:
            current = Example(int(heading.group(1)), heading.group(2))
            examples[current.number] = current
        elif current is not None and re.match(r"(Request|Response) \(", line):
            expecting, label = line.split(" ", 1)[0].lower(), line
        elif expecting is not None and line.startswith("```text"):
            hex_lines = []
            i += 1
            while not lines[i].startswith("```"):
                hex_lines.append(lines[i].strip())
                i += 1
            data = bytes.fromhex("".join(hex_lines))
            assert current is not None
            if expecting == "request":
                current.request, current.request_label = data, label
            else:
                current.response, current.response_label = data, label
            expecting = None
        i += 1
    return examples


def body(frame: bytes) -> bytes:
    (length,) = struct.unpack_from(">I", frame, 0)
    assert length == len(frame) - 4, "frame length prefix disagrees with the hex"
    return frame[4:]


@unittest.skipUnless(SPEC.exists(), f"{SPEC} not found")
class SpecExamplesTest(unittest.TestCase):
    examples: dict[int, Example]

    @classmethod
    def setUpClass(cls) -> None:
        cls.examples = load_examples()

    def test_every_example_is_checked(self) -> None:
        # Examples written for the daemon before the spec shows them are checked once it does.
        checked = sorted(set(REQUESTS) - (PENDING_EXAMPLES - set(self.examples)))
        self.assertEqual(sorted(self.examples), list(range(1, len(self.examples) + 1)))
        self.assertEqual(sorted(self.examples), checked)
        self.assertEqual(sorted(REQUESTS), sorted(RESPONSES))
        for example in self.examples.values():
            self.assertTrue(example.request and example.response, example.title)

    def test_stated_sizes_match_the_hex(self) -> None:
        for n, example in self.examples.items():
            with self.subTest(example=n):
                stated = int(re.search(r"\((\d+) bytes", example.request_label).group(1))  # type: ignore[union-attr]
                self.assertEqual(stated, len(example.request))
                stated = int(re.search(r"\((\d+) bytes", example.response_label).group(1))  # type: ignore[union-attr]
                self.assertEqual(stated, len(example.response))

    def test_requests_encode_to_the_spec_bytes(self) -> None:
        for n, build in REQUESTS.items():
            if n not in self.examples:
                continue  # pending (test_every_example_is_checked)
            with self.subTest(example=n, title=self.examples[n].title):
                self.assertEqual(build().hex(), self.examples[n].request.hex())

    def test_responses_decode(self) -> None:
        for n, check in RESPONSES.items():
            if n not in self.examples:
                continue
            with self.subTest(example=n, title=self.examples[n].title):
                check(self, decode_response(body(self.examples[n].response)))

    def test_oversized_request_is_refused_before_sending(self) -> None:
        # 17.22: a 100000-byte body; the client knows the limit from hello and never sends it.
        request = _too_large_request()
        self.assertEqual(request.body_size, 100000)
        from tokend_client import Client
        client = Client("/nonexistent/tokend.sock", negotiate=False)
        client.max_frame_size = 65536
        with self.assertRaises(RequestTooLargeError):
            check_frame_sizes([request], client.max_frame_size)


def _too_large_request() -> Request:
    return Request(Opcode.ISSUE, ((Tag.CLAIMS, b"x" * (100000 - 6 - 5)),))


REQUESTS: dict[int, Callable[[], bytes]] = {
    1: lambda: messages.hello("tokenctl 0.1.0").request.encode(1),
    2: lambda: messages.ping().request.encode(2),
    3: lambda: messages.issue("alice", "session", fingerprint=FINGERPRINT,
                              claims={"role": "admin"}, idempotency_key="login-42").request.encode(3),
    4: lambda: messages.issue("bob", "pair", audience="api", ttl=900).request.encode(4),
    5: lambda: messages.verify("st.alice.1", FINGERPRINT).request.encode(5),
    6: lambda: messages.verify("at.bob.1").request.encode(6),
    7: lambda: messages.renew("st.alice.1", FINGERPRINT).request.encode(7),
    8: lambda: messages.refresh("rt.bob.1").request.encode(8),
    9: lambda: messages.revoke(session_id=ALICE_SID).request.encode(9),
    10: lambda: messages.stats().request.encode(10),
    11: lambda: messages.sessions(limit=2).request.encode(11),
    12: lambda: messages.keys_list().request.encode(12),
    13: lambda: messages.keys_jwks().request.encode(13),
    14: lambda: messages.keys_rotate().request.encode(14),
    15: lambda: messages.snapshot().request.encode(15),
    16: lambda: messages.raw(0x7F).request.encode(16),
    17: lambda: Request(Opcode.PING, version=2).encode(17),
    18: lambda: messages.raw("issue", ((Tag.MODE, encode_u8(1)),)).request.encode(18),
    19: lambda: encode_frame(bytes.fromhex("010200")),
    20: lambda: messages.verify("st.carol.1").request.encode(19),
    21: lambda: messages.stats().request.encode(20),
    22: lambda: _too_large_request().encode(21)[:10],
    23: lambda: Request(Opcode.PING, ((200, b"x"),)).encode(22),
    24: lambda: messages.keys_reload().request.encode(24),
    25: lambda: messages.metrics().request.encode(25),
    26: lambda: messages.verify("at.dave.1", refresh_token="rt.dave.1").request.encode(26),
    27: lambda: messages.track().request.encode(27),
    28: lambda: messages.verify("st.alice.1", FINGERPRINT).request.encode(28),
    29: lambda: messages.revoke(session_id=ALICE_SID).request.encode(29),
}

PENDING_EXAMPLES = {26}
"""17.26 (verify-or-refresh) is written here before the spec of this checkout may show it."""


def _header(t: SpecExamplesTest, r: Response, opcode: int, request_id: int, status: int) -> None:
    t.assertEqual((r.version, r.opcode, r.request_id, r.status), (1, opcode, request_id, status))


def _refusal(t: SpecExamplesTest, r: Response, decode: Callable[[Response], object], opcode: int,
             request_id: int, name: str, message: str) -> None:
    with t.assertRaises(TokendError) as caught:
        decode(r)
    error = caught.exception
    t.assertEqual(error.name, name)
    t.assertEqual(error.status, Status[name.upper()])
    t.assertEqual((error.opcode, error.request_id), (opcode, request_id))
    t.assertEqual(error.message, message)


def _r1(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.HELLO, 1, 0)
    info = messages.hello().decode(r)
    t.assertEqual((info.protocol_version, info.server_name, info.max_frame_size),
                  (1, "tokend 0.1.0", 65536))
    if info.reports_settings:  # the example shows the settings (tags 59-67): the defaults
        t.assertEqual(info, HelloInfo(1, "tokend 0.1.0", 65536, dedup_window_ms=5000,
                                      idle_ttl=7200, renew_below=3600, renew_by=3600,
                                      access_ttl=1800, refresh_token_ttl=3600,
                                      max_login_lifetime=43200, leeway=0,
                                      store_healthy=True))
        t.assertEqual(info.dedup_window, 5.0)
    else:
        t.assertEqual(info, HelloInfo(1, "tokend 0.1.0", 65536))


def _r2(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.PING, 2, 0)
    t.assertIsNone(messages.ping().decode(r))
    t.assertEqual(list(r.fields.tags()), [Tag.STORE_HEALTHY])  # read by hello, not by ping()
    t.assertIs(r.fields.boolean(Tag.STORE_HEALTHY), True)


def _r3(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.ISSUE, 3, 0)
    result = messages.issue("x").decode(r)
    t.assertEqual(result, IssueResult(mode=1, session_id=ALICE_SID, expires_at=T0 + 7200,
                                      max_expires_at=T0 + 43200, session_token="st.alice.1"))
    t.assertEqual(result.token, "st.alice.1")
    t.assertEqual(result.mode_name, "session")


def _r4(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.ISSUE, 4, 0)
    t.assertEqual(messages.issue("x").decode(r),
                  IssueResult(mode=2, session_id=BOB_SID, expires_at=T0 + 900,
                              max_expires_at=T0 + 43200, access_token="at.bob.1",
                              refresh_token="rt.bob.1", refresh_expires_at=T0 + 3600))


def _r5(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.VERIFY, 5, Status.RENEWED)
    result = messages.verify("x").decode(r)
    t.assertIsInstance(result, VerifyResult)
    t.assertTrue(result.renewed)
    t.assertEqual(result.status_name, "renewed")
    t.assertEqual((result.mode, result.subject, result.session_id), (1, "alice", ALICE_SID))
    t.assertEqual((result.expires_at, result.token_expires_at), (T0 + 10800, T0 + 43200))
    t.assertEqual(dict(result.claims), {"iss": "tokend", "sub": "alice", "iat": T0,
                                        "exp": T0 + 43200, "jti": "9xQ2vL0mWc8RtZy4KbNe3w",
                                        "sid": ALICE_SID, "role": "admin"})


def _r6(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.VERIFY, 6, 0)
    result = messages.verify("x").decode(r)
    t.assertFalse(result.renewed)
    t.assertEqual((result.mode_name, result.subject, result.session_id), ("pair", "bob", BOB_SID))
    t.assertEqual((result.expires_at, result.token_expires_at), (T0 + 900, T0 + 900))
    t.assertEqual(result.claims["aud"], "api")
    t.assertEqual(result.claims["tokend_gen"], 0)  # the pair issue made: generation 0


def _r7(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.RENEW, 7, Status.RENEWED)
    result = messages.renew("x").decode(r)
    t.assertTrue(result.renewed)
    t.assertEqual(result.expires_at, T0 + 13200)


def _r8(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.REFRESH, 8, 0)
    t.assertEqual(messages.refresh("x").decode(r),
                  IssueResult(mode=2, session_id=BOB_SID, expires_at=T0 + 1700,
                              max_expires_at=T0 + 43200, access_token="at.bob.2",
                              refresh_token="rt.bob.2", refresh_expires_at=T0 + 4400))


def _r9(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.REVOKE, 9, 0)
    t.assertEqual(messages.revoke(subject="x").decode(r), RevokeResult(1))


def _r10(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.STATS, 10, 0)
    stats = messages.stats().decode(r)
    counters = dict(stats.counters)
    # Rows added to the example since (the persistence_* health rows, all 0 when healthy).
    later = {name: counters.pop(name) for name in list(counters)
             if name.startswith("persistence_")}
    t.assertEqual(set(later.values()) | {0}, {0})
    t.assertEqual(counters, {
        "sessions_active": 1, "families_active": 1, "revoked": 1, "dedup_entries": 0,
        "records": 3, "keys": 1, "cache_entries": 2, "cache_hits": 1, "cache_misses": 3,
        "connections": 1, "connections_total": 3, "uptime_seconds": 7200, "requests_total": 9,
    })
    t.assertEqual(stats.op("verify"), 0)  # abridged example: no op.* rows


def _r11(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.SESSIONS, 11, 0)
    page = messages.sessions().decode(r)
    t.assertEqual(page.sessions, [
        SessionInfo(ALICE_SID, "alice", 1, 3, T0, T0 + 13200, T0 + 43200),
        SessionInfo(BOB_SID, "bob", 2, 2, T0, T0 + 4400, T0 + 43200),
    ])
    t.assertEqual([s.state_name for s in page.sessions], ["revoked", "idle_expired"])
    t.assertEqual(page.next_cursor, BOB_SID)


def _r12(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.KEYS_LIST, 12, 0)
    t.assertEqual(messages.keys_list().decode(r),
                  [KeyInfo("Yz4rN8aQw2LcJt6Vx0Hk1g", "HS256", True, T0 - 86400)])


def _r13(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.KEYS_JWKS, 13, 0)
    t.assertEqual(messages.keys_jwks().decode(r), {"keys": []})


def _r14(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.KEYS_ROTATE, 14, 0)
    t.assertEqual(messages.keys_rotate().decode(r),
                  KeyInfo("b3Kd9WmP5sEf2TqRz7UyXA", "HS256", True, T0 + 7300))


def _r15(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.SNAPSHOT, 15, 0)
    t.assertEqual(messages.snapshot().decode(r),
                  SnapshotResult(3, "snapshot written: 3 records, 314 bytes in 0.002 s"))


def _r16(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, 0x7F, 16, Status.UNKNOWN_OPERATION)
    self_decoded = messages.raw(0x7F).decode(r)
    t.assertIs(self_decoded, r)
    _refusal(t, r, lambda resp: resp.raise_for_status(), 0x7F, 16, "unknown_operation",
             "unknown operation 127")


def _r17(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.PING, 17, Status.UNSUPPORTED_VERSION)
    _refusal(t, r, messages.ping().decode, Opcode.PING, 17, "unsupported_version",
             "protocol version 2 is not supported; this daemon speaks 1...1")


def _r18(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.ISSUE, 18, Status.BAD_REQUEST)
    _refusal(t, r, messages.issue("x").decode, Opcode.ISSUE, 18, "bad_request",
             "missing field subject (2)")


def _r19(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, 0, 0, Status.BAD_REQUEST)
    t.assertTrue(r.is_connection_notice)
    t.assertEqual(r.message, "the frame body is shorter than the 6-byte request header")


def _r20(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.VERIFY, 19, Status.SESSION_EXPIRED)
    _refusal(t, r, messages.verify("x").decode, Opcode.VERIFY, 19, "session_expired",
             "the session expired after being idle; log in again")


def _r21(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.STATS, 20, Status.FORBIDDEN)
    _refusal(t, r, messages.stats().decode, Opcode.STATS, 20, "forbidden",
             "uid 1001 may not stats; tokend's --admin-uids or --admin-gids grants it")


def _r22(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, 0, 0, Status.TOO_LARGE)
    t.assertTrue(r.is_connection_notice)
    t.assertEqual(r.status_name, "too_large")
    t.assertIn("100000", r.message)


def _r23(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.PING, 22, 0)
    t.assertIsNone(messages.ping().decode(r))


def _r24(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.KEYS_RELOAD, 24, 0)
    t.assertEqual(messages.keys_reload().decode(r), [
        KeyInfo("Yz4rN8aQw2LcJt6Vx0Hk1g", "HS256", False, T0 - 86400),
        KeyInfo("b3Kd9WmP5sEf2TqRz7UyXA", "HS256", True, T0 + 7300),
        KeyInfo("Q8nVt1ZcLr4XyHs0Wd6EjA", "HS256", False, T0 + 9000),
    ])


def _r25(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.METRICS, 25, 0)
    t.assertEqual(messages.metrics().decode(r),
                  '# TYPE tokend_requests_total counter\ntokend_requests_total{op="ping",status="ok"} 2\n'
                  '# TYPE tokend_connections gauge\ntokend_connections 1\n')


def _r26(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.VERIFY, 26, Status.REFRESHED)
    t.assertTrue(r.ok)
    result = messages.verify("x", refresh_token="y").decode(r)
    dave = "Dv7Hn2Qx0WsKe5LmZt3PaA"
    t.assertEqual((result.status_name, result.refreshed, result.renewed, result.mode_name,
                   result.subject, result.session_id), ("refreshed", True, False, "pair", "dave", dave))
    t.assertEqual((result.expires_at, result.token_expires_at), (T0 + 8160, T0 + 8160))
    t.assertEqual(dict(result.claims), {"iss": "tokend", "sub": "dave", "iat": T0 + 8100,
                                        "exp": T0 + 8160, "jti": "Mw4Rb8Nq2YtLc6VsXe0HgA",
                                        "sid": dave, "tokend_gen": 1})  # one rotation: generation 1
    t.assertEqual(result.pair, IssueResult(mode=2, session_id=dave, expires_at=T0 + 8160,
                                           max_expires_at=T0 + 8000 + 43200,
                                           access_token="at.dave.2", refresh_token="rt.dave.2",
                                           refresh_expires_at=T0 + 8100 + 3600))


def _r27(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.TRACK, 27, 0)
    t.assertIsNone(messages.track().decode(r))


def _r28(t: SpecExamplesTest, r: Response) -> None:
    _header(t, r, Opcode.VERIFY, 28, 0)
    result = messages.verify("x").decode(r)
    t.assertEqual((result.subject, result.session_id, result.expires_at, result.renewed),
                  ("alice", ALICE_SID, T0 + 7200, False))
    t.assertEqual(result.cacheable_until, T0 + 3600)
    t.assertFalse(result.local)


def _r29(t: SpecExamplesTest, r: Response) -> None:
    # An invalidation frame: a response to no request, naming the session to drop.
    _header(t, r, Opcode.INVALIDATE, 0, 0)
    t.assertEqual(r.fields.raw(Tag.SESSION_ID), ALICE_SID.encode())
    t.assertIsNone(r.fields.raw(Tag.SUBJECT))
    t.assertNotIn(Tag.FLUSH, r.fields)


RESPONSES: dict[int, Callable[[SpecExamplesTest, Response], None]] = {
    1: _r1, 2: _r2, 3: _r3, 4: _r4, 5: _r5, 6: _r6, 7: _r7, 8: _r8, 9: _r9, 10: _r10,
    11: _r11, 12: _r12, 13: _r13, 14: _r14, 15: _r15, 16: _r16, 17: _r17, 18: _r18,
    19: _r19, 20: _r20, 21: _r21, 22: _r22, 23: _r23, 24: _r24, 25: _r25, 26: _r26,
    27: _r27, 28: _r28, 29: _r29,
}


if __name__ == "__main__":
    unittest.main()
