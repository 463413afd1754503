"""The client against a scripted fake daemon: replies out of order, replies for no request,
malformed frames, closes mid-pipeline, too_large, timeouts, id wrap-around, negotiation."""

from __future__ import annotations

import json
import random
import time
import unittest
from typing import Callable

from tokend_client import (
    Client,
    messages,
    ConnectionLostError,
    ProtocolError,
    RequestTooLargeError,
    TokendError,
    TokendTimeoutError,
)
from tokend_client.protocol import (
    Opcode,
    Status,
    Tag,
    encode_frame,
    encode_response,
    encode_u8,
    encode_u64,
)

from .fakedaemon import FakeConnection, FakeDaemon, ReceivedRequest


def verify_reply(request: ReceivedRequest, subject: str) -> bytes:
    claims = json.dumps({"sub": subject}).encode()
    return encode_response(Opcode.VERIFY, request.request_id, Status.OK, [
        (Tag.MODE, encode_u8(1)), (Tag.SUBJECT, subject.encode()), (Tag.SESSION_ID, b"sid"),
        (Tag.CLAIMS_JSON, claims), (Tag.EXPIRES_AT, encode_u64(10)),
        (Tag.TOKEN_EXPIRES_AT, encode_u64(20)), (Tag.RENEWED, b"\x00")])


def refreshed_reply(request: ReceivedRequest, subject: str = "alice") -> bytes:
    """verify-or-refresh's answer: the new access token's verify fields and the new pair, made
    from the presented refresh token (``new-<refresh token>``)."""
    presented = request.fields.string(Tag.REFRESH_TOKEN)
    claims = json.dumps({"sub": subject, "typ": "access"}).encode()
    return encode_response(Opcode.VERIFY, request.request_id, Status.REFRESHED, [
        (Tag.MODE, encode_u8(2)), (Tag.SUBJECT, subject.encode()), (Tag.SESSION_ID, b"fam"),
        (Tag.CLAIMS_JSON, claims), (Tag.EXPIRES_AT, encode_u64(110)),
        (Tag.TOKEN_EXPIRES_AT, encode_u64(110)), (Tag.RENEWED, b"\x00"),
        (Tag.ACCESS_TOKEN, f"new-access-for-{presented}".encode()),
        (Tag.REFRESH_TOKEN, f"new-{presented}".encode()),
        (Tag.REFRESH_EXPIRES_AT, encode_u64(200)), (Tag.MAX_EXPIRES_AT, encode_u64(300))])


def ping_reply(request: ReceivedRequest) -> bytes:
    return encode_response(Opcode.PING, request.request_id, Status.OK)


class FakeDaemonTest(unittest.TestCase):
    def serve(self, *scripts: Callable[[FakeConnection], None]) -> Client:
        daemon = FakeDaemon(*scripts)
        self.addCleanup(daemon.close)
        client = Client(daemon.path, timeout=5.0)
        self.addCleanup(client.close)
        self.daemon = daemon
        return client

    def test_replies_are_matched_by_id_not_position(self) -> None:
        count = 300
        order: list[int] = []

        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            requests = conn.read_requests(count)
            random.Random(7).shuffle(requests)
            out = b""
            for request in requests:
                token = request.fields.string(Tag.TOKEN)
                order.append(int(token.split("-")[1]))
                n = int(token.split("-")[1])
                if n % 10 == 3:
                    out += encode_response(Opcode.VERIFY, request.request_id, Status.REVOKED,
                                           [(Tag.MESSAGE, f"revoked {n}".encode())])
                else:
                    out += verify_reply(request, f"user-{n}")
            conn.send(out)
            conn.read_request()  # until the client closes

        client = self.serve(script)
        with client.pipeline() as pipe:
            pending = [pipe.verify(f"token-{n}") for n in range(count)]
        self.assertNotEqual(order, sorted(order), "the fake daemon should have shuffled")
        for n, item in enumerate(pending):
            if n % 10 == 3:
                self.assertIsInstance(item.error, TokendError)
                assert isinstance(item.error, TokendError)
                self.assertEqual((item.error.name, item.error.message), ("revoked", f"revoked {n}"))
                with self.assertRaises(TokendError):
                    item.result()
            else:
                self.assertIsNone(item.error)
                self.assertEqual(item.result().subject, f"user-{n}")
                self.assertEqual(item.result().claims["sub"], f"user-{n}")

    def test_verify_or_refresh_in_a_pipeline(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            with_refresh, plain = conn.read_requests(2)
            self.assertEqual(with_refresh.fields.string(Tag.REFRESH_TOKEN), "r1")
            self.assertNotIn(Tag.REFRESH_TOKEN, plain.fields)
            conn.send(verify_reply(plain, "bob") + refreshed_reply(with_refresh))
            conn.read_request()

        client = self.serve(script)
        with client.pipeline() as pipe:
            rotated = pipe.verify("expired-access", "UA", refresh_token="r1")
            plain = pipe.verify("session-token")
        result = rotated.result()
        self.assertEqual((result.status_name, result.refreshed, result.subject, result.mode_name),
                         ("refreshed", True, "alice", "pair"))
        self.assertEqual((result.access_token, result.refresh_token, result.refresh_expires_at,
                          result.max_expires_at), ("new-access-for-r1", "new-r1", 200, 300))
        self.assertEqual((plain.result().refreshed, plain.result().access_token), (False, None))

    def test_reply_for_no_request_is_ignored(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            request = conn.read_requests(1)[0]
            conn.send(encode_response(Opcode.PING, request.request_id + 1000, Status.OK)
                      + encode_response(Opcode.PING, request.request_id, Status.OK))
            conn.read_request()

        client = self.serve(script)
        client.ping()

    def test_reply_split_into_single_bytes(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            request = conn.read_requests(1)[0]
            for byte in verify_reply(request, "alice"):
                conn.send(bytes((byte,)))
                time.sleep(0.0005)
            conn.read_request()

        client = self.serve(script)
        self.assertEqual(client.verify("t").subject, "alice")

    def assert_protocol_error_then_reconnect(self, bad_reply: Callable[[ReceivedRequest], bytes],
                                             pattern: str) -> None:
        def bad(conn: FakeConnection) -> None:
            conn.answer_hello()
            request = conn.read_requests(1)[0]
            conn.send(bad_reply(request))
            conn.read_request()

        def good(conn: FakeConnection) -> None:
            conn.answer_hello()
            conn.send(ping_reply(conn.read_requests(1)[0]))
            conn.read_request()

        client = self.serve(bad, good)
        with self.assertRaisesRegex(ProtocolError, pattern):
            client.ping()
        self.assertFalse(client.connected, "a client that cannot trust the stream closes it")
        client.ping()
        self.assertEqual(self.daemon.connections, 2)

    def test_body_shorter_than_header(self) -> None:
        self.assert_protocol_error_then_reconnect(
            lambda r: b"\x00\x00\x00\x05\x01\x02\x00\x00\x00", "shorter than the 8-byte header")

    def test_field_length_past_the_end(self) -> None:
        self.assert_protocol_error_then_reconnect(
            lambda r: encode_frame(
                encode_response(Opcode.PING, r.request_id, 0, [(Tag.MESSAGE, b"abc")])[4:-1]),
            "claims 3 bytes but 2 remain")

    def test_duplicate_field(self) -> None:
        self.assert_protocol_error_then_reconnect(
            lambda r: encode_response(Opcode.PING, r.request_id, 0,
                                      [(Tag.MESSAGE, b"a"), (Tag.MESSAGE, b"b")]),
            "more than once")

    def test_echoed_opcode_differs(self) -> None:
        self.assert_protocol_error_then_reconnect(
            lambda r: encode_response(Opcode.VERIFY, r.request_id, 0), "echoes opcode verify")

    def test_huge_announced_length(self) -> None:
        self.assert_protocol_error_then_reconnect(lambda r: b"\xff\xff\xff\xff", "4294967295-byte")

    def test_close_mid_pipeline(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            requests = conn.read_requests(5)
            conn.send(b"".join(ping_reply(r) for r in requests[1:4]))

        client = self.serve(script)
        pipe = client.pipeline()
        pending = [pipe.ping() for _ in range(5)]
        pipe.execute()
        errors = [type(p.error).__name__ if p.error else None for p in pending]
        self.assertEqual(errors, ["ConnectionLostError", None, None, None, "ConnectionLostError"])
        self.assertFalse(client.connected)

    def test_send_many_reports_partial_replies(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            requests = conn.read_requests(3)
            conn.send(ping_reply(requests[1]))

        client = self.serve(script)
        with self.assertRaises(ConnectionLostError) as caught:
            client.send_many([messages.ping().request] * 3)
        self.assertEqual([r is not None for r in caught.exception.responses], [False, True, False])

    def test_too_large_notice_then_close(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            requests = conn.read_requests(2)
            conn.send(encode_response(0, 0, Status.TOO_LARGE, [(Tag.MESSAGE, b"frame too big")])
                      + ping_reply(requests[0]))

        client = self.serve(script)
        pipe = client.pipeline()
        first, second = pipe.ping(), pipe.ping()
        pipe.execute()
        self.assertIsNone(first.error)
        self.assertIsInstance(second.error, ConnectionLostError)
        self.assertIn("too_large", str(second.error))

    def test_timeout_keeps_the_connection(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            first = conn.read_requests(1)[0]  # not answered in time
            second = conn.read_requests(1)[0]
            conn.send(ping_reply(first) + ping_reply(second))  # the late reply is dropped
            conn.read_request()

        client = self.serve(script)
        client.timeout = 0.3
        started = time.monotonic()
        with self.assertRaises(TokendTimeoutError):
            client.ping()
        self.assertLess(time.monotonic() - started, 3)
        self.assertTrue(client.connected, "a timeout leaves the connection to the other calls")
        client.ping()
        self.assertEqual(self.daemon.connections, 1)

    def test_request_ids_wrap_and_skip_zero(self) -> None:
        seen: list[int] = []

        def script(conn: FakeConnection) -> None:
            conn.answer_hello()
            requests = conn.read_requests(3)
            seen.extend(r.request_id for r in requests)
            conn.send(b"".join(ping_reply(r) for r in reversed(requests)))
            conn.read_request()

        client = self.serve(script)
        client.connect()
        assert client._conn is not None
        client._conn.wire.next_id = 0xFFFF_FFFE
        with client.pipeline() as pipe:
            for _ in range(3):
                pipe.ping()
        self.assertEqual(seen, [0xFFFF_FFFE, 0xFFFF_FFFF, 1])

    def test_hello_learns_max_frame_size(self) -> None:
        def script(conn: FakeConnection) -> None:
            conn.answer_hello(max_frame_size=64)
            request = conn.read_requests(1)[0]
            self.assertEqual(request.opcode, Opcode.PING)
            conn.send(ping_reply(request))
            conn.read_request()

        client = self.serve(script)
        client.connect()
        self.assertEqual(client.max_frame_size, 64)
        with self.assertRaises(RequestTooLargeError):
            client.verify("x" * 60)
        client.ping()  # the refused request was never sent; the stream is intact

    def test_negotiation_refused(self) -> None:
        def script(conn: FakeConnection) -> None:
            request = conn.read_requests(1)[0]
            self.assertEqual((request.version, request.opcode), (1, Opcode.HELLO))
            self.assertEqual(request.fields.string(Tag.CLIENT_NAME), "probe 1")
            conn.send(encode_response(Opcode.HELLO, request.request_id,
                                      Status.UNSUPPORTED_VERSION, [(Tag.MESSAGE, b"speaks 2")]))
            conn.read_request()

        client = self.serve(script)
        client.client_name = "probe 1"
        with self.assertRaises(TokendError) as caught:
            client.ping()
        self.assertEqual(caught.exception.name, "unsupported_version")
        self.assertFalse(client.connected)

    def test_idle_close_is_noticed_before_sending(self) -> None:
        def closes_after_one(conn: FakeConnection) -> None:
            conn.answer_hello()
            conn.send(ping_reply(conn.read_requests(1)[0]))
            # then closes, as tokend does after --idle-timeout

        def second(conn: FakeConnection) -> None:
            conn.answer_hello()
            conn.send(ping_reply(conn.read_requests(1)[0]))
            conn.read_request()

        client = self.serve(closes_after_one, second)
        client.ping()
        time.sleep(0.2)
        client.ping()  # no ConnectionLostError: nothing was in flight when it closed
        self.assertEqual(self.daemon.connections, 2)

    def test_idle_close_is_noticed_before_an_unsafe_request(self) -> None:
        # revoke is not repeated after a lost connection, so this passes only if the closed
        # connection is noticed before the request is written.
        def closes_after_one(conn: FakeConnection) -> None:
            conn.answer_hello()
            conn.send(ping_reply(conn.read_requests(1)[0]))

        def second(conn: FakeConnection) -> None:
            conn.answer_hello()
            request = conn.read_requests(1)[0]
            self.assertEqual(request.opcode, Opcode.REVOKE)
            conn.send(encode_response(Opcode.REVOKE, request.request_id, Status.OK,
                                      [(Tag.COUNT, encode_u64(1))]))
            conn.read_request()

        client = self.serve(closes_after_one, second)
        client.ping()
        time.sleep(0.2)
        self.assertEqual(client.revoke("a.b.c").count, 1)
        self.assertEqual(self.daemon.connections, 2)


if __name__ == "__main__":
    unittest.main()
