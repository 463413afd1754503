"""Errors that say whose fault they are, and argument mistakes caught before sending."""

from __future__ import annotations

import pickle
import unittest

import tokend_client
from tokend_client import (
    BadRequest,
    ConnectionLostError,
    DaemonUnreachableError,
    Forbidden,
    ProtocolError,
    RequestRefused,
    RequestTooLargeError,
    Revoked,
    ServiceUnavailable,
    Status,
    StoreUnavailable,
    TokendClientError,
    TokendError,
    TokendTimeoutError,
    TokenRefused,
    messages,
)
from tokend_client.errors import error_for_status
from tokend_client.protocol import Opcode, Tag, decode_response, encode_response, is_success

TOKEN_REFUSALS = {"expired", "revoked", "fingerprint_mismatch", "session_expired",
                  "session_unknown", "reuse_detected", "max_lifetime_reached", "malformed_token",
                  "bad_signature", "wrong_token_type"}
SERVICE_FAILURES = {"store_unavailable", "internal_error"}


def class_name(status: str) -> str:
    return "".join(part.capitalize() for part in status.split("_"))


class StatusClassesTest(unittest.TestCase):
    def test_every_refusal_status_has_its_class_and_kind(self) -> None:
        for status in Status:
            if is_success(status):
                continue
            with self.subTest(status=status.wire_name):
                reply = decode_response(encode_response(
                    Opcode.VERIFY, 7, status, [(Tag.MESSAGE, b"why")])[4:])
                error = reply.error()
                self.assertEqual(type(error).__name__, class_name(status.wire_name))
                self.assertIs(getattr(tokend_client, type(error).__name__), type(error))
                self.assertEqual((error.status, error.name, error.message, error.opcode,
                                  error.request_id), (status, status.wire_name, "why",
                                                      Opcode.VERIFY, 7))
                kind = (TokenRefused if status.wire_name in TOKEN_REFUSALS
                        else ServiceUnavailable if status.wire_name in SERVICE_FAILURES
                        else RequestRefused)
                self.assertIsInstance(error, kind)
                for other in {TokenRefused, ServiceUnavailable, RequestRefused} - {kind}:
                    self.assertNotIsInstance(error, other)
                self.assertIsInstance(error, TokendError)
                self.assertEqual(str(error), f"{status.wire_name} ({int(status)}): why")

    def test_forbidden_and_bad_request_are_named_for_themselves(self) -> None:
        self.assertIsInstance(error_for_status(12, "forbidden"), Forbidden)
        self.assertIsInstance(error_for_status(13, "bad_request"), BadRequest)
        self.assertNotIsInstance(BadRequest("x"), ValueError)  # ValueError is for our checks

    def test_unknown_status_is_a_refusal_of_the_request(self) -> None:
        error = error_for_status(20, "status_20", "new")
        self.assertIs(type(error), RequestRefused)
        self.assertNotIsInstance(error, (TokenRefused, ServiceUnavailable))

    def test_client_side_failures_are_service_failures(self) -> None:
        for cls, name in ((ConnectionLostError, "connection_lost"),
                          (DaemonUnreachableError, "unreachable"),
                          (TokendTimeoutError, "timeout"), (ProtocolError, "protocol_error")):
            with self.subTest(cls=cls.__name__):
                error = cls("what happened")
                self.assertIsInstance(error, ServiceUnavailable)
                self.assertEqual((error.name, error.status, error.message, str(error)),
                                 (name, None, "what happened", "what happened"))
        self.assertIsInstance(ConnectionLostError("x"), ConnectionError)
        self.assertIsInstance(TokendTimeoutError("x"), TimeoutError)
        self.assertIsInstance(RequestTooLargeError("x"), ValueError)
        self.assertNotIsInstance(RequestTooLargeError("x"), ServiceUnavailable)

    def test_former_names_still_work(self) -> None:
        self.assertIs(TokendClientError, TokendError)
        self.assertTrue(issubclass(Revoked, TokendError))
        self.assertTrue(issubclass(ConnectionLostError, TokendClientError))

    def test_errors_pickle(self) -> None:
        for error in (error_for_status(17, "store_unavailable", "redis down", opcode=4,
                                       request_id=9),
                      ConnectionLostError("gone"), TokendTimeoutError("slow")):
            with self.subTest(error=type(error).__name__):
                copy = pickle.loads(pickle.dumps(error))
                self.assertIs(type(copy), type(error))
                self.assertEqual((copy.status, copy.name, copy.message, copy.request_id,
                                  str(copy)),
                                 (error.status, error.name, error.message, error.request_id,
                                  str(error)))
        self.assertIsInstance(pickle.loads(pickle.dumps(StoreUnavailable("x"))), ServiceUnavailable)


class ArgumentMistakesTest(unittest.TestCase):
    """Found before sending, always ValueError (TypeError for a wrong type)."""

    def test_token_mistakes(self) -> None:
        cases = {"": "empty", " \t": "empty", "Bearer abc.def.ghi": "starts with 'Bearer '",
                 "bearer abc": "Bearer", "  BEARER\tabc": "Bearer", "Bearer": "Bearer",
                 "a\x00b": "NUL", "x" * 8193: "8192"}
        for build in (messages.verify, messages.renew, messages.refresh,
                      lambda t: messages.revoke(t),
                      lambda t: messages.verify("access", refresh_token=t)):
            for token, says in cases.items():
                with self.subTest(token=token[:12], says=says), \
                        self.assertRaisesRegex(ValueError, says):
                    build(token)
        messages.verify("x" * 8192)  # at the limit
        messages.verify("bearerish.token.value")  # only the scheme followed by a space counts
        with self.assertRaises(TypeError):
            messages.verify(b"abc")  # type: ignore[arg-type]
        messages.verify("a", refresh_token="x" * 8192)
        with self.assertRaisesRegex(ValueError, "the refresh token"):
            messages.verify("a", refresh_token="Bearer r")
        with self.assertRaisesRegex(TypeError, "the refresh token"):
            messages.verify("a", refresh_token=b"r")  # type: ignore[arg-type]

    def test_limits_of_section_7(self) -> None:
        with self.assertRaisesRegex(ValueError, "fingerprint.*1024"):
            messages.verify("t", "f" * 1025)
        messages.verify("t", "f" * 1024)
        with self.assertRaisesRegex(ValueError, "subject"):
            messages.issue("")
        with self.assertRaisesRegex(ValueError, "subject.*256"):
            messages.issue("s" * 257)
        with self.assertRaisesRegex(ValueError, "claims.*16384"):
            messages.issue("s", claims={"x": "y" * 16384})
        with self.assertRaisesRegex(ValueError, "idempotency key"):
            messages.issue("s", idempotency_key=b"k" * 257)
        with self.assertRaisesRegex(ValueError, "at least 1"):
            messages.issue("s", ttl=0)
        with self.assertRaisesRegex(ValueError, "limit"):
            messages.sessions(limit=0)
        with self.assertRaisesRegex(ValueError, "session id"):
            messages.revoke(session_id="s" * 129)
        with self.assertRaisesRegex(ValueError, "client_name"):
            messages.hello("c" * 257)


if __name__ == "__main__":
    unittest.main()
