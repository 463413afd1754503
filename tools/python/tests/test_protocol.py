"""Unit tests of the codec, and of this package's tables against the tables of proto-spec.md and
the status names of the README (the names tokenctl prints)."""

from __future__ import annotations

import re
import unittest
from pathlib import Path
from typing import Sequence

from tokend_client import IssueResult, messages
from tokend_client.errors import ProtocolError, TokendError
from tokend_client.protocol import (
    REPEATED_TAGS,
    TAG_TYPES,
    Fields,
    FrameReader,
    Opcode,
    Status,
    Tag,
    decode_response,
    encode_fields,
    encode_response,
    encode_u64,
    opcode_name,
    status_name,
)

REPO = Path(__file__).resolve().parents[3]


def response_body(opcode: int, request_id: int, status: int,
                  fields: Sequence[tuple[int, bytes]]) -> bytes:
    return encode_response(opcode, request_id, status, fields)[4:]


class FieldsTest(unittest.TestCase):
    def test_unknown_tags_are_skipped_and_may_repeat(self) -> None:
        data = encode_fields([(200, b"a"), (Tag.COUNT, encode_u64(7)), (200, b"bb"), (15, b"")])
        fields = Fields.parse(data)
        self.assertEqual(fields.u64(Tag.COUNT), 7)
        self.assertNotIn(200, fields)
        self.assertEqual(list(fields.tags()), [Tag.COUNT])

    def test_duplicate_known_tag_is_malformed(self) -> None:
        data = encode_fields([(Tag.COUNT, encode_u64(1)), (Tag.COUNT, encode_u64(2))])
        with self.assertRaisesRegex(ProtocolError, "more than once"):
            Fields.parse(data)

    def test_repeated_record_tags(self) -> None:
        rec = encode_fields([(Tag.NAME, b"a"), (Tag.VALUE, encode_u64(1))])
        fields = Fields.parse(encode_fields([(Tag.STAT, rec), (Tag.STAT, rec)]))
        self.assertEqual(len(fields.records(Tag.STAT)), 2)

    def test_truncated_field_header(self) -> None:
        for cut in range(1, 5):
            with self.subTest(cut=cut), self.assertRaisesRegex(ProtocolError, "field header"):
                Fields.parse(encode_fields([(Tag.COUNT, encode_u64(1))]) + b"\x2c\x00\x00\x00"[:cut])

    def test_length_past_the_end(self) -> None:
        data = encode_fields([(Tag.MESSAGE, b"hello")])[:-1]
        with self.assertRaisesRegex(ProtocolError, "claims 5 bytes but 4 remain"):
            Fields.parse(data)

    def test_record_with_bad_inner_length(self) -> None:
        bad_record = b"\x38\x00\x00\x00\x09abc"
        fields = Fields.parse(encode_fields([(Tag.STAT, bad_record)]))
        with self.assertRaises(ProtocolError):
            fields.records(Tag.STAT)

    def test_typed_values_are_checked(self) -> None:
        fields = Fields.parse(encode_fields([
            (Tag.MODE, b"\x01\x02"), (Tag.RENEWED, b"\x02"), (Tag.COUNT, b"\x00" * 7),
            (Tag.SUBJECT, b"\xff"), (Tag.SESSION_ID, b"a\x00b"), (Tag.SIGNING, b""),
        ]))
        for reader, tag in ((fields.u8, Tag.MODE), (fields.boolean, Tag.RENEWED),
                            (fields.u64, Tag.COUNT), (fields.string, Tag.SUBJECT),
                            (fields.string, Tag.SESSION_ID), (fields.boolean, Tag.SIGNING),
                            (fields.u64, Tag.EXPIRES_AT)):
            with self.subTest(tag=tag.name), self.assertRaises(ProtocolError):
                reader(tag)
        self.assertIsNone(fields.opt_u64(Tag.EXPIRES_AT))

    def test_response_shorter_than_header(self) -> None:
        for size in range(8):
            with self.subTest(size=size), self.assertRaisesRegex(ProtocolError, "shorter"):
                decode_response(b"\x01" * size)

    def test_response_of_another_version(self) -> None:
        body = bytearray(response_body(Opcode.PING, 1, 0, []))
        body[0] = 2
        with self.assertRaisesRegex(ProtocolError, "version 2"):
            decode_response(bytes(body))

    def test_refusal_without_message_is_tolerated(self) -> None:
        response = decode_response(response_body(Opcode.VERIFY, 3, Status.REVOKED, []))
        with self.assertRaises(TokendError) as caught:
            messages.verify("t").decode(response)
        self.assertEqual((caught.exception.name, caught.exception.message), ("revoked", ""))

    def test_unknown_status_is_a_refusal(self) -> None:
        response = decode_response(response_body(Opcode.PING, 3, 20, [(Tag.MESSAGE, b"new")]))
        with self.assertRaises(TokendError) as caught:
            messages.ping().decode(response)
        self.assertEqual((caught.exception.status, caught.exception.name), (20, "status_20"))

    def test_renewed_flag_must_agree_with_status(self) -> None:
        claims = b'{"sub":"a"}'
        fields = [(Tag.MODE, b"\x01"), (Tag.SUBJECT, b"a"), (Tag.SESSION_ID, b"s"),
                  (Tag.CLAIMS_JSON, claims), (Tag.EXPIRES_AT, encode_u64(5)),
                  (Tag.TOKEN_EXPIRES_AT, encode_u64(9))]
        ok = messages.verify("t").decode(decode_response(response_body(
            Opcode.VERIFY, 1, Status.OK, fields + [(Tag.RENEWED, b"\x00")])))
        self.assertFalse(ok.renewed)
        for status, flag in ((Status.OK, b"\x01"), (Status.RENEWED, b"\x00")):
            with self.subTest(status=status.name), self.assertRaisesRegex(ProtocolError, "renewed"):
                messages.verify("t").decode(decode_response(response_body(
                    Opcode.VERIFY, 1, status, fields + [(Tag.RENEWED, flag)])))

    def test_refreshed_carries_the_new_pair(self) -> None:
        claims = b'{"sub":"a","typ":"access"}'
        fields = [(Tag.MODE, b"\x02"), (Tag.SUBJECT, b"a"), (Tag.SESSION_ID, b"s"),
                  (Tag.CLAIMS_JSON, claims), (Tag.EXPIRES_AT, encode_u64(9)),
                  (Tag.TOKEN_EXPIRES_AT, encode_u64(9)), (Tag.RENEWED, b"\x00")]
        pair = [(Tag.ACCESS_TOKEN, b"new.access.t"), (Tag.REFRESH_TOKEN, b"new.refresh.t"),
                (Tag.REFRESH_EXPIRES_AT, encode_u64(99)), (Tag.MAX_EXPIRES_AT, encode_u64(999))]
        response = decode_response(response_body(Opcode.VERIFY, 1, Status.REFRESHED,
                                                 fields + pair))
        self.assertTrue(response.ok)
        response.raise_for_status()
        result = messages.verify("t", refresh_token="r").decode(response)
        self.assertEqual((result.status_name, result.refreshed, result.renewed, result.subject,
                          result.token_expires_at),
                         ("refreshed", True, False, "a", 9))
        self.assertEqual((result.access_token, result.refresh_token, result.refresh_expires_at,
                          result.max_expires_at), ("new.access.t", "new.refresh.t", 99, 999))
        self.assertNotIn("new.", repr(result))  # tokens stay out of logs
        self.assertEqual(result.pair, IssueResult(
            mode=2, session_id="s", expires_at=9, max_expires_at=999,
            access_token="new.access.t", refresh_token="new.refresh.t", refresh_expires_at=99))

        for missing in range(len(pair)):  # the new pair is required with this status
            partial = pair[:missing] + pair[missing + 1:]
            with self.subTest(missing=Tag(pair[missing][0]).name), \
                    self.assertRaisesRegex(ProtocolError, "missing field"):
                messages.verify("t").decode(decode_response(response_body(
                    Opcode.VERIFY, 1, Status.REFRESHED, fields + partial)))
        with self.assertRaisesRegex(ProtocolError, "renewed"):
            messages.verify("t").decode(decode_response(response_body(
                Opcode.VERIFY, 1, Status.REFRESHED, fields[:-1] + [(Tag.RENEWED, b"\x01")] + pair)))

        # ok and renewed carry no pair: stray fields are not taken for one.
        ok = messages.verify("t").decode(decode_response(response_body(
            Opcode.VERIFY, 1, Status.OK, fields + pair)))
        self.assertEqual((ok.refreshed, ok.access_token, ok.refresh_token, ok.refresh_expires_at,
                          ok.max_expires_at, ok.pair), (False, None, None, None, None, None))

    def test_unknown_mode_and_state_decode_as_numbers(self) -> None:
        record = encode_fields([(Tag.SESSION_ID, b"s"), (Tag.SUBJECT, b"u"), (Tag.MODE, b"\x07"),
                                (Tag.STATE, b"\x09"), (Tag.CREATED_AT, encode_u64(1)),
                                (Tag.EXPIRES_AT, encode_u64(2)),
                                (Tag.MAX_EXPIRES_AT, encode_u64(3))])
        page = messages.sessions().decode(decode_response(response_body(
            Opcode.SESSIONS, 1, 0, [(Tag.SESSION, record)])))
        self.assertEqual((page.sessions[0].mode_name, page.sessions[0].state_name), ("7", "9"))
        self.assertIsNone(page.next_cursor)


class FrameReaderTest(unittest.TestCase):
    def test_frames_split_and_joined_arbitrarily(self) -> None:
        frames = [encode_response(Opcode.PING, i, 0, [(Tag.MESSAGE, b"x" * i)]) for i in range(1, 6)]
        stream = b"".join(frames)
        for step in (1, 3, 7, len(stream)):
            with self.subTest(step=step):
                reader = FrameReader()
                got: list[int] = []
                for start in range(0, len(stream), step):
                    reader.feed(stream[start:start + step])
                    got.extend(decode_response(b).request_id for b in reader.bodies())
                self.assertEqual(got, [1, 2, 3, 4, 5])
                self.assertEqual(reader.buffered, 0)

    def test_oversized_frame(self) -> None:
        reader = FrameReader(max_body_size=100)
        reader.feed(b"\x00\x00\x00\x65")
        with self.assertRaisesRegex(ProtocolError, "101-byte"):
            reader.next_body()


class EncodingTest(unittest.TestCase):
    def test_string_with_nul_is_refused(self) -> None:
        with self.assertRaises(ValueError):
            messages.verify("a\x00b")

    def test_revoke_takes_exactly_one_target(self) -> None:
        for kwargs in ({}, {"token": "t", "subject": "s"}, {"session_id": "i", "subject": "s"}):
            with self.subTest(kwargs=kwargs), self.assertRaises(ValueError):
                messages.revoke(**kwargs)

    def test_ttl_overrides(self) -> None:
        from datetime import timedelta
        a = messages.issue("s", "pair", ttl=timedelta(minutes=15), refresh_ttl=60).request
        b = messages.issue("s", "pair", ttl=900, refresh_ttl=timedelta(seconds=60)).request
        self.assertEqual(a, b)
        with self.assertRaises(ValueError):
            messages.issue("s", ttl=timedelta(milliseconds=1500))
        with self.assertRaises(ValueError):
            messages.issue("s", ttl=-1)
        with self.assertRaises(ValueError):
            messages.issue("s", mode="sliding")  # type: ignore[arg-type]

    def test_empty_fingerprint_is_sent_as_none(self) -> None:
        self.assertEqual(messages.verify("t", b"").request, messages.verify("t").request)

    def test_verify_with_a_refresh_token(self) -> None:
        call = messages.verify("a.b.c", "UA", refresh_token="r.s.t")
        self.assertEqual(call.request.fields, ((Tag.TOKEN, b"a.b.c"), (Tag.FINGERPRINT, b"UA"),
                                               (Tag.REFRESH_TOKEN, b"r.s.t")))
        self.assertEqual(messages.verify("a.b.c", refresh_token="r").request.fields,
                         ((Tag.TOKEN, b"a.b.c"), (Tag.REFRESH_TOKEN, b"r")))
        # It may rotate the pair, as refresh does: not repeated after a lost connection.
        self.assertFalse(call.safe_to_repeat)
        self.assertTrue(messages.verify("a.b.c", "UA").safe_to_repeat)
        self.assertTrue(messages.renew("a.b.c").safe_to_repeat)


class TablesAgainstSpecTest(unittest.TestCase):
    """The tables here must be the spec's: a renamed status or tag in either place fails."""

    spec = (REPO / "proto-spec.md").read_text(encoding="utf-8") if (REPO / "proto-spec.md").exists() else ""

    def setUp(self) -> None:
        if not self.spec:
            self.skipTest("proto-spec.md not found")

    def section(self, heading: str) -> str:
        start = self.spec.index(heading)
        return self.spec[start:self.spec.index("\n## ", start + 1)]

    # verify-or-refresh's status, refreshed (19), is defined for the daemon before the spec's
    # table and the README's list name it; once they do, it is checked like the others.
    PENDING_STATUSES = {Status.REFRESHED}

    def test_status_codes(self) -> None:
        rows = re.findall(r"^\|\s*(\d+) \| `([a-z_]+)`", self.section("## 9. Status codes"), re.M)
        listed = {int(c): n for c, n in rows}
        pending = {s for s in self.PENDING_STATUSES if s.value not in listed}
        self.assertEqual(listed, {s.value: s.wire_name for s in Status if s not in pending})
        self.assertEqual(status_name(17), "store_unavailable")
        self.assertEqual(status_name(19), "refreshed")

    def test_status_names_match_the_readme(self) -> None:
        readme = (REPO / "README.md").read_text(encoding="utf-8")
        paragraph = readme[readme.index("Status names"):]
        paragraph = paragraph[paragraph.index(":"):paragraph.index("\n\n")]
        names = re.findall(r"`([a-z_]+)`", paragraph)
        pending = {s for s in self.PENDING_STATUSES if s.wire_name not in names}
        self.assertEqual(names, [s.wire_name for s in Status if s not in pending])

    def test_opcodes(self) -> None:
        rows = re.findall(r"^\| `0x([0-9a-f]{2})` \| `([a-z_]+)`", self.section("## 12. Operations"), re.M)
        self.assertEqual({int(c, 16): n for c, n in rows}, {o.value: o.wire_name for o in Opcode})
        self.assertEqual(opcode_name(0x7F), "0x7f")
        self.assertEqual(Opcode.from_name("keys_jwks"), 0x13)

    def test_tags_and_types(self) -> None:
        rows = re.findall(r"^\|\s*(\d+) \| `([a-z_]+)`\s*\| ([a-z0-9]+)(, repeated)?",
                          self.section("## 7. Field tags"), re.M)
        # hello's settings (59-66) are defined for the daemon before the spec's table lists them;
        # once it does, they are checked like the others.
        pending = {tag for tag in Tag if 59 <= tag <= 66} - {int(code) for code, *_ in rows}
        self.assertEqual(len(rows) + len(pending), len(Tag))
        for code, name, value_type, repeated in rows:
            with self.subTest(tag=name):
                self.assertEqual(Tag(int(code)).name.lower(), name)
                self.assertEqual(TAG_TYPES[int(code)].value, value_type)
                self.assertEqual(int(code) in REPEATED_TAGS, bool(repeated))


if __name__ == "__main__":
    unittest.main()
