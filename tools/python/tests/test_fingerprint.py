"""Unit tests of ``http_fingerprint``: the bytes docs/http.md says tokend's HTTP face makes from
the headers named by ``--http-fingerprint-headers``."""

from __future__ import annotations

import doctest
import email.message
import http.client
import io
import unittest

import tokend_client
from tokend_client import fingerprint, http_fingerprint


def parsed_headers(raw: str) -> http.client.HTTPMessage:
    """Headers as http.client and http.server parse them (several lines of one name kept)."""
    return http.client.parse_headers(io.BytesIO(raw.encode("latin-1") + b"\r\n"))


class HttpFingerprintTest(unittest.TestCase):
    def test_the_docs_example(self) -> None:
        # docs/http.md: User-Agent,X-Device-Id with curl/8.5.0 and d-42 is "curl/8.5.0\nd-42",
        # 10 + 1 + 4 = 15 bytes.
        value = http_fingerprint({"User-Agent": "curl/8.5.0", "X-Device-Id": "d-42"},
                                 ["User-Agent", "X-Device-Id"])
        self.assertEqual(value, b"curl/8.5.0\nd-42")
        self.assertEqual(len(value or b""), 15)

    def test_exported_from_the_package(self) -> None:
        self.assertIs(tokend_client.http_fingerprint, http_fingerprint)
        self.assertIn("http_fingerprint", tokend_client.__all__)

    def test_names_in_the_given_order_as_a_list_or_the_flags_text(self) -> None:
        headers = {"A": "1", "B": "2"}
        self.assertEqual(http_fingerprint(headers, ["B", "A"]), b"2\n1")
        self.assertEqual(http_fingerprint(headers, "B,A"), b"2\n1")
        self.assertEqual(http_fingerprint(headers, " B , A "), b"2\n1")

    def test_lookup_is_case_insensitive(self) -> None:
        self.assertEqual(http_fingerprint({"user-agent": "x"}, ["User-Agent"]), b"x")
        self.assertEqual(http_fingerprint({"USER-AGENT": "x"}, "user-agent"), b"x")

    def test_leading_and_trailing_whitespace_removed_inner_kept(self) -> None:
        self.assertEqual(http_fingerprint({"User-Agent": " \t Mozilla/5.0  (X11) \t"},
                                          ["User-Agent"]), b"Mozilla/5.0  (X11)")

    def test_missing_header_is_the_empty_string(self) -> None:
        self.assertEqual(http_fingerprint({}, ["User-Agent"]), b"")
        self.assertEqual(http_fingerprint({"X-Device-Id": "d"}, ["User-Agent", "X-Device-Id"]),
                         b"\nd")
        self.assertEqual(http_fingerprint({"User-Agent": "u"}, ["User-Agent", "X-Device-Id"]),
                         b"u\n")
        self.assertEqual(http_fingerprint({}, ["A", "B", "C"]), b"\n\n")

    def test_no_configured_header_is_no_fingerprint(self) -> None:
        self.assertIsNone(http_fingerprint({"User-Agent": "u"}, []))
        self.assertIsNone(http_fingerprint({"User-Agent": "u"}, ""))

    def test_several_lines_of_one_header_joined_with_comma_space(self) -> None:
        headers = parsed_headers("Accept-Language: de \r\nX-Other: o\r\n"
                                 "Accept-Language:  en\r\n")
        self.assertEqual(http_fingerprint(headers, ["Accept-Language", "X-Other"]),
                         b"de, en\no")
        pairs = [("Accept-Language", "de"), ("X-Other", "o"), ("accept-language", "en ")]
        self.assertEqual(http_fingerprint(pairs, ["Accept-Language"]), b"de, en")

    def test_http_client_and_email_messages(self) -> None:
        self.assertEqual(http_fingerprint(parsed_headers("user-agent: ua\r\n"), ["User-Agent"]),
                         b"ua")
        message = email.message.Message()
        message["User-Agent"] = "ua"
        self.assertEqual(http_fingerprint(message, ["User-Agent", "X-Missing"]), b"ua\n")

    def test_wsgi_environ(self) -> None:
        environ = {"REQUEST_METHOD": "GET", "HTTP_USER_AGENT": "ua ", "HTTP_X_DEVICE_ID": "d",
                   "CONTENT_TYPE": "text/plain", "wsgi.version": (1, 0)}
        self.assertEqual(http_fingerprint(environ, ["User-Agent", "X-Device-Id"]), b"ua\nd")
        self.assertEqual(http_fingerprint(environ, ["Content-Type"]), b"text/plain")
        self.assertEqual(http_fingerprint(environ, ["Accept"]), b"")

    def test_asgi_scope_headers_as_bytes(self) -> None:
        scope_headers = [(b"user-agent", b"ua"), (b"x-device-id", b" d-42")]
        self.assertEqual(http_fingerprint(scope_headers, ["User-Agent", "X-Device-Id"]),
                         b"ua\nd-42")

    def test_the_bytes_on_the_wire(self) -> None:
        # WSGI and http.server decode header bytes as Latin-1: the fingerprint is those bytes.
        raw = "Mozilla/5.0 \xe9"  # the byte 0xE9 as WSGI hands it over
        self.assertEqual(http_fingerprint({"HTTP_USER_AGENT": raw}, ["User-Agent"]),
                         b"Mozilla/5.0 \xe9")
        self.assertEqual(http_fingerprint([(b"user-agent", b"\xc3\xa9")], ["User-Agent"]),
                         b"\xc3\xa9")
        # Text Latin-1 cannot hold: UTF-8.
        self.assertEqual(http_fingerprint({"User-Agent": "\u263a"}, ["User-Agent"]),
                         "\u263a".encode())

    def test_doctest(self) -> None:
        failures, _ = doctest.testmod(fingerprint)
        self.assertEqual(failures, 0)


if __name__ == "__main__":
    unittest.main()
