#!/usr/bin/env python3
"""Tests of tools/state-reader.py (standard library unittest, Python 3.11+).

    TOKEND_BIN=... TOKENCTL_BIN=... python3 tools/state-reader-test.py [-v]

1. The document's own example files (tools/proto-examples.py --files) parse clean, with the
   contents docs/state-format.md section 14 describes; damaged copies of them are classified
   as section 9 says.
2. A real tokend writes every record type (issue in both modes, an idempotent issue, a verify
   that slides, refresh and a dedup repeat, revoke by token, session id and subject, reuse
   detection, `tokenctl snapshot`, a restart); the reader finds every type, every checksum
   valid, the counts of `tokenctl store check`, and as many logins as were issued. A daemon
   started on a copy loads the same logins.
3. Damaged copies of those real files: a flipped byte in a middle record is damage at that
   record's offset, the last record cut in half is a torn tail at its offset; `tokenctl store
   check` agrees.

The daemon tests are skipped when there is no tokend binary at $TOKEND_BIN (default
<repo>/.build/debug/tokend) or tokenctl at $TOKENCTL_BIN.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
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


def binary(env: str, name: str) -> Path:
    configured = os.environ.get(env)
    path = Path(configured) if configured else REPO / ".build" / "debug" / name
    if not path.exists():
        if configured:
            raise FileNotFoundError(f"{env}={configured} does not exist")
        raise unittest.SkipTest(f"no {name} binary at {path}; set {env}")
    return path


def run_reader(*args: str) -> tuple[int, Any]:
    """Run the reader as a program with --json; (exit status, parsed output or stderr)."""
    proc = subprocess.run([sys.executable, str(READER), *args], capture_output=True, text=True,
                          timeout=60)
    if "--json" in args and proc.returncode in (0, 1):
        return proc.returncode, json.loads(proc.stdout)
    return proc.returncode, proc.stdout + proc.stderr


def files_by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for result in doc["results"] for f in result["files"]}


def sid_bytes(sid: str) -> bytes:
    return base64.urlsafe_b64decode(sid + "=" * (-len(sid) % 4))


def write_examples(directory: str) -> None:
    subprocess.run([sys.executable, str(EXAMPLES), "--files", directory], check=True,
                   timeout=60)
    for name in os.listdir(directory):
        os.chmod(os.path.join(directory, name), 0o600)


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
            "subject": "alice"})
        self.assertEqual(records[1]["session_id"], "Tr5Kc0wLx9HdMvE7uJq1gQ")
        self.assertEqual(bob, {
            "kind": "family", "revoked": False, "created_at": 1767225600, "ttl": 900,
            "expires_at": 1767230000, "max_expires_at": 1767268800, "refresh_ttl": 3600,
            "fingerprint": None, "refresh_id": "k3Vn8Qe1Zr5Tm0Lw7Ys2Hg", "subject": "bob"})
        self.assertEqual(records[2]["session_id"], "Xc7pL2qR9tVwY4zA1bN6mQ")
        self.assertEqual(carol, {
            "kind": "session", "revoked": False, "created_at": 1767222000, "ttl": 7200,
            "expires_at": 1767229200, "max_expires_at": 1767265200, "refresh_ttl": 0,
            "fingerprint": None, "refresh_id": None, "subject": "carol"})
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
        payload = (4).to_bytes(8, "big") + data[-4:]
        frame = (12).to_bytes(4, "big") + b"\xff" + reader.crc32c(b"\xff" + payload).to_bytes(4, "big")
        Path(self.snapshot).write_bytes(data[:293] + frame + payload)
        p = self.problem(run_reader("--json", self.dir)[1], "snapshot.tks")
        self.assertEqual((p["offset"], p["class"]), (293, "damage"))
        self.assertIn("count", p["reason"])
        # An end record of 13 bytes: "Exactly 12 bytes" (section 5).
        payload = data[-12:] + b"\x00"
        frame = (13).to_bytes(4, "big") + b"\xff" + reader.crc32c(b"\xff" + payload).to_bytes(4, "big")
        Path(self.snapshot).write_bytes(data[:293] + frame + payload)
        p = self.problem(run_reader("--json", self.dir)[1], "snapshot.tks")
        self.assertEqual((p["offset"], p["class"]), (293, "damage"))
        self.assertIn("left over", p["reason"])

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
        Path(path8).write_bytes(header(8))
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
            bob = c.issue("bob", "pair")
            carol = c.issue("carol", idempotency_key="login-1")
            again = c.issue("carol", idempotency_key="login-1")
            assert again.session_id == carol.session_id, "idempotent issue not repeated"
            slid = c.verify(alice.session_token, fingerprint=fp)
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
        # A crash, then a restart: journal 2 (empty) stays, journal 3 begins.
        daemon.kill()
        daemon = Daemon(cls.tokend, cls.state_dir, cls.log_path)
        try:
            with Client(daemon.socket_path, timeout=10.0) as c:
                dave = c.issue("dave", ttl=60)
                erin = c.issue("erin", "pair", idempotency_key="login-2")
                frank1 = c.issue("frank")
                frank2 = c.issue("frank", "pair")
                cls.issued += [dave.session_id, erin.session_id, frank1.session_id,
                               frank2.session_id]
                cls.secrets["erin"] = erin
                assert c.verify(dave.session_token).renewed
                erin2 = c.refresh(erin.refresh_token)
                cls.secrets["erin2"] = erin2
                spent_at = int(time.time())
                assert c.refresh(erin.refresh_token).refresh_token == erin2.refresh_token
                c.revoke(alice.session_token)                               # by token
                c.revoke(session_id=carol.session_id)                       # by session id
                c.revoke(subject="frank")                                   # by subject: 2
                # Reuse detection: the spent refresh token after the dedup window.
                deadline = spent_at + DEDUP_WINDOW + 0.05
                while time.time() < deadline:
                    time.sleep(min(0.1, max(0.0, deadline - time.time())))
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
            self.assertEqual(f["header"]["version"], 1)
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
                                                 "revoke": 5})
        # The idempotent issue's put_login carries its dedup entry; the others none.
        with_dedup = [r for r in j3["records"] if r["type"] == 1 and r["dedup"] is not None]
        self.assertEqual(len(with_dedup), 1)
        self.assertEqual(with_dedup[0]["login"]["subject"], "erin")
        self.assertTrue(with_dedup[0]["dedup"]["request_digest"])
        order = doc["results"][0]["journal_order"]
        self.assertEqual((order["journals_read"], order["missing"], order["next_journal"]),
                         ([2, 3], [], 4))

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


if __name__ == "__main__":
    unittest.main()
