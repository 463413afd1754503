#!/usr/bin/env python3
"""Tests of tools/state-reader.py (standard library unittest, Python 3.11+).

    TOKEND_BIN=... TOKENCTL_BIN=... python3 tools/state-reader-test.py [-v] [CLASS...]

Without a daemon (no tokend or tokenctl binary needed, a second or so):

    python3 tools/state-reader-test.py CrcTest ExampleFilesTest FormatVersionTest ProgramTest

1. The document's own example files (tools/proto-examples.py --files, format version 1) parse
   clean, with the contents docs/state-format.md section 14 describes; damaged copies of them
   are classified as section 9 says; and the rules revised since b8af303 hold on copies of
   them: journal names (16 lower-case hex digits below 2^62; anything else, upper-case digits
   among them, left alone), journal 0 among the journals read as damage, `tokend.lock`
   (tested with a shared flock, never written), the end record's exact 12 bytes, the modes
   tokend refuses, the order of frame checks (section 4, a zero-filled tail second), a newest
   journal with a torn header left out of the numbering, and journal records in a
   snapshot applied as in a journal (section 6). Most run the reader's main() in-process;
   ProgramTest runs it as a program.
   FormatVersionTest: files built by hand in both layouts of section 12.1. Version 2: logins
   with generation and used flag, rotate with a generation, dedup entries in milliseconds with
   window end and generation, mark_used (type 6) applied only at its generation, a bad used
   byte as damage, live dedup entries counted in milliseconds; version 1 still read (generation
   0, seconds as milliseconds, saturated), mark_used in a version 1 file as damage, each file
   read in its own header's layout, a version above 2 refused.
2. A real tokend writes every record type in format version 2 (issue in both modes, an
   idempotent issue, a verify that slides, refresh and a dedup repeat, a lost-response retry
   after the window, a verify of the new access token (mark_used), revoke by token, session id
   and subject, reuse detection, `tokenctl snapshot`, a restart); the reader finds every type,
   every checksum valid, the generations, the counts of `tokenctl store check`, the lock's pid,
   and as many logins as were issued. A daemon started on a copy loads the same logins.
3. Damaged copies of those real files: a flipped byte in a middle record is damage at that
   record's offset, the last record cut in half is a torn tail at its offset; `tokenctl store
   check` agrees.
4. DaemonAgreementTest: each revised rule on a directory that the reader reads, `tokenctl
   store check` checks and tokend starts on; the three agree (an upper-case journal name
   among them: none of the three takes it as a journal). One expected failure records a
   disagreement of tokend and tokenctl with the document: journal 0 beside a snapshot whose
   sequence is 0 (sections 1 and 9 step 4 make it damage; both read it).

The daemon tests (2 to 4: RealDaemonTest, DaemonAgreementTest) are skipped when there is no
tokend binary at $TOKEND_BIN (default <repo>/.build/debug/tokend) or tokenctl at $TOKENCTL_BIN;
they need binaries built from sources that write format version 2.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import fcntl
import hashlib
import hmac
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
READER = TOOLS / "state-reader.py"
EXAMPLES = TOOLS / "proto-examples.py"
sys.path.insert(0, str(TOOLS / "python"))

_spec = importlib.util.spec_from_file_location("state_reader", READER)
assert _spec is not None and _spec.loader is not None
reader: Any = importlib.util.module_from_spec(_spec)
sys.modules["state_reader"] = reader
_spec.loader.exec_module(reader)

DEDUP_WINDOW = 2  # seconds; long enough for a snapshot to catch the entries, short to outwait
ACCESS_TTL = 1800  # tokend's default access-token TTL: the default rotation grace


def binary(env: str, name: str) -> Path:
    configured = os.environ.get(env)
    path = Path(configured) if configured else REPO / ".build" / "debug" / name
    if not path.exists():
        if configured:
            raise FileNotFoundError(f"{env}={configured} does not exist")
        raise unittest.SkipTest(f"no {name} binary at {path}; set {env}")
    return path


def run_reader(*args: str) -> tuple[int, Any]:
    """The reader's main() on these arguments, in this process (a Python start costs a quarter
    of a second here, and the suite runs the reader some hundred times); (exit status, parsed
    output with --json, else stdout and stderr). ProgramTest runs it as a program."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = reader.main(list(args))
        except SystemExit as exit_:     # argparse
            status = exit_.code if isinstance(exit_.code, int) else 2
    if "--json" in args and status in (0, 1):
        return status, json.loads(out.getvalue())
    return status, out.getvalue() + err.getvalue()


def run_reader_program(*args: str) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, str(READER), *args], capture_output=True, text=True,
                          timeout=60)
    return proc.returncode, proc.stdout + proc.stderr


def files_by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for result in doc["results"] for f in result["files"]}


def sid_bytes(sid: str) -> bytes:
    return base64.urlsafe_b64decode(sid + "=" * (-len(sid) % 4))


_EXAMPLES_MADE: str | None = None


def write_examples(directory: str) -> None:
    """Section 14's two files, as tools/proto-examples.py writes them (run once, then copied)."""
    global _EXAMPLES_MADE
    if _EXAMPLES_MADE is None:
        made = tempfile.mkdtemp(prefix="state-reader-examples-made-", dir="/tmp")
        atexit.register(shutil.rmtree, made, True)
        subprocess.run([sys.executable, str(EXAMPLES), "--files", made], check=True, timeout=60)
        _EXAMPLES_MADE = made
    for name in os.listdir(_EXAMPLES_MADE):
        shutil.copyfile(os.path.join(_EXAMPLES_MADE, name), os.path.join(directory, name))
        os.chmod(os.path.join(directory, name), 0o600)


def write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write a file with the mode tokend gives its files (section 1), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


EXAMPLE_CREATED_AT = 1767233000


def file_header(magic: bytes, sequence: int, version: int = 1) -> bytes:
    """A header of section 3 (version 1 unless told, as the examples; flags 0, the examples'
    creation time)."""
    h = magic + version.to_bytes(2, "big") + (0).to_bytes(2, "big") \
        + EXAMPLE_CREATED_AT.to_bytes(8, "big") + sequence.to_bytes(8, "big")
    return h + reader.crc32c(h).to_bytes(4, "big")


def journal_header(sequence: int, version: int = 1) -> bytes:
    return file_header(b"TOKENDJL", sequence, version)


def frame(rtype: int, payload: bytes) -> bytes:
    """A record of section 4: length, type, CRC-32C of type and payload, payload."""
    return (len(payload).to_bytes(4, "big") + bytes([rtype])
            + reader.crc32c(bytes([rtype]) + payload).to_bytes(4, "big") + payload)


def snapshot_file(frames: list[bytes], sequence: int, version: int = 1) -> bytes:
    """A whole snapshot of section 6: header, the frames, the end record."""
    data = file_header(b"TOKENDSN", sequence, version) + b"".join(frames)
    return data + frame(255, len(frames).to_bytes(8, "big")
                        + reader.crc32c(data).to_bytes(4, "big"))


def frames_of(data: bytes) -> list[bytes]:
    """The record frames of a (valid) file, the header and a snapshot's end record left out."""
    out, offset = [], 32
    while offset < len(data):
        length = int.from_bytes(data[offset:offset + 4], "big")
        if data[offset + 4] != 255:
            out.append(data[offset:offset + 9 + length])
        offset += 9 + length
    return out


def store_check_raw(tokenctl: Path, directory: str) -> tuple[int, str, str]:
    proc = subprocess.run([str(tokenctl), "store", "check", "--state-dir", directory, "--json"],
                          capture_output=True, text=True, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


def try_start(tokend: Path, directory: str) -> tuple[bool, str]:
    """Start tokend on a directory: (whether it listened, its output). Killed at once."""
    sock = os.path.join(directory, "s.sock")
    proc = subprocess.Popen([str(tokend), "--state-dir", directory, "--socket", sock,
                             "--snapshot-interval", "0"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 15
    listened = False
    while time.monotonic() < deadline and proc.poll() is None:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(sock)
            listened = True
            break
        except OSError:
            time.sleep(0.02)
        finally:
            probe.close()
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    return listened, out.decode("utf-8", errors="replace")


def store_check(tokenctl: Path, directory: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run([str(tokenctl), "store", "check", "--state-dir", directory, "--json"],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode not in (0, 1):
        raise AssertionError(f"tokenctl store check exited {proc.returncode}: {proc.stderr}")
    return proc.returncode, json.loads(proc.stdout)


def copy_state(src: str) -> str:
    """A copy of a state directory's snapshot and journals (modes kept), in a new directory."""
    dst = tempfile.mkdtemp(prefix="state-reader-copy-", dir="/tmp")
    for name in os.listdir(src):
        if name.endswith((".tks", ".tkj")):
            shutil.copy2(os.path.join(src, name), os.path.join(dst, name))
    return dst


# ---------------------------------------------------------------------------------------------

class CrcTest(unittest.TestCase):
    def test_check_values(self) -> None:
        self.assertEqual(reader.crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(reader.crc32c(b""), 0)
        self.assertEqual(reader.crc32c(b"6789", reader.crc32c(b"12345")), 0xE3069283)


class ExampleFilesTest(unittest.TestCase):
    """Section 14's files, as tools/proto-examples.py writes them."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="state-reader-examples-", dir="/tmp")
        write_examples(self.dir)
        self.snapshot = os.path.join(self.dir, "snapshot.tks")
        self.journal = os.path.join(self.dir, "journal-0000000000000007.tkj")

    def tearDown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_examples_parse_clean_with_the_documented_contents(self) -> None:
        status, doc = run_reader("--json", "--records", self.dir)
        self.assertEqual(status, 0, doc)
        self.assertTrue(doc["clean"])
        files = files_by_name(doc)
        snap = files["snapshot.tks"]
        self.assertEqual(snap["size"], 314)
        self.assertEqual(snap["header"], {"magic": "TOKENDSN", "version": 1, "flags": 0,
                                          "created_at": 1767233000, "sequence": 7,
                                          "crc": 0x3D19639C, "crc_valid": True})
        self.assertEqual(snap["records_by_type"], {"put_login": 3, "snapshot_end": 1})
        self.assertEqual(snap["snapshot_end"], {"offset": 293, "count": 3,
                                                "file_crc": 0x37391413, "file_crc_valid": True})
        records = snap["records"]
        self.assertEqual([(r["offset"], r["length"], r["crc"]) for r in records],
                         [(32, 84, 0xCBDBC338), (125, 82, 0x765EA92E), (216, 68, 0x46BFCD60),
                          (293, 12, 0xAD0022BC)])
        alice, bob, carol = (r["login"] for r in records[:3])
        self.assertEqual(records[0]["session_id"], "FmV0Pq3zX8sRkT2aYbW4nA")
        self.assertEqual(alice, {
            "kind": "session", "revoked": True, "created_at": 1767225600, "ttl": 7200,
            "expires_at": 1767238800, "max_expires_at": 1767268800, "refresh_ttl": 0,
            "fingerprint": {"present": True, "length": 16}, "refresh_id": None,
            "generation": 0, "used": False, "subject": "alice"})
        self.assertEqual(records[1]["session_id"], "Tr5Kc0wLx9HdMvE7uJq1gQ")
        self.assertEqual(bob, {
            "kind": "family", "revoked": False, "created_at": 1767225600, "ttl": 900,
            "expires_at": 1767230000, "max_expires_at": 1767268800, "refresh_ttl": 3600,
            "fingerprint": None, "refresh_id": "k3Vn8Qe1Zr5Tm0Lw7Ys2Hg", "generation": 0,
            "used": False, "subject": "bob"})
        self.assertEqual(records[2]["session_id"], "Xc7pL2qR9tVwY4zA1bN6mQ")
        self.assertEqual(carol, {
            "kind": "session", "revoked": False, "created_at": 1767222000, "ttl": 7200,
            "expires_at": 1767229200, "max_expires_at": 1767265200, "refresh_ttl": 0,
            "fingerprint": None, "refresh_id": None, "generation": 0, "used": False,
            "subject": "carol"})
        self.assertTrue(all(r["dedup"] is None for r in records[:3]))

        journal = files["journal-0000000000000007.tkj"]
        self.assertEqual(journal["size"], 57)
        self.assertEqual(journal["header"]["magic"], "TOKENDJL")
        self.assertEqual(journal["header"]["sequence"], 7)
        self.assertEqual(journal["header"]["crc"], 0x436CA8C5)
        self.assertTrue(journal["newest"])
        self.assertEqual(journal["records"], [{
            "offset": 32, "type": 4, "type_name": "revoke", "length": 16, "crc": 0x844F42C7,
            "session_id": "Tr5Kc0wLx9HdMvE7uJq1gQ"}])

        result = doc["results"][0]
        self.assertEqual(result["journal_order"]["journals_read"], [7])
        self.assertEqual(result["journal_order"]["missing"], [])
        self.assertEqual(result["journal_order"]["next_journal"], 8)
        # Bob's family revoked by the journal over the snapshot: both logins revoked, 3 held.
        self.assertEqual(result["state"]["logins"], 3)
        self.assertEqual(result["state"]["revoked"], 2)

    def test_no_digest_is_printed(self) -> None:
        with open(self.snapshot, "rb") as f:
            data = f.read()
        fingerprint_digest = data[32 + 9 + 16 + 43:32 + 9 + 16 + 43 + 16]
        self.assertEqual(fingerprint_digest.hex()[:8], "da364c54")
        for args in (["--records"], ["--json", "--records"]):
            _, out = run_reader(*args, self.dir)
            text = out if isinstance(out, str) else json.dumps(out)
            self.assertNotIn(fingerprint_digest.hex(), text)
            self.assertNotIn(fingerprint_digest.hex()[:8], text)

    def test_usage_errors_exit_2(self) -> None:
        self.assertEqual(run_reader()[0], 2)
        self.assertEqual(run_reader(os.path.join(self.dir, "nothing-here"))[0], 2)
        self.assertEqual(run_reader("--bogus", self.dir)[0], 2)

    def flip(self, path: str, offset: int) -> None:
        with open(path, "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 0x01]))

    def problem(self, doc: dict[str, Any], name: str) -> dict[str, Any]:
        return files_by_name(doc)[name]["problem"]

    def test_snapshot_problems_are_damage(self) -> None:
        self.flip(self.snapshot, 125 + 20)          # inside Bob's put_login
        status, doc = run_reader("--json", self.dir)
        self.assertEqual(status, 1)
        self.assertEqual(self.problem(doc, "snapshot.tks")["offset"], 125)
        self.assertEqual(self.problem(doc, "snapshot.tks")["class"], "damage")
        self.flip(self.snapshot, 125 + 20)
        self.flip(self.snapshot, 10)                # header: flags, caught by the header crc
        self.assertEqual(self.problem(run_reader("--json", self.dir)[1], "snapshot.tks"),
                         {"offset": 0, "class": "damage",
                          "reason": "header checksum mismatch (stored 0x3d19639c, computed "
                                    f"0x{reader.crc32c(Path(self.snapshot).read_bytes()[:28]):08x})"})

    def test_snapshot_end_checks(self) -> None:
        data = Path(self.snapshot).read_bytes()
        # A snapshot without its end record, and one with a byte after it.
        Path(self.snapshot).write_bytes(data[:293])
        p = self.problem(run_reader("--json", self.dir)[1], "snapshot.tks")
        self.assertEqual((p["offset"], p["class"]), (293, "damage"))
        Path(self.snapshot).write_bytes(data + b"\x00")
        p = self.problem(run_reader("--json", self.dir)[1], "snapshot.tks")
        self.assertEqual((p["offset"], p["class"]), (314, "damage"))
        # A wrong count with a valid record checksum: damage at the end record.
        Path(self.snapshot).write_bytes(data[:293] + frame(255, (4).to_bytes(8, "big")
                                                           + data[-4:]))
        p = self.problem(run_reader("--json", self.dir)[1], "snapshot.tks")
        self.assertEqual((p["offset"], p["class"]), (293, "damage"))
        self.assertIn("count", p["reason"])
        # A snapshot that ends without its end record: at the file's size (section 9), after
        # the last whole record; a snapshot cut inside a record: at that record (section 4).
        Path(self.snapshot).write_bytes(data[:216])
        p = self.problem(run_reader("--json", self.dir)[1], "snapshot.tks")
        self.assertEqual((p["offset"], p["class"], p["reason"]),
                         (216, "damage", "snapshot without an end record"))
        Path(self.snapshot).write_bytes(data[:250])
        p = self.problem(run_reader("--json", self.dir)[1], "snapshot.tks")
        self.assertEqual((p["offset"], p["class"]), (216, "damage"))
        self.assertIn("past the end", p["reason"])
        # An end record whose payload is not exactly 12 bytes (section 6: "any other size is
        # damage"), even with a count and file crc that would be right: damage at the record.
        for payload in (data[-12:] + b"\x00", data[-12:-1]):
            with self.subTest(size=len(payload)):
                Path(self.snapshot).write_bytes(data[:293] + frame(255, payload))
                status, doc = run_reader("--json", self.dir)
                self.assertEqual(status, 1)
                p = self.problem(doc, "snapshot.tks")
                self.assertEqual(p, {"offset": 293, "class": "damage",
                                     "reason": f"snapshot end record payload of {len(payload)} "
                                               "bytes, not 12"})
                self.assertIsNone(files_by_name(doc)["snapshot.tks"]["snapshot_end"])

    def test_newest_journal_torn_tails(self) -> None:
        data = Path(self.journal).read_bytes()
        cases = [
            (data[:50], 32, "torn_tail"),                       # record cut short
            (data[:36], 32, "torn_tail"),                       # frame header cut short
            (data[:56] + bytes([data[56] ^ 1]), 32, "torn_tail"),  # bad crc, ends at EOF
            (data + bytes(40), 57, "torn_tail"),                # zeros never written
            (data[:20], 0, "torn_tail"),                        # header cut short
            (bytes(57), 0, "torn_tail"),                        # all zero
            (data + data[32:40], 57, "torn_tail"),              # 8 bytes of a next frame
        ]
        for content, offset, cls in cases:
            with self.subTest(size=len(content), offset=offset):
                Path(self.journal).write_bytes(content)
                status, doc = run_reader("--json", self.dir)
                self.assertEqual(status, 1)
                p = self.problem(doc, "journal-0000000000000007.tkj")
                self.assertEqual((p["offset"], p["class"]), (offset, cls), p)

    def test_newest_journal_damage(self) -> None:
        data = Path(self.journal).read_bytes()
        bad_crc = data[:56] + bytes([data[56] ^ 1])
        unknown = bytearray(data)
        unknown[36] = 9                                 # type 9 with a correct crc
        unknown[37:41] = reader.crc32c(bytes(unknown[36:37] + unknown[41:57])).to_bytes(4, "big")
        end_in_journal = bytearray(data[:32]) + (12).to_bytes(4, "big") + b"\xff"
        payload = bytes(12)
        end_in_journal += reader.crc32c(b"\xff" + payload).to_bytes(4, "big") + payload
        short_revoke = data[:32] + (15).to_bytes(4, "big") + b"\x04" + \
            reader.crc32c(b"\x04" + data[41:56]).to_bytes(4, "big") + data[41:56]
        huge = data[:32] + (1048577).to_bytes(4, "big") + data[36:]
        cases = [
            (bad_crc + data[32:], 32, "checksum"),       # bad crc with more bytes after
            (bytes(unknown), 32, "unknown record type"),
            (bytes(end_in_journal), 32, "snapshot end record"),
            (short_revoke, 32, "malformed"),
            (huge, 32, "above"),
            (b"TOKENDSN" + data[8:], 0, "magic"),
        ]
        for content, offset, words in cases:
            with self.subTest(words=words):
                Path(self.journal).write_bytes(content)
                status, doc = run_reader("--json", self.dir)
                self.assertEqual(status, 1)
                p = self.problem(doc, "journal-0000000000000007.tkj")
                self.assertEqual((p["offset"], p["class"]), (offset, "damage"), p)
                self.assertIn(words, p["reason"])

    def test_older_journal_cut_short_is_damage_and_gaps_are_found(self) -> None:
        data = Path(self.journal).read_bytes()
        def header(sequence: int) -> bytes:
            h = data[:20] + sequence.to_bytes(8, "big")
            return h + reader.crc32c(h).to_bytes(4, "big")
        # journal 7 cut short is no longer the newest once journal 8 exists
        Path(self.journal).write_bytes(data[:50])
        path8 = os.path.join(self.dir, "journal-0000000000000008.tkj")
        write(path8, header(8))
        status, doc = run_reader("--json", self.dir)
        self.assertEqual(status, 1)
        p = self.problem(doc, "journal-0000000000000007.tkj")
        self.assertEqual((p["offset"], p["class"]), (32, "damage"))
        # a gap: journals 7 and 9, 8 missing
        Path(self.journal).write_bytes(data)
        os.rename(path8, os.path.join(self.dir, "journal-0000000000000009.tkj"))
        status, doc = run_reader("--json", self.dir)
        self.assertEqual(status, 1)
        self.assertEqual(doc["results"][0]["journal_order"]["missing"], [8])
        # a journal below the snapshot's sequence is covered: not read, not a gap
        os.rename(os.path.join(self.dir, "journal-0000000000000009.tkj"),
                  os.path.join(self.dir, "journal-0000000000000003.tkj"))
        status, doc = run_reader("--json", self.dir)
        self.assertEqual(status, 0, doc)
        self.assertEqual(doc["results"][0]["journal_order"]["journals_covered"], [3])

    def test_single_files(self) -> None:
        status, doc = run_reader("--json", self.snapshot, self.journal)
        self.assertEqual(status, 0)
        self.assertEqual(set(files_by_name(doc)), {"snapshot.tks", "journal-0000000000000007.tkj"})

    # -- the rules revised since b8af303 ------------------------------------------------------

    def only_journals(self, numbers: list[int], upper: tuple[int, ...] = ()) -> None:
        """No snapshot; empty journals with these numbers (upper-case names for `upper`)."""
        os.remove(self.snapshot)
        os.remove(self.journal)
        for n in numbers:
            name = f"journal-{n:016X}.tkj" if n in upper else f"journal-{n:016x}.tkj"
            write(os.path.join(self.dir, name), journal_header(n))

    def result(self) -> tuple[int, dict[str, Any], dict[str, Any]]:
        status, doc = run_reader("--json", self.dir)
        return status, doc, doc["results"][0]

    def test_journal_zero_is_damage_unless_covered(self) -> None:
        # Section 1: "Journal 0 ... [is] damage"; section 9 step 4: among the journals read.
        self.only_journals([0, 1])
        status, doc, result = self.result()
        self.assertEqual(status, 1)
        self.assertEqual(doc["problems"], [{
            "file": "journal-0000000000000000.tkj", "offset": None, "class": "damage",
            "reason": "journal 0: tokend numbers journals from 1"}])
        self.assertEqual(result["journal_order"]["journals_read"], [0, 1])
        self.assertEqual(result["journal_order"]["missing"], [])
        # Below a snapshot's sequence it is covered, deleted unread (section 9 step 3), as
        # tokend does (DaemonAgreementTest).
        write_examples(self.dir)
        status, doc, result = self.result()
        self.assertEqual((status, doc["problems"]), (0, []))
        self.assertEqual(result["journal_order"]["journals_covered"], [0, 1])

    def test_an_upper_case_name_is_not_a_journal(self) -> None:
        # Section 1: a journal is exactly the name tokend writes, 16 lower-case hexadecimal
        # digits; so one number has one name, and an upper-case name is left alone.
        upper = "journal-000000000000000A.tkj"
        self.only_journals(list(range(1, 11)), upper=(10,))
        status, doc, result = self.result()
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        order = result["journal_order"]
        self.assertEqual((order["journals_read"], order["next_journal"]), (list(range(1, 10)), 10))
        self.assertEqual(result["other_files"], [upper])
        self.assertNotIn(upper, files_by_name(doc))
        self.assertIn(f"{upper}: not a journal name", " ".join(result["notes"]))
        # Beside the lower-case name of the same number: one journal 10, the other left alone.
        write(os.path.join(self.dir, "journal-000000000000000a.tkj"), journal_header(10))
        status, doc, result = self.result()
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        self.assertEqual(result["journal_order"]["journals_read"], list(range(1, 11)))
        self.assertEqual(result["other_files"], [upper])
        # Nor is it the newest journal: the lower-case 10 is, whatever the upper-case one holds.
        write(os.path.join(self.dir, upper), journal_header(10)[:20])
        status, doc, result = self.result()
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        self.assertTrue(files_by_name(doc)["journal-000000000000000a.tkj"]["newest"])
        # Below a snapshot's sequence it is not a covered journal either: just another name.
        write(self.snapshot, snapshot_file([], 12))
        status, doc, result = self.result()
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        self.assertEqual(result["journal_order"]["journals_covered"], list(range(1, 11)))
        self.assertEqual(result["other_files"], [upper])
        # As a single file it is judged by its magic, without a number.
        write(os.path.join(self.dir, upper), journal_header(10))
        status, doc = run_reader("--json", os.path.join(self.dir, upper))
        self.assertEqual(status, 0, doc)
        self.assertEqual((files_by_name(doc)[upper]["kind"], files_by_name(doc)[upper]["number"]),
                         ("journal", None))

    def test_names_that_are_not_journals_are_left_alone(self) -> None:
        # Section 1: exactly 16 lower-case hexadecimal digits, below 2^62; any other name is
        # left alone, whatever it holds (here a journal's header, or nothing a reader could
        # parse).
        names = ["journal-7.tkj", "journal-00000000000000008.tkj",
                 "journal-000000000000008.tkj", "journal-4000000000000000.tkj",
                 "journal-ffffffffffffffff.tkj", "journal-000000000000000g.tkj",
                 "journal-0x00000000000008.tkj", "journal-000000000000000a.tkj.bak",
                 "journal-000000000000000A.tkj", "journal-3FFFFFFFFFFFFFFF.tkj",
                 "JOURNAL-0000000000000008.TKJ"]
        for name in names:
            write(os.path.join(self.dir, name), b"not a journal")
        write(os.path.join(self.dir, "journal-8.tkj"), journal_header(8))
        names.append("journal-8.tkj")
        status, doc, result = self.result()
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        self.assertEqual(sorted(f["name"] for f in result["files"]),
                         ["journal-0000000000000007.tkj", "snapshot.tks"])
        self.assertEqual(sorted(result["other_files"]), sorted(names))
        self.assertEqual(result["journal_order"]["next_journal"], 8)
        # 2^62 - 1 is still a journal number.
        top = os.path.join(self.dir, "journal-3fffffffffffffff.tkj")
        write(top, journal_header(2 ** 62 - 1))
        status, doc, result = self.result()
        self.assertEqual(result["journal_order"]["journals_read"], [7, 2 ** 62 - 1])
        self.assertEqual(doc["problems"][0]["class"], "gap")
        self.assertTrue(files_by_name(doc)["journal-3fffffffffffffff.tkj"]["newest"])
        self.assertIn("which no journal name can carry", " ".join(result["notes"]))
        # As a single file, a name that is not a journal's is judged by its magic.
        status, doc = run_reader("--json", os.path.join(self.dir, "journal-8.tkj"))
        self.assertEqual(status, 0)
        self.assertEqual(files_by_name(doc)["journal-8.tkj"]["number"], None)

    def test_the_lock_file_is_not_a_state_file(self) -> None:
        lock = os.path.join(self.dir, "tokend.lock")
        # Absent: the reader does not create it.
        status, doc, result = self.result()
        self.assertEqual(result["lock"], {"present": False, "pid": None, "held": None})
        self.assertFalse(os.path.exists(lock))
        # Left by a daemon that has gone: its pid, not held, no problem, not "ignored".
        write(lock, b"4242\n")
        status, doc, result = self.result()
        self.assertEqual((status, doc["problems"]), (0, []))
        self.assertEqual(result["lock"], {"present": True, "pid": 4242, "held": False})
        self.assertNotIn("tokend.lock", result["other_files"])
        self.assertNotIn("tokend.lock", files_by_name(doc))
        # Held (here by this process, exclusively, as tokend does): a note; still clean. The
        # reader only tests with a shared non-blocking flock, so it neither waits nor writes.
        before = os.stat(lock)
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            status, doc, result = self.result()
            self.assertEqual((status, doc["problems"]), (0, []))
            self.assertEqual(result["lock"], {"present": True, "pid": 4242, "held": True})
            self.assertIn("a daemon (pid 4242) holds this directory", " ".join(result["notes"]))
            _, text = run_reader(self.dir)
            self.assertIn("tokend.lock: pid 4242, held by a daemon", text)
        finally:
            os.close(fd)
        after = os.stat(lock)
        self.assertEqual((before.st_mtime_ns, before.st_size, before.st_mode),
                         (after.st_mtime_ns, after.st_size, after.st_mode))
        self.assertEqual(Path(lock).read_bytes(), b"4242\n")
        # Not a pid and a newline: a note, not a problem.
        write(lock, b"")
        status, doc, result = self.result()
        self.assertEqual((status, result["lock"]["pid"]), (0, None))
        self.assertIn("does not hold a pid", " ".join(result["notes"]))

    def test_frame_checks_in_the_documented_order(self) -> None:
        # Section 4: only zero bytes left (torn); fewer than 9 bytes (torn); length above 1 MiB
        # (damage); past the end (torn); checksum (torn when the record ends at the end of the
        # file, else damage); then type, place and payload (damage). Each case fails more than
        # one check.
        data = Path(self.journal).read_bytes()
        revoke = data[32:57]
        big = (1048577).to_bytes(4, "big") + revoke[4:]
        unknown_bad_crc = revoke[:4] + b"\x09" + revoke[5:]
        end13 = frame(255, bytes(13))
        def bad_crc(f: bytes) -> bytes:
            return f[:5] + bytes([f[5] ^ 1]) + f[6:]
        cases = [
            # A length above 1 MiB is damage even in the newest journal, though the record
            # also runs past the end of the file (torn).
            (data + big, 57, "damage", "above"),
            (data + big[:20], 57, "damage", "above"),
            (data + unknown_bad_crc, 57, "torn_tail", "checksum"),   # not: unknown type
            (data + unknown_bad_crc + revoke, 57, "damage", "checksum"),
            (data + bad_crc(end13), 57, "torn_tail", "checksum"),    # not: end record here
            (data + end13, 57, "damage", "snapshot end record"),     # not: its size
            (data + frame(9, b"\xff" * 3), 57, "damage", "unknown record type"),
            (data + frame(4, b"\x00" * 15), 57, "damage", "malformed"),
            (data + revoke[:8], 57, "torn_tail", "fewer than 9"),
            # Only zero bytes: second in the order, before every check of a frame of zeros.
            (data + bytes(40), 57, "torn_tail", "only zero bytes"),   # not: checksum
            (data + bytes(5), 57, "torn_tail", "only zero bytes"),    # not: fewer than 9
            (data + bytes(9), 57, "torn_tail", "only zero bytes"),    # not: checksum at EOF
        ]
        for content, offset, cls, words in cases:
            with self.subTest(words=words, cls=cls, size=len(content)):
                Path(self.journal).write_bytes(content)
                status, doc = run_reader("--json", self.dir)
                self.assertEqual(status, 1)
                p = self.problem(doc, "journal-0000000000000007.tkj")
                self.assertEqual((p["offset"], p["class"]), (offset, cls), p)
                self.assertIn(words, p["reason"])
        # Zeros after a non-zero byte are not a zero-filled tail: the frame checks decide.
        Path(self.journal).write_bytes(data + b"\x00\x00\x00\x01" + bytes(40))
        p = self.problem(run_reader("--json", self.dir)[1], "journal-0000000000000007.tkj")
        self.assertEqual((p["offset"], p["class"]), (57, "damage"), p)
        self.assertIn("checksum mismatch", p["reason"])
        # In a journal that is not the newest, or in a snapshot, a zero-filled tail is damage.
        write(os.path.join(self.dir, "journal-0000000000000008.tkj"), journal_header(8))
        Path(self.journal).write_bytes(data + bytes(40))
        p = self.problem(run_reader("--json", self.dir)[1], "journal-0000000000000007.tkj")
        self.assertEqual((p["offset"], p["class"]), (57, "damage"), p)
        self.assertIn("only zero bytes", p["reason"])

    def test_a_newest_journal_with_a_torn_header_is_left_out(self) -> None:
        # Section 9 steps 4 and 6: not counted as present, its number used again.
        path9 = os.path.join(self.dir, "journal-0000000000000009.tkj")
        for content, label in ((journal_header(9)[:20], "cut short"), (bytes(32), "all zero")):
            with self.subTest(label):
                write(path9, content)
                status, doc, result = self.result()
                self.assertEqual(status, 1)
                self.assertEqual([(p["file"], p["offset"], p["class"]) for p in doc["problems"]],
                                 [("journal-0000000000000009.tkj", 0, "torn_tail")])
                order = result["journal_order"]
                self.assertEqual((order["journals_read"], order["journals_torn_header"],
                                  order["missing"], order["next_journal"]), ([7], [9], [], 8))
        write(os.path.join(self.dir, "journal-0000000000000008.tkj"), journal_header(8))
        status, doc, result = self.result()
        order = result["journal_order"]
        self.assertEqual((order["journals_read"], order["missing"], order["next_journal"]),
                         ([7, 8], [], 9))
        # H counts only the journals read: not covered ones (section 9 step 6).
        os.remove(path9)
        os.remove(os.path.join(self.dir, "journal-0000000000000008.tkj"))
        os.rename(self.journal, os.path.join(self.dir, "journal-0000000000000005.tkj"))
        status, doc, result = self.result()
        order = result["journal_order"]
        self.assertEqual((status, order["journals_covered"], order["next_journal"]),
                         (0, [5], 7))
        # Torn anywhere but the header, the newest journal still counts.
        write(path9, journal_header(9) + b"\x00\x00\x00")
        status, doc, result = self.result()
        order = result["journal_order"]
        self.assertEqual((order["journals_read"], order["missing"], order["next_journal"]),
                         ([9], [7, 8], 10))

    def test_modes_tokend_refuses(self) -> None:
        # Section 1: any of the mode bits 0077 on a snapshot or journal; a state directory
        # granting more than 0750.
        self.assertEqual(self.result()[0], 0)
        for path, mode in ((self.journal, 0o640), (self.snapshot, 0o604),
                           (self.journal, 0o610), (self.journal, 0o602)):
            with self.subTest(name=os.path.basename(path), mode=oct(mode)):
                os.chmod(path, mode)
                status, doc, _ = self.result()
                self.assertEqual(status, 1)
                self.assertEqual(doc["problems"], [{
                    "file": os.path.basename(path), "offset": None, "class": "mode",
                    "reason": f"mode {mode:04o}: group or others may access it; tokend refuses "
                              "to start on it (chmod 600 fixes it)"}])
                self.assertEqual(run_reader("--json", path)[1]["problems"][0]["class"], "mode")
                os.chmod(path, 0o600)
        os.chmod(self.journal, 0o400)           # stricter than 0600 is fine
        self.assertEqual(self.result()[0], 0)
        # Files tokend never reads: a .broken copy, a leftover temporary, another name.
        for name in ("journal-0000000000000003.tkj.broken", "snapshot.tks.tmp", "journal-7.tkj"):
            write(os.path.join(self.dir, name), b"x", 0o644)
        status, doc, _ = self.result()
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        # A covered journal is a journal (see the report: tokend does not check it).
        write(os.path.join(self.dir, "journal-0000000000000003.tkj"), journal_header(3), 0o644)
        self.assertEqual([p["class"] for p in self.result()[1]["problems"]], ["mode"])
        os.chmod(os.path.join(self.dir, "journal-0000000000000003.tkj"), 0o600)
        for mode, problems in ((0o750, 0), (0o710, 0), (0o755, 1), (0o770, 1), (0o701, 1)):
            with self.subTest(directory=oct(mode)):
                os.chmod(self.dir, mode)
                status, doc, result = self.result()
                self.assertEqual(len(doc["problems"]), problems, doc["problems"])
                self.assertEqual(result["mode"], f"{mode:04o}")
                if problems:
                    self.assertEqual((doc["problems"][0]["class"], doc["problems"][0]["file"]),
                                     ("mode", None))
        os.chmod(self.dir, 0o700)

    def test_journal_records_in_a_snapshot_are_applied(self) -> None:
        # Section 6: tokend writes none, but a reader applies them as in a journal; and it may
        # not depend on put_login coming before put_dedup.
        snap = Path(self.snapshot).read_bytes()
        logins = frames_of(snap)
        bob_sid = snap[125 + 9:125 + 25]
        carol_sid = snap[216 + 9:216 + 25]
        dedup = bytes(16) + (4102444800).to_bytes(8, "big") + b"\x00\x00" + bytes(4)
        carol_with_dedup = logins[2][9:-1] + b"\x01" + dedup
        frames = [frame(5, dedup), logins[0], frame(4, bob_sid), logins[1],
                  frame(1, carol_with_dedup), frame(2, carol_sid + (1767229999).to_bytes(8, "big"))]
        Path(self.snapshot).write_bytes(snapshot_file(frames, 7))
        status, doc = run_reader("--json", "--records", "--now", "1767233000", self.dir)
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        snapshot = files_by_name(doc)["snapshot.tks"]
        self.assertEqual(snapshot["records_by_type"], {"put_dedup": 1, "put_login": 3,
                                                       "revoke": 1, "set_expiry": 1,
                                                       "snapshot_end": 1})
        notes = " ".join(snapshot["notes"])
        self.assertIn("revoke record at", notes)
        self.assertIn("set_expiry record at", notes)
        self.assertIn("put_login at", notes)
        self.assertIn("carries a dedup entry", notes)
        self.assertNotIn("put_dedup", notes)
        state = doc["results"][0]["state"]
        # Bob revoked by the snapshot and by journal 7; Alice revoked as written.
        self.assertEqual((state["logins"], state["revoked"], state["dedup_entries_read"],
                          state["dedup_entries_live"]), (3, 2, 2, 2))
        carol = next(r for r in snapshot["records"] if r["type"] == 1
                     and r["login"]["subject"] == "carol")
        self.assertIsNotNone(carol["dedup"])


# -- format versions (docs/state-format.md sections 5 and 12.1), files built by hand ---------

T = EXAMPLE_CREATED_AT            # "now" of these files, Unix seconds
T_MS = T * 1000
BOB_SID = sid_bytes("Tr5Kc0wLx9HdMvE7uJq1gQ")    # the examples' family
ALICE_SID = sid_bytes("FmV0Pq3zX8sRkT2aYbW4nA")  # the examples' session
JTI_OLD, JTI_NEW = bytes(range(16, 32)), bytes(range(32, 48))
KEY_ISSUE, KEY_REFRESH, KEY_OTHER = b"\x11" * 16, b"\x22" * 16, b"\x33" * 16


def i64(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def optional(value: bytes | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + value


def login_payload(version: int, kind: int = 2, *, generation: int = 0, used: int = 0,
                  refresh_id: bytes | None = JTI_OLD, fingerprint: bytes | None = None,
                  revoked: int = 0, subject: bytes = b"bob") -> bytes:
    """A login of section 5 (version 2) or 12.1 (version 1: no generation, no used byte)."""
    out = bytes([kind, revoked]) + i64(T - 100) + i64(900) + i64(T + 3500) + i64(T + 40000) \
        + i64(3600 if kind == 2 else 0) + optional(fingerprint) + optional(refresh_id)
    if version >= 2:
        out += i64(generation) + bytes([used])
    return out + len(subject).to_bytes(2, "big") + subject


def dedup_payload(version: int, key: bytes, *, window_ends_at: int = 0, expires_at: int = 0,
                  generation: int = 0, seconds: int = 0, request: bytes | None = None,
                  sealed: bytes = bytes(40)) -> bytes:
    """A dedup entry: version 2 with its times in milliseconds, version 1 with `seconds`."""
    times = i64(window_ends_at) + i64(expires_at) + i64(generation) if version >= 2 \
        else i64(seconds)
    return key + times + optional(None) + optional(request) + len(sealed).to_bytes(4, "big") \
        + sealed


def put_login(version: int, sid: bytes, dedup: bytes | None = None, **login: Any) -> bytes:
    return frame(1, sid + login_payload(version, **login) + optional(dedup))


def rotate(version: int, sid: bytes, generation: int, dedup: bytes) -> bytes:
    gen = i64(generation) if version >= 2 else b""
    return frame(3, sid + JTI_NEW + i64(T + 3600) + gen + dedup)


def mark_used(sid: bytes, generation: int) -> bytes:
    return frame(6, sid + i64(generation))


class FormatVersionTest(unittest.TestCase):
    """Sections 5 and 12.1: version 2's generations and milliseconds, version 1 still read."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="state-reader-versions-", dir="/tmp")
        self.snapshot = os.path.join(self.dir, "snapshot.tks")
        self.journal = os.path.join(self.dir, "journal-0000000000000007.tkj")

    def tearDown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def read(self, *args: str, now: int = T) -> tuple[int, dict[str, Any], dict[str, Any]]:
        status, doc = run_reader("--json", "--records", "--now", str(now), *args, self.dir)
        return status, doc, doc["results"][0]

    def records(self, doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
        return files_by_name(doc)[name]["records"]

    def problem(self, doc: dict[str, Any], name: str) -> dict[str, Any]:
        return files_by_name(doc)[name]["problem"]

    def write_v2_state(self, *journal: bytes) -> None:
        """A version 2 snapshot: Bob's family at generation 3, used, Alice's session, and two
        dedup entries (an issue's and a rotation's); a version 2 journal 7 of `journal`."""
        write(self.snapshot, snapshot_file([
            put_login(2, BOB_SID, generation=3, used=1),
            put_login(2, ALICE_SID, kind=1, refresh_id=None, subject=b"alice"),
            frame(5, dedup_payload(2, KEY_ISSUE, window_ends_at=T_MS + 1500,
                                   expires_at=T_MS + 1500, request=bytes(16))),
            frame(5, dedup_payload(2, KEY_OTHER, window_ends_at=T_MS + 1500,
                                   expires_at=T_MS + 900_000, generation=3)),
        ], 7, version=2))
        write(self.journal, journal_header(7, version=2) + b"".join(journal))

    def test_version_2_records_and_their_fields(self) -> None:
        rotation = dedup_payload(2, KEY_REFRESH, window_ends_at=T_MS + 2500,
                                 expires_at=T_MS + 1_800_000, generation=4)
        self.write_v2_state(rotate(2, BOB_SID, 4, rotation), mark_used(BOB_SID, 4))
        status, doc, result = self.read()
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        self.assertEqual(doc["format_version"], 2)
        files = files_by_name(doc)
        self.assertEqual(files["snapshot.tks"]["header"]["version"], 2)
        self.assertEqual(files["journal-0000000000000007.tkj"]["header"]["version"], 2)
        bob, alice, issue, other, _ = self.records(doc, "snapshot.tks")
        # A login is 55 bytes, + 16 for the refresh id, + the subject (section 5).
        self.assertEqual(bob["length"], 16 + 55 + 16 + 3 + 1)
        self.assertEqual((bob["login"]["generation"], bob["login"]["used"]), (3, True))
        self.assertEqual(bob["login"]["refresh_id"], b64(JTI_OLD))
        self.assertEqual((alice["login"]["generation"], alice["login"]["used"]), (0, False))
        # A dedup entry is 46 bytes + the optional digests + the sealed bytes.
        self.assertEqual(issue["length"], 46 + 16 + 40)
        self.assertEqual(issue["dedup"], {
            "key": {"present": True, "length": 16}, "window_ends_at": T_MS + 1500,
            "expires_at": T_MS + 1500, "generation": 0, "fingerprint": None,
            "request_digest": {"present": True, "length": 16}, "sealed_length": 40})
        self.assertEqual((other["dedup"]["window_ends_at"], other["dedup"]["expires_at"],
                          other["dedup"]["generation"]), (T_MS + 1500, T_MS + 900_000, 3))
        rot, used = self.records(doc, "journal-0000000000000007.tkj")
        self.assertEqual((rot["type_name"], rot["length"]), ("rotate", 16 + 16 + 8 + 8 + 46 + 40))
        self.assertEqual((rot["session_id"], rot["refresh_id"], rot["expires_at"],
                          rot["generation"]), (b64(BOB_SID), b64(JTI_NEW), T + 3600, 4))
        self.assertEqual((rot["dedup"]["window_ends_at"], rot["dedup"]["expires_at"],
                          rot["dedup"]["generation"]), (T_MS + 2500, T_MS + 1_800_000, 4))
        self.assertEqual(used, {"offset": used["offset"], "type": 6, "type_name": "mark_used",
                                "length": 24, "crc": used["crc"],
                                "session_id": b64(BOB_SID), "generation": 4})
        state = result["state"]
        self.assertEqual((state["families"], state["families_used"],
                          state["highest_generation"]), (1, 1, 4))
        # The text output shows the new fields.
        _, text = run_reader("--records", "--now", str(T), self.dir)
        self.assertIn("generation 3 used True", text)
        self.assertIn(f"generation 4, dedup window_ends_at {T_MS + 2500} ms expires_at "
                      f"{T_MS + 1_800_000} ms generation 4", text)
        self.assertIn(f"mark_used len 24 sid {b64(BOB_SID)} generation 4", text)
        self.assertIn("1 with their current pair used", text)

    def test_rotate_sets_the_generation_and_mark_used_acts_only_at_it(self) -> None:
        # Section 5: rotate sets the generation it carries and clears used; mark_used of
        # another generation (the family rotated since) changes nothing.
        rotation = dedup_payload(2, KEY_REFRESH, window_ends_at=T_MS + 2500,
                                 expires_at=T_MS + 1_800_000, generation=4)
        cases = [
            ([], 1, 3),                                                   # as in the snapshot
            ([rotate(2, BOB_SID, 4, rotation)], 0, 4),                    # rotated: unused
            ([rotate(2, BOB_SID, 4, rotation), mark_used(BOB_SID, 3)], 0, 4),   # stale
            ([rotate(2, BOB_SID, 4, rotation), mark_used(BOB_SID, 4)], 1, 4),
            ([rotate(2, BOB_SID, 4, rotation), mark_used(BOB_SID, 5)], 0, 4),   # not yet
            # Absolute values: a rotate to a lower generation sets it as well.
            ([rotate(2, BOB_SID, 2, rotation), mark_used(BOB_SID, 2)], 1, 2),
            # A login not held: nothing (the rotation's dedup entry is still added).
            ([mark_used(KEY_OTHER, 3)], 1, 3),
        ]
        for journal, used, generation in cases:
            with self.subTest(records=len(journal), used=used, generation=generation):
                self.write_v2_state(*journal)
                status, doc, result = self.read()
                self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
                state = result["state"]
                self.assertEqual((state["families_used"], state["highest_generation"]),
                                 (used, generation))
        # Replaying the journal twice (over a state that holds it already) changes nothing.
        journal = [rotate(2, BOB_SID, 4, rotation), mark_used(BOB_SID, 4)]
        self.write_v2_state(*journal, *journal)
        state = self.read()[2]["state"]
        self.assertEqual((state["families_used"], state["highest_generation"]), (1, 4))
        # In a snapshot (tokend writes none there): a note, applied as in a journal.
        write(self.snapshot, snapshot_file([put_login(2, BOB_SID, generation=3, used=0),
                                            mark_used(BOB_SID, 3)], 7, version=2))
        write(self.journal, journal_header(7, version=2))
        status, doc, result = self.read()
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        self.assertIn("mark_used record at", " ".join(files_by_name(doc)["snapshot.tks"]["notes"]))
        self.assertEqual(result["state"]["families_used"], 1)

    def test_live_dedup_entries_are_counted_in_milliseconds(self) -> None:
        # Section 5: live while now (ms) < expires_at; within the window while < window_ends_at.
        rotation = dedup_payload(2, KEY_REFRESH, window_ends_at=T_MS + 2500,
                                 expires_at=T_MS + 1_800_000, generation=4)
        self.write_v2_state(rotate(2, BOB_SID, 4, rotation))
        cases = [                              # --now: read, live, within the window
            (T, (3, 3, 3)),
            (T + 2, (3, 2, 1)),                # the issue's entry expired at T + 1.5 s
            (T + 3, (3, 2, 0)),
            (T + 899, (3, 2, 0)),
            (T + 900, (3, 1, 0)),              # expires_at = now_ms: expired
            (T + 1799, (3, 1, 0)),
            (T + 1800, (3, 0, 0)),
        ]
        for now, expected in cases:
            with self.subTest(now=now - T):
                state = self.read(now=now)[2]["state"]
                self.assertEqual(state["now_ms"], now * 1000)
                self.assertEqual((state["dedup_entries_read"], state["dedup_entries_live"],
                                  state["dedup_entries_in_window"]), expected)
        # A window ending after the expiry (tokend writes none): kept until the window ends.
        write(self.snapshot, snapshot_file([frame(5, dedup_payload(
            2, KEY_ISSUE, window_ends_at=T_MS + 10_000, expires_at=T_MS + 5000))], 7, version=2))
        write(self.journal, journal_header(7, version=2))
        status, doc, result = self.read(now=T + 7)
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        self.assertIn("window end after its expiry",
                      " ".join(files_by_name(doc)["snapshot.tks"]["notes"]))
        self.assertEqual((result["state"]["dedup_entries_live"],
                          result["state"]["dedup_entries_in_window"]), (1, 1))
        self.assertEqual(self.read(now=T + 10)[2]["state"]["dedup_entries_live"], 0)

    def test_version_1_files_are_still_read(self) -> None:
        # Section 12.1: no generation or used byte in a login (generation 0, unused); a dedup
        # entry's one expiry in seconds, read as window end and expiry in milliseconds
        # (saturated), generation 0; no generation in a rotate (0).
        write(self.snapshot, snapshot_file([
            put_login(1, BOB_SID),
            put_login(1, ALICE_SID, kind=1, refresh_id=None, subject=b"alice",
                      dedup=dedup_payload(1, KEY_ISSUE, seconds=T + 5, request=bytes(16))),
            frame(5, dedup_payload(1, KEY_OTHER, seconds=2 ** 62)),
            frame(5, dedup_payload(1, b"\x44" * 16, seconds=-(2 ** 62))),
        ], 7, version=1))
        write(self.journal, journal_header(7, version=1)
              + rotate(1, BOB_SID, 0, dedup_payload(1, KEY_REFRESH, seconds=T + 2)))
        status, doc, result = self.read()
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        files = files_by_name(doc)
        self.assertEqual((files["snapshot.tks"]["header"]["version"],
                          files["journal-0000000000000007.tkj"]["header"]["version"]), (1, 1))
        bob, alice, huge, negative, _ = self.records(doc, "snapshot.tks")
        self.assertEqual(bob["length"], 16 + 46 + 16 + 3 + 1)        # 46: no generation, used
        self.assertEqual((bob["login"]["generation"], bob["login"]["used"]), (0, False))
        self.assertEqual(alice["length"], 16 + 46 + 5 + 1 + 30 + 16 + 40)
        self.assertEqual((alice["dedup"]["window_ends_at"], alice["dedup"]["expires_at"],
                          alice["dedup"]["generation"]), ((T + 5) * 1000, (T + 5) * 1000, 0))
        self.assertEqual((huge["dedup"]["window_ends_at"], huge["dedup"]["expires_at"]),
                         (2 ** 63 - 1, 2 ** 63 - 1))
        self.assertEqual((negative["dedup"]["window_ends_at"], negative["dedup"]["expires_at"]),
                         (-(2 ** 63), -(2 ** 63)))
        (rot,) = self.records(doc, "journal-0000000000000007.tkj")
        self.assertEqual((rot["generation"], rot["dedup"]["expires_at"],
                          rot["dedup"]["generation"]), (0, (T + 2) * 1000, 0))
        state = result["state"]
        self.assertEqual((state["highest_generation"], state["families_used"]), (0, 0))
        # Live: the issue's (T + 5 s), the rotation's (T + 2 s), the saturated one.
        self.assertEqual((state["dedup_entries_read"], state["dedup_entries_live"]), (4, 3))
        self.assertEqual(self.read(now=T + 2)[2]["state"]["dedup_entries_live"], 2)
        # The document's own examples are version 1 files too (ExampleFilesTest).

    def test_each_file_is_read_in_its_own_headers_layout(self) -> None:
        # After an upgrade: the examples' version 1 snapshot, then a version 2 journal that
        # rotates Bob's family to generation 1 and marks it used.
        write_examples(self.dir)
        rotation = dedup_payload(2, KEY_REFRESH, window_ends_at=T_MS + 2500,
                                 expires_at=T_MS + 1_800_000, generation=1)
        write(self.journal, journal_header(7, version=2) + rotate(2, BOB_SID, 1, rotation)
              + mark_used(BOB_SID, 1))
        status, doc, result = self.read()
        self.assertEqual((status, doc["problems"]), (0, []), doc["problems"])
        self.assertEqual((result["state"]["highest_generation"], result["state"]["families_used"]),
                         (1, 1))
        # A version 2 record in a version 1 file, and a version 1 record in a version 2 file,
        # do not parse: damage at the record.
        for version, record in ((1, put_login(2, BOB_SID, generation=1, used=1)),
                                (2, put_login(1, BOB_SID)),
                                (1, rotate(2, BOB_SID, 1, rotation)),
                                (2, frame(5, dedup_payload(1, KEY_ISSUE, seconds=T + 5)))):
            with self.subTest(version=version, type=record[4]):
                write(self.journal, journal_header(7, version=version) + record
                      + journal_header(7)[:9])      # more bytes after it: not a torn tail
                status, doc, _ = self.read()
                self.assertEqual(status, 1)
                p = self.problem(doc, "journal-0000000000000007.tkj")
                self.assertEqual((p["offset"], p["class"]), (32, "damage"), p)
                self.assertIn("malformed", p["reason"])

    def test_mark_used_in_a_version_1_file_is_damage(self) -> None:
        # Section 5: type 6 does not exist in version 1. Damage even as the newest journal's
        # last record (a whole record with a valid checksum is no torn tail).
        write_examples(self.dir)
        data = Path(self.journal).read_bytes()
        write(self.journal, data + mark_used(BOB_SID, 0))
        status, doc, _ = self.read()
        self.assertEqual(status, 1)
        self.assertEqual(self.problem(doc, "journal-0000000000000007.tkj"), {
            "offset": 57, "class": "damage",
            "reason": "malformed mark_used payload: mark_used is not a record of format "
                      "version 1"})
        # In version 2 it must be exactly 24 bytes.
        for payload in (BOB_SID + i64(0)[:7], BOB_SID + i64(0) + b"\x00"):
            with self.subTest(size=len(payload)):
                write(self.journal, journal_header(7, version=2) + frame(6, payload))
                status, doc, _ = self.read()
                p = self.problem(doc, "journal-0000000000000007.tkj")
                self.assertEqual((status, p["offset"], p["class"]), (1, 32, "damage"), p)
                self.assertIn("malformed mark_used payload", p["reason"])

    def test_a_bad_used_byte_is_damage(self) -> None:
        # Section 5: used is 0 or 1; anything else makes the record malformed, in a snapshot
        # and in a journal alike.
        write(self.journal, journal_header(7, version=2) + put_login(2, BOB_SID, used=2))
        status, doc, _ = self.read()
        self.assertEqual(status, 1)
        self.assertEqual(self.problem(doc, "journal-0000000000000007.tkj"), {
            "offset": 32, "class": "damage",
            "reason": "malformed put_login payload: bad used byte 0x02"})
        write(self.snapshot, snapshot_file([put_login(2, BOB_SID, used=0xFF)], 7, version=2))
        write(self.journal, journal_header(7, version=2))
        status, doc, _ = self.read()
        self.assertEqual(status, 1)
        p = self.problem(doc, "snapshot.tks")
        self.assertEqual((p["offset"], p["class"]), (32, "damage"))
        self.assertIn("bad used byte 0xff", p["reason"])

    def test_versions_above_2_are_refused(self) -> None:
        # Sections 3 and 12: a newer version is damage at offset 0, even in the newest journal.
        write(self.snapshot, snapshot_file([], 7, version=2))
        write(self.journal, journal_header(7, version=3))
        status, doc, _ = self.read()
        self.assertEqual(status, 1)
        self.assertEqual(self.problem(doc, "journal-0000000000000007.tkj"), {
            "offset": 0, "class": "damage",
            "reason": "format version 3 is newer than this reader (2)"})
        write(self.journal, journal_header(7, version=2))
        self.assertEqual(self.read()[0], 0)
        write(self.snapshot, snapshot_file([], 7, version=0xFFFF))
        status, doc, _ = self.read()
        self.assertEqual(self.problem(doc, "snapshot.tks")["reason"],
                         "format version 65535 is newer than this reader (2)")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class ProgramTest(unittest.TestCase):
    """The reader as a program: its exit status and outputs."""

    def test_exit_status_and_outputs(self) -> None:
        directory = tempfile.mkdtemp(prefix="state-reader-program-", dir="/tmp")
        try:
            write_examples(directory)
            status, out = run_reader_program("--json", directory)
            self.assertEqual(status, 0, out)
            self.assertTrue(json.loads(out)["clean"])
            write(os.path.join(directory, "journal-0000000000000000.tkj"), journal_header(0))
            os.remove(os.path.join(directory, "snapshot.tks"))
            status, out = run_reader_program(directory)
            self.assertEqual(status, 1, out)
            self.assertIn("problem: journal-0000000000000000.tkj: damage: journal 0", out)
            self.assertIn("problem: directory: gap: missing journals: 1, 2, 3, 4, 5, 6", out)
            self.assertEqual(run_reader_program("--bogus", directory)[0], 2)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------------------------------

class Daemon:
    def __init__(self, tokend: Path, state_dir: str, log_path: str) -> None:
        self.socket_path = os.path.join(state_dir, "s.sock")
        args = [str(tokend), "--state-dir", state_dir, "--socket", self.socket_path,
                "--dedup-window", f"{DEDUP_WINDOW}s", "--snapshot-interval", "0",
                "--log-level", "info"]
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tokend exited {self.process.returncode}:\n{self.log()}")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(self.socket_path)
                return
            except OSError:
                time.sleep(0.02)
            finally:
                probe.close()
        self.kill()
        raise RuntimeError(f"tokend did not listen in time:\n{self.log()}")

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


def start_of_a_second(margin: float = 0.5) -> None:
    fraction = time.time() % 1
    if fraction > 1 - margin:
        time.sleep(1 - fraction + 0.01)


def after_the_second_of(moment: float) -> None:
    """Wait until the clock's whole second is past `moment`'s.

    A verify slides a session to min(expires_at + renew-by, now + ttl, max_expires_at)
    (proto-spec.md 12.4): within the second it was issued in, now + ttl is its expires_at and
    nothing moves.
    """
    while int(time.time()) <= int(moment):
        time.sleep(max(0.01, 1 - time.time() % 1 + 0.005))


class RealDaemonTest(unittest.TestCase):
    """One scenario against the real tokend (setUpClass), then checks of its files."""

    issued: list[str]
    state_dir: str
    root: str
    log_path: str
    tokend: Path
    tokenctl: Path
    secrets: dict[str, Any]
    snapshot_reply: dict[str, Any]
    sessions_before: dict[str, Any]

    @classmethod
    def setUpClass(cls) -> None:
        cls.tokend = binary("TOKEND_BIN", "tokend")
        cls.tokenctl = binary("TOKENCTL_BIN", "tokenctl")
        from tokend_client import Client, TokendError  # noqa: E402 (tools/python on sys.path)
        cls.root = tempfile.mkdtemp(prefix="state-reader-real-", dir="/tmp")
        cls.state_dir = os.path.join(cls.root, "state")
        cls.log_path = os.path.join(cls.root, "tokend.log")
        cls.issued = []
        daemon = Daemon(cls.tokend, cls.state_dir, cls.log_path)
        try:
            cls._scenario(daemon, Client, TokendError)
        except BaseException:
            daemon.kill()
            print(Path(cls.log_path).read_text(errors="replace")[-4000:], file=sys.stderr)
            shutil.rmtree(cls.root, ignore_errors=True)
            raise

    @classmethod
    def _scenario(cls, daemon: Daemon, Client: Any, TokendError: Any) -> None:
        fp = "Mozilla/5.0 (state-reader-test)"
        # Start 1 (journal 1): logins, an idempotent issue and its repeat, a sliding verify,
        # a refresh and its repeat; then `tokenctl snapshot` while the two dedup entries live.
        start_of_a_second()
        with Client(daemon.socket_path, timeout=10.0) as c:
            alice = c.issue("alice", fingerprint=fp, ttl=60)
            alice_issued = time.time()
            bob = c.issue("bob", "pair")
            after_the_second_of(alice_issued)
            slid = c.verify(alice.session_token, fingerprint=fp)
            # The dedup entries come after the wait, so that the snapshot below catches them.
            carol = c.issue("carol", idempotency_key="login-1")
            again = c.issue("carol", idempotency_key="login-1")
            assert again.session_id == carol.session_id, "idempotent issue not repeated"
            assert slid.renewed, "verify of a 60 s session did not slide"
            bob2 = c.refresh(bob.refresh_token)
            repeat = c.refresh(bob.refresh_token)
            assert repeat.refresh_token == bob2.refresh_token, "refresh repeat not deduplicated"
            cls.issued += [alice.session_id, bob.session_id, carol.session_id]
            cls.secrets = {"fingerprint": fp, "carol": carol, "bob_refresh": bob.refresh_token,
                           "bob2": bob2}
        snap = subprocess.run([str(cls.tokenctl), "snapshot", "--socket", daemon.socket_path,
                               "--json"], capture_output=True, text=True, timeout=30)
        assert snap.returncode == 0, f"tokenctl snapshot: {snap.stdout}{snap.stderr}"
        cls.snapshot_reply = json.loads(snap.stdout)
        # The lock while the daemon runs: the reader's view and tokenctl's.
        cls.first_pid = daemon.process.pid
        _, doc = run_reader("--json", cls.state_dir)
        cls.lock_while_running = doc["results"][0]["lock"]
        cls.check_while_running = store_check(cls.tokenctl, cls.state_dir)[1]
        # A crash, then a restart: journal 2 (empty) stays, journal 3 begins.
        daemon.kill()
        daemon = Daemon(cls.tokend, cls.state_dir, cls.log_path)
        cls.second_pid = daemon.process.pid
        try:
            with Client(daemon.socket_path, timeout=10.0) as c:
                dave = c.issue("dave", ttl=60)
                dave_issued = time.time()
                erin = c.issue("erin", "pair", idempotency_key="login-2")
                frank1 = c.issue("frank")
                frank2 = c.issue("frank", "pair")
                cls.issued += [dave.session_id, erin.session_id, frank1.session_id,
                               frank2.session_id]
                cls.secrets["erin"] = erin
                after_the_second_of(dave_issued)
                assert c.verify(dave.session_token).renewed
                erin2 = c.refresh(erin.refresh_token)
                cls.secrets["erin2"] = erin2
                spent_at = time.time()      # after the rotation: its window ends before + 2 s
                assert c.refresh(erin.refresh_token).refresh_token == erin2.refresh_token
                c.revoke(alice.session_token)                               # by token
                c.revoke(session_id=carol.session_id)                       # by session id
                c.revoke(subject="frank")                                   # by subject: 2
                # After the dedup window (kept to the millisecond), within the rotation grace,
                # the new pair unused: a retry of the spent token is a lost response and gets
                # the same pair (nothing written).
                deadline = spent_at + DEDUP_WINDOW + 0.05
                while time.time() < deadline:
                    time.sleep(min(0.1, max(0.0, deadline - time.time())))
                retry = c.refresh(erin.refresh_token)
                assert retry.refresh_token == erin2.refresh_token, "lost-response retry refused"
                # A verify of the new access token uses the pair (mark_used)...
                c.verify(erin2.access_token)
                # ...and from then on the spent refresh token is reuse.
                try:
                    c.refresh(erin.refresh_token)
                except TokendError as refusal:
                    assert refusal.name == "reuse_detected", refusal.name
                else:
                    raise AssertionError("a spent refresh token was accepted")
                cls.sessions_before = {s.session_id: s for s in c.all_sessions()}
        finally:
            daemon.kill()   # a crash: the journal keeps its records (a clean stop snapshots)

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self) -> None:
        self.copies: list[str] = []

    def tearDown(self) -> None:
        for copy in self.copies:
            shutil.rmtree(copy, ignore_errors=True)

    def copy(self) -> str:
        copy = copy_state(self.state_dir)
        self.copies.append(copy)
        return copy

    def read(self, directory: str) -> tuple[int, dict[str, Any]]:
        return run_reader("--json", "--records", directory)

    def test_every_record_type_and_checksum(self) -> None:
        status, doc = self.read(self.state_dir)
        self.assertEqual(status, 0, json.dumps(doc["problems"]))
        files = files_by_name(doc)
        self.assertEqual(sorted(files), ["journal-0000000000000002.tkj",
                                         "journal-0000000000000003.tkj", "snapshot.tks"])
        seen: dict[str, int] = {}
        for f in files.values():
            self.assertIsNone(f["problem"])
            self.assertTrue(f["header"]["crc_valid"])
            self.assertEqual(f["header"]["version"], 2)
            for name, n in f["records_by_type"].items():
                seen[name] = seen.get(name, 0) + n
        self.assertEqual(set(seen), set(reader.RECORD_TYPES.values()), seen)
        snap = files["snapshot.tks"]
        self.assertEqual(snap["header"]["sequence"], 2)
        self.assertTrue(snap["snapshot_end"]["file_crc_valid"])
        # `tokenctl snapshot --json` reports the records written (proto-spec.md 12.13 count)
        self.assertEqual(snap["snapshot_end"]["count"], self.snapshot_reply["records"])
        self.assertEqual(snap["records_by_type"], {"put_login": 3, "put_dedup": 2,
                                                   "snapshot_end": 1})
        self.assertEqual(files["journal-0000000000000002.tkj"]["record_count"], 0)
        j3 = files["journal-0000000000000003.tkj"]
        self.assertEqual(j3["records_by_type"], {"put_login": 4, "set_expiry": 1, "rotate": 1,
                                                 "mark_used": 1, "revoke": 5})
        # The idempotent issue's put_login carries its dedup entry; the others none.
        with_dedup = [r for r in j3["records"] if r["type"] == 1 and r["dedup"] is not None]
        self.assertEqual(len(with_dedup), 1)
        self.assertEqual(with_dedup[0]["login"]["subject"], "erin")
        self.assertTrue(with_dedup[0]["dedup"]["request_digest"])
        order = doc["results"][0]["journal_order"]
        self.assertEqual((order["journals_read"], order["missing"], order["next_journal"]),
                         ([2, 3], [], 4))

    def test_generations_follow_the_rotations(self) -> None:
        # Section 5.1: a family's pairs are numbered from 0, each rotation the next; a rotation's
        # dedup entry holds the new pair's generation, kept past its window for the grace (by
        # default the access-token TTL); a verify of the new access token marks it used.
        status, doc = self.read(self.state_dir)
        self.assertEqual(status, 0, json.dumps(doc["problems"]))
        files = files_by_name(doc)
        snap = files["snapshot.tks"]["records"]
        j3 = files["journal-0000000000000003.tkj"]["records"]
        logins = {r["login"]["subject"]: r["login"] for r in snap + j3 if r["type"] == 1}
        # Bob's family rotated once before the snapshot; the others were written as issued.
        self.assertEqual((logins["bob"]["generation"], logins["bob"]["used"]), (1, False))
        for subject in ("alice", "carol", "dave", "erin", "frank"):
            self.assertEqual((logins[subject]["generation"], logins[subject]["used"]), (0, False),
                             subject)
        window = DEDUP_WINDOW * 1000
        # The issue's entries: kept for their window only, generation 0.
        issues = [r["dedup"] for r in snap if r["type"] == 5 and r["dedup"]["request_digest"]]
        issues += [r["dedup"] for r in j3 if r["type"] == 1 and r["dedup"] is not None]
        self.assertEqual(len(issues), 2)
        for d in issues:
            self.assertEqual((d["expires_at"], d["generation"]), (d["window_ends_at"], 0), d)
        # The rotations' entries: the new pair's generation, kept for the grace after the window.
        bob_entry = next(r["dedup"] for r in snap if r["type"] == 5
                         and not r["dedup"]["request_digest"])
        rotate = next(r for r in j3 if r["type"] == 3)
        for d in (bob_entry, rotate["dedup"]):
            self.assertEqual(d["generation"], 1, d)
            self.assertEqual(d["expires_at"] - d["window_ends_at"], ACCESS_TTL * 1000 - window, d)
        self.assertEqual(rotate["generation"], 1)
        # The new pair's tokens carry it as `tokend_gen`.
        for token in (self.secrets["erin2"].access_token, self.secrets["erin2"].refresh_token):
            claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "==="))
            self.assertEqual(claims["tokend_gen"], 1)
        # One mark_used, for Erin's generation 1, between her rotation and her revocation;
        # the repeat and the lost-response retry wrote nothing.
        types = [r["type_name"] for r in j3 if r.get("session_id") == rotate["session_id"]]
        self.assertEqual(types, ["put_login", "rotate", "mark_used", "revoke"])
        used = next(r for r in j3 if r["type"] == 6)
        self.assertEqual((used["session_id"], used["generation"], used["length"]),
                         (self.secrets["erin"].session_id, 1, 24))
        # Replayed: Erin's pair used (and her family revoked), Bob's and Frank's not.
        state = doc["results"][0]["state"]
        self.assertEqual((state["families_used"], state["highest_generation"]), (1, 1))

    def test_the_lock_names_the_daemon(self) -> None:
        # Section 1: tokend.lock holds the pid; held while the daemon runs, released by a crash.
        self.assertEqual(self.lock_while_running,
                         {"present": True, "pid": self.first_pid, "held": True})
        self.assertEqual(self.check_while_running["in_use_by_pid"], self.first_pid)
        status, doc = self.read(self.state_dir)
        self.assertEqual(status, 0)
        result = doc["results"][0]
        self.assertEqual(result["lock"], {"present": True, "pid": self.second_pid, "held": False})
        self.assertNotIn("tokend.lock", result["other_files"])
        self.assertEqual(Path(self.state_dir, "tokend.lock").read_bytes(),
                         f"{self.second_pid}\n".encode())
        self.assertEqual(os.stat(os.path.join(self.state_dir, "tokend.lock")).st_mode & 0o777,
                         0o600)
        _, check = store_check(self.tokenctl, self.state_dir)
        self.assertIsNone(check["in_use_by_pid"])
        # The files tokend wrote have the modes it requires (section 1).
        for f in files_by_name(doc).values():
            self.assertEqual(f["mode"], "0600", f["name"])
        self.assertEqual(result["mode"], "0700")

    def test_counts_agree_with_store_check(self) -> None:
        status, check = store_check(self.tokenctl, self.state_dir)
        self.assertEqual((status, check["status"], check["problem"]), (0, "ok", None))
        _, doc = self.read(self.state_dir)
        files = files_by_name(doc)
        self.assertEqual([f["name"] for f in check["files"]], list(files))
        for entry in check["files"]:
            mine = files[entry["name"]]
            theirs = {k: v for k, v in entry["records"].items() if v}
            self.assertEqual(mine["records_by_type"], theirs, entry["name"])
            self.assertEqual((mine["size"], mine["header"]["sequence"],
                              mine["header"]["version"]),
                             (entry["bytes"], entry["sequence"], entry["version"]))
            self.assertIsNone(entry["problem"])

    def test_logins_match_what_was_issued(self) -> None:
        _, doc = self.read(self.state_dir)
        sids = set()
        for f in files_by_name(doc).values():
            sids |= {r["session_id"] for r in f["records"] if r["type"] == 1}
        self.assertEqual(sids, set(self.issued))
        state = doc["results"][0]["state"]
        self.assertEqual(state["logins"], len(self.issued))
        self.assertEqual((state["sessions"], state["families"]), (4, 3))
        # alice (token), carol (session id), frank x2 (subject), erin (reuse detection)
        self.assertEqual(state["revoked"], 5)
        revoked = {s for s, info in self.sessions_before.items() if info.state_name == "revoked"}
        self.assertEqual(len(self.sessions_before), len(self.issued))
        self.assertEqual(len(revoked), 5)

    def test_digests_and_sealed_lengths_follow_section_8(self) -> None:
        # The keyed digests are what section 8 says, computed from digest.secret and what the
        # test sent; each sealed result is nonce + the plaintext layout of section 8 + tag long
        # (AES-GCM is not in the standard library, so the sealed contents stay unchecked).
        secret = Path(self.state_dir, "keys", "digest.secret").read_bytes()

        def digest(label: str, *parts: bytes, size: int = 16) -> bytes:
            message = label.encode() + b"".join(len(p).to_bytes(4, "big") + p for p in parts)
            return hmac.new(secret, message, hashlib.sha256).digest()[:size]

        def sealed_length(result: Any) -> int:
            token = (result.session_token or result.access_token).encode()
            refresh = (result.refresh_token or "").encode()
            return 12 + 45 + len(token) + 4 + len(refresh) + 16

        reader.RAW_DIGESTS = True
        try:
            snap = reader.read_file(os.path.join(self.state_dir, "snapshot.tks"), "snapshot",
                                    False, "read", None)
            journal = reader.read_file(os.path.join(self.state_dir,
                                                    "journal-0000000000000003.tkj"),
                                       "journal", True, "read", 3)
        finally:
            reader.RAW_DIGESTS = False
        s = self.secrets
        logins = {r["login"]["subject"]: r for r in snap.records + journal.records
                  if r["type"] == 1}
        self.assertEqual(logins["alice"]["login"]["fingerprint"]["bytes"],
                         digest("tokend.fingerprint.v1", s["fingerprint"].encode()))
        dedups = {d["key"]["bytes"]: d for d in
                  [r["dedup"] for r in snap.records if r["type"] == 5]}
        # carol's idempotent issue: key, request digest (mode 1, no fingerprint, audience,
        # claims or overrides), sealed session result
        key = digest("tokend.idempotency.v1", b"carol", b"login-1")
        self.assertIn(key, dedups)
        self.assertEqual(dedups[key]["request_digest"]["bytes"],
                         digest("tokend.issue-request.v1", b"\x01", b"", b"\x00", b"\x00",
                                b"0/0/0"))
        self.assertIsNone(dedups[key]["fingerprint"])
        self.assertEqual(dedups[key]["sealed_length"], sealed_length(s["carol"]))
        # bob's refresh: found under the digest of the presented refresh token
        key = digest("tokend.refresh-token.v1", s["bob_refresh"].encode())
        self.assertIn(key, dedups)
        self.assertIsNone(dedups[key]["request_digest"])
        self.assertEqual(dedups[key]["sealed_length"], sealed_length(s["bob2"]))
        # erin: the put_login of an idempotent pair issue carries its entry; the rotate's entry
        # is under the presented refresh token and seals the new pair
        erin = logins["erin"]["dedup"]
        self.assertEqual(erin["key"]["bytes"], digest("tokend.idempotency.v1", b"erin",
                                                      b"login-2"))
        self.assertEqual(erin["request_digest"]["bytes"],
                         digest("tokend.issue-request.v1", b"\x02", b"", b"\x00", b"\x00",
                                b"0/0/0"))
        self.assertEqual(erin["sealed_length"], sealed_length(s["erin"]))
        rotate = next(r for r in journal.records if r["type"] == 3)
        self.assertEqual(rotate["session_id"], s["erin"].session_id)
        self.assertEqual(rotate["dedup"]["key"]["bytes"],
                         digest("tokend.refresh-token.v1", s["erin"].refresh_token.encode()))
        self.assertEqual(rotate["dedup"]["sealed_length"], sealed_length(s["erin2"]))
        self.assertEqual(rotate["expires_at"], s["erin2"].refresh_expires_at)
        jti = json.loads(base64.urlsafe_b64decode(
            s["erin2"].refresh_token.split(".")[1] + "==="))["jti"]
        self.assertEqual(rotate["refresh_id"], jti)

    def test_a_daemon_loads_what_the_reader_read(self) -> None:
        from tokend_client import Client
        copy = self.copy()
        os.chmod(copy, 0o700)
        shutil.copytree(os.path.join(self.state_dir, "keys"), os.path.join(copy, "keys"))
        _, doc = self.read(copy)
        daemon = Daemon(self.tokend, copy, os.path.join(copy, "tokend.log"))
        try:
            with Client(daemon.socket_path, timeout=10.0) as c:
                held = {s.session_id: s for s in c.all_sessions()}
        finally:
            daemon.kill()
        self.assertEqual(set(held), set(self.issued))
        self.assertEqual(sum(1 for s in held.values() if s.state_name == "revoked"),
                         doc["results"][0]["state"]["revoked"])

    # -- damage -----------------------------------------------------------------------------

    def newest(self, directory: str) -> tuple[str, list[dict[str, Any]]]:
        _, doc = self.read(directory)
        f = files_by_name(doc)["journal-0000000000000003.tkj"]
        return f["path"], f["records"]

    def assert_problem(self, directory: str, offset: int, cls: str, words: str) -> None:
        status, doc = self.read(directory)
        self.assertEqual(status, 1)
        p = files_by_name(doc)["journal-0000000000000003.tkj"]["problem"]
        self.assertEqual((p["offset"], p["class"]), (offset, cls), p)
        self.assertIn(words, p["reason"])
        status, check = store_check(self.tokenctl, directory)
        self.assertEqual(status, 1)
        self.assertEqual(check["problem"]["file"], "journal-0000000000000003.tkj")
        self.assertEqual((check["problem"]["offset"], check["problem"]["torn"]),
                         (offset, cls == "torn_tail"), check["problem"])

    def test_flipped_byte_in_a_middle_record_is_damage_at_its_offset(self) -> None:
        copy = self.copy()
        path, records = self.newest(copy)
        middle = records[len(records) // 2]
        data = bytearray(Path(path).read_bytes())
        data[middle["offset"] + 9 + middle["length"] // 2] ^= 0x40
        Path(path).write_bytes(bytes(data))
        self.assert_problem(copy, middle["offset"], "damage", "checksum mismatch")

    def test_last_record_cut_in_half_is_a_torn_tail(self) -> None:
        copy = self.copy()
        path, records = self.newest(copy)
        last = records[-1]
        data = Path(path).read_bytes()
        self.assertEqual(last["offset"] + 9 + last["length"], len(data))
        Path(path).write_bytes(data[:last["offset"] + (9 + last["length"]) // 2])
        self.assert_problem(copy, last["offset"], "torn_tail", "past the end")

    def test_flipped_byte_in_the_last_record_is_a_torn_tail(self) -> None:
        copy = self.copy()
        path, records = self.newest(copy)
        last = records[-1]
        data = bytearray(Path(path).read_bytes())
        data[-1] ^= 0x01
        Path(path).write_bytes(bytes(data))
        self.assert_problem(copy, last["offset"], "torn_tail", "checksum mismatch")

    def test_flipped_byte_in_the_snapshot_is_damage(self) -> None:
        copy = self.copy()
        _, doc = self.read(copy)
        snap = files_by_name(doc)["snapshot.tks"]
        record = snap["records"][1]
        path = snap["path"]
        data = bytearray(Path(path).read_bytes())
        data[record["offset"] + 9 + 3] ^= 0x01
        Path(path).write_bytes(bytes(data))
        status, doc = self.read(copy)
        self.assertEqual(status, 1)
        p = files_by_name(doc)["snapshot.tks"]["problem"]
        self.assertEqual((p["offset"], p["class"]), (record["offset"], "damage"))
        _, check = store_check(self.tokenctl, copy)
        self.assertEqual((check["problem"]["file"], check["problem"]["offset"],
                          check["problem"]["torn"]), ("snapshot.tks", record["offset"], False))

    def test_a_missing_journal_is_a_gap(self) -> None:
        copy = self.copy()
        os.remove(os.path.join(copy, "journal-0000000000000002.tkj"))
        status, doc = self.read(copy)
        self.assertEqual(status, 1)
        self.assertEqual(doc["results"][0]["journal_order"]["missing"], [2])
        status, check = store_check(self.tokenctl, copy)
        self.assertEqual(status, 1, check)


class DaemonAgreementTest(unittest.TestCase):
    """The revised rules of docs/state-format.md against what tokend and `tokenctl store check`
    do on the same directories: each case is read by the reader, checked by tokenctl, and
    started by tokend (killed as soon as it listens)."""

    tokend: Path
    tokenctl: Path

    @classmethod
    def setUpClass(cls) -> None:
        cls.tokend = binary("TOKEND_BIN", "tokend")
        cls.tokenctl = binary("TOKENCTL_BIN", "tokenctl")

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="state-reader-agree-", dir="/tmp")
        write_examples(self.dir)

    def tearDown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def only_journals(self, numbers: list[int], upper: tuple[int, ...] = ()) -> None:
        for name in os.listdir(self.dir):
            os.remove(os.path.join(self.dir, name))
        for n in numbers:
            name = f"journal-{n:016X}.tkj" if n in upper else f"journal-{n:016x}.tkj"
            write(os.path.join(self.dir, name), journal_header(n))

    def all_three(self) -> tuple[dict[str, Any], tuple[int, Any], tuple[bool, str]]:
        status, doc = run_reader("--json", self.dir)
        code, out, err = store_check_raw(self.tokenctl, self.dir)
        check = json.loads(out) if code in (0, 1) else err
        return doc, (code, check), try_start(self.tokend, self.dir)

    def test_journal_zero(self) -> None:
        self.only_journals([0, 1])
        doc, (code, check), (listened, log) = self.all_three()
        self.assertEqual([p["class"] for p in doc["problems"]], ["damage"])
        self.assertEqual((code, check["problem"]["file"], check["problem"]["torn"]),
                         (1, "journal-0000000000000000.tkj", False))
        self.assertFalse(listened, log)
        self.assertIn("journal 0", log)

    def test_journal_zero_covered(self) -> None:
        write(os.path.join(self.dir, "journal-0000000000000000.tkj"), journal_header(0))
        doc, (code, check), (listened, log) = self.all_three()
        self.assertEqual(doc["problems"], [])
        self.assertEqual(code, 0, check)
        self.assertTrue(listened, log)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "journal-0000000000000000.tkj")))

    def test_names_that_are_not_journals(self) -> None:
        names = {"journal-7.tkj": journal_header(7), "journal-00000000000000008.tkj": b"x",
                 "journal-4000000000000000.tkj": b"x", "journal-000000000000000g.tkj": b"x"}
        for name, content in names.items():
            write(os.path.join(self.dir, name), content)
        doc, (code, check), (listened, log) = self.all_three()
        self.assertEqual(doc["problems"], [])
        self.assertEqual(code, 0, check)
        self.assertEqual(sorted(f["name"] for f in check["files"]),
                         ["journal-0000000000000007.tkj", "snapshot.tks"])
        self.assertTrue(listened, log)
        for name, content in names.items():
            self.assertEqual(Path(self.dir, name).read_bytes(), content, name)

    def test_a_lock_file_left_behind(self) -> None:
        write(os.path.join(self.dir, "tokend.lock"), b"999999\n")
        doc, (code, check), (listened, log) = self.all_three()
        self.assertEqual(doc["problems"], [])
        self.assertEqual((code, check["in_use_by_pid"]), (0, None), check)
        self.assertTrue(listened, log)

    def test_a_13_byte_end_record(self) -> None:
        data = Path(self.dir, "snapshot.tks").read_bytes()
        Path(self.dir, "snapshot.tks").write_bytes(data[:293] + frame(255, data[-12:] + b"\0"))
        doc, (code, check), (listened, log) = self.all_three()
        self.assertEqual([(p["file"], p["offset"], p["class"]) for p in doc["problems"]],
                         [("snapshot.tks", 293, "damage")])
        self.assertEqual((code, check["problem"]["file"], check["problem"]["offset"],
                          check["problem"]["torn"]), (1, "snapshot.tks", 293, False))
        self.assertFalse(listened, log)
        self.assertIn("at byte offset 293", log)

    def test_a_journal_group_may_read(self) -> None:
        os.chmod(os.path.join(self.dir, "journal-0000000000000007.tkj"), 0o640)
        doc, (code, check), (listened, log) = self.all_three()
        self.assertEqual([p["class"] for p in doc["problems"]], ["mode"])
        self.assertEqual(code, 2, check)
        self.assertFalse(listened, log)
        self.assertIn("chmod 600", log)

    def test_a_torn_header_is_left_out_and_its_number_reused(self) -> None:
        # Journal 7 without records, so that nothing is replayed and no snapshot follows the
        # start: the journal it opens stays in place to be seen.
        write(os.path.join(self.dir, "journal-0000000000000007.tkj"), journal_header(7))
        write(os.path.join(self.dir, "journal-0000000000000009.tkj"), journal_header(9)[:20])
        doc, (code, check), (listened, log) = self.all_three()
        order = doc["results"][0]["journal_order"]
        self.assertEqual((order["missing"], order["next_journal"]), ([], 8))
        self.assertEqual((code, check["problem"]["offset"], check["problem"]["torn"]),
                         (1, 0, True), check)
        self.assertTrue(listened, log)
        journals = sorted(n for n in os.listdir(self.dir) if n.startswith("journal-"))
        self.assertEqual(journals, ["journal-0000000000000007.tkj",
                                    "journal-0000000000000008.tkj"])

    def test_an_upper_case_journal_name_is_left_alone(self) -> None:
        # Section 1: one number, one name; `journal-000000000000000A.tkj` is not a journal.
        upper = "journal-000000000000000A.tkj"
        self.only_journals(list(range(1, 11)), upper=(10,))
        content = Path(self.dir, upper).read_bytes()
        doc, (code, check), (listened, log) = self.all_three()
        order = doc["results"][0]["journal_order"]
        self.assertEqual((doc["problems"], order["journals_read"], order["next_journal"]),
                         ([], list(range(1, 10)), 10))
        self.assertEqual(code, 0, check)
        self.assertNotIn(upper, [f["name"] for f in check["files"]])
        self.assertEqual(len(check["files"]), 9, check)
        self.assertTrue(listened, log)
        self.assertNotIn(upper, log)
        # tokend opened journal 10 under its own name and left the upper-case file as it was.
        self.assertTrue(Path(self.dir, "journal-000000000000000a.tkj").exists())
        self.assertEqual(Path(self.dir, upper).read_bytes(), content)
        # Now beside the lower-case name of its number: still one journal 10, still left alone.
        doc, (code, check), (listened, log) = self.all_three()
        self.assertEqual(doc["problems"], [])
        self.assertEqual(doc["results"][0]["journal_order"]["journals_read"], list(range(1, 11)))
        self.assertEqual(code, 0, check)
        self.assertEqual(len(check["files"]), 10, check)
        self.assertTrue(listened, log)
        self.assertEqual(Path(self.dir, upper).read_bytes(), content)

    def test_journal_zero_beside_a_snapshot_of_sequence_zero(self) -> None:
        # Sections 1 and 9 step 4: journal 0 is damage among the journals a start reads, those
        # numbered from the snapshot's sequence on; with a snapshot of sequence 0 (which tokend
        # never writes) journal 0 is one of them: the reader, tokenctl and tokend all refuse.
        self.only_journals([0, 1])
        write(os.path.join(self.dir, "snapshot.tks"), snapshot_file([], 0))
        doc, (code, check), (listened, log) = self.all_three()
        self.assertEqual([(p["file"], p["class"]) for p in doc["problems"]],
                         [("journal-0000000000000000.tkj", "damage")])
        self.assertEqual(code, 1, check)
        self.assertFalse(listened, log)


if __name__ == "__main__":
    unittest.main()
