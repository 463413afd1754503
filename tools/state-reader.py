#!/usr/bin/env python3
"""Read a tokend state directory (snapshot and journals) and check it, from docs/state-format.md.

Written from docs/state-format.md alone, without the Swift code that writes the files, so that
it doubles as a check that the document is complete. Standard library only, Python 3.11+.

    tools/state-reader.py [--json] [--records] [--newest] PATH...

PATH is a state directory (every snapshot and journal in it is read, in the order a start
reads them, and the journal numbering is checked) or single files. A journal is exactly the
name tokend writes, `journal-<16 lower-case hex digits>.tkj` numbering below 2^62 (section 1),
so one number has exactly one name; any other name (`journal-7.tkj`, upper-case digits, 17
digits) is not a journal and is left alone. A file's kind comes from its name
(`snapshot.tks`, `snapshot.tks.tmp`, a journal name, a `.broken` copy of either) or, failing
that, from its magic. The torn-tail rules of section 9 apply to the newest journal of a
directory only; a single journal file is taken as the newest when it has the highest number
among the journals of its own directory, or always with --newest.

Each frame is checked in the order of section 4 (a zero-filled tail second, right after the
end of the file). Format versions 1 and 2 are read (section 12), each file's records in the
layout of the version in its own header (section 12.1): a version 1 login reads as generation 0,
unused; a version 1 dedup entry's expiry in seconds as a window end and expiry in milliseconds
(saturated), generation 0; a version 1 rotate as generation 0; a mark_used record (type 6) in a
version 1 file is damage. A version above 2 is damage.

A directory's `tokend.lock` is the daemon's lock, not a state file: it is tested with a shared
non-blocking flock (never the exclusive lock, never written), and a daemon holding it is
reported as a note, with the pid the file holds.

Problems (exit status 1), each with a class: "damage" and "torn_tail" in a file (section 9);
"damage" for journal 0 among the journals read (from the snapshot's sequence on; sections 1
and 9); "gap" for missing journal numbers (section 9 step 4); "mode" for a snapshot or journal
that group or others may access (any of the mode bits 0077) and for a state directory that
grants more than 0750, which tokend refuses to start on (section 1).

Notes, not problems: a record type that tokend never writes in a snapshot (a journal type, or a
put_login with a dedup entry), applied as in a journal (section 6); a session with a refresh id;
a dedup entry whose window ends after its expiry (kept until the window ends, section 5);
a journal whose header sequence differs from its name (the daemon orders by name); a name
that looks like a journal's but is not one (left alone); a snapshot sequence from 2^62 on (no
journal name can carry it).

Exit status: 0 when every file is clean and the journals run unbroken, 1 when a problem was
found (damage, a torn tail, missing journals, a refused mode), 2 on a usage error.

Nothing secret-adjacent is printed in full: digests and sealed results appear only as their
presence and length. Session ids, refresh-token jtis, subjects, generations and times, which the
files hold in the clear (section 8), are printed with --records.

A directory's state is replayed as a start would (section 5) and summarised: logins, families
whose current pair is used, and dedup entries read, live (expires_at after now in milliseconds)
and within their dedup window. --now gives the time in Unix seconds (now in milliseconds is then
--now * 1000); by default the clock's, to the millisecond.
"""

from __future__ import annotations

import argparse
import base64
import errno
import fcntl
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 2   # the newest version read; 1 is read too (section 12.1)
HEADER_SIZE = 32
FRAME_SIZE = 9
MAX_LENGTH = 1048576
SNAPSHOT_MAGIC = b"TOKENDSN"
JOURNAL_MAGIC = b"TOKENDJL"
SNAPSHOT_NAME = "snapshot.tks"
SNAPSHOT_TMP_NAME = "snapshot.tks.tmp"
LOCK_NAME = "tokend.lock"
JOURNAL_RE = re.compile(r"journal-([0-9a-f]{16})\.tkj")   # lower case only: one name a number
JOURNAL_LIKE_RE = re.compile(r"journal-.*\.tkj")   # looks like one; a journal only if JOURNAL_RE
JOURNAL_LIMIT = 2 ** 62   # journal numbers are below this (section 1)
END_PAYLOAD_SIZE = 12     # the snapshot end record's payload, exactly (section 6)
FORGET_AFTER = 3600  # a login is forgotten an hour after its max_expires_at (section 9 step 5)
I64_MIN, I64_MAX = -2 ** 63, 2 ** 63 - 1

RECORD_TYPES = {
    1: "put_login",
    2: "set_expiry",
    3: "rotate",
    4: "revoke",
    5: "put_dedup",
    6: "mark_used",     # version 2 only (section 12.1)
    255: "snapshot_end",
}
SNAPSHOT_TYPES = {1, 5, 255}   # section 5, column "In"
LOGIN_KINDS = {1: "session", 2: "family"}


# ---------------------------------------------------------------------------------------------
# CRC-32C (section 2): reflected, polynomial 0x82F63B78, init and final XOR 0xFFFFFFFF.

def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of data; pass a previous result as crc to continue it over more bytes."""
    crc ^= 0xFFFFFFFF
    table = _CRC_TABLE
    for b in bytes(data):
        crc = (crc >> 8) ^ table[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# Payload parsing (sections 4 and 5)

class Malformed(Exception):
    """The payload does not parse exactly as its type describes."""


class Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise Malformed(f"{what} cut short at payload byte {self.pos}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "big")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "big")

    def u64(self, what: str) -> int:
        return int.from_bytes(self.take(8, what), "big")

    def i64(self, what: str) -> int:
        return int.from_bytes(self.take(8, what), "big", signed=True)

    def generation(self, what: str) -> int:
        value = self.i64(what)
        if not 0 <= value <= 0xFFFF_FFFF:
            raise Malformed(f"{what} {value} out of range (0 to 2^32 - 1)")
        return value

    def presence(self, what: str) -> bool:
        flag = self.u8(f"{what} presence")
        if flag not in (0, 1):
            raise Malformed(f"bad presence byte 0x{flag:02x} for {what}")
        return flag == 1

    def text(self, n: int, what: str) -> str:
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError as error:
            raise Malformed(f"{what} is not valid UTF-8 ({error.reason})") from None

    def end(self) -> None:
        if self.pos != len(self.data):
            raise Malformed(f"{len(self.data) - self.pos} bytes left over after the last value")


def b64id(raw: bytes) -> str:
    """A session id or jti as its 22 base64url characters (section 2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


RAW_DIGESTS = False  # set by programs importing this module to keep the bytes; never printed


def digest_view(raw: bytes | None) -> dict[str, Any] | None:
    """A digest, never printed: only that it is there and its size."""
    if raw is None:
        return None
    view: dict[str, Any] = {"present": True, "length": len(raw)}
    if RAW_DIGESTS:
        view["bytes"] = raw
    return view


def has_generations(version: int) -> bool:
    """Version 2 on: logins carry generation and used, rotations a generation, dedup entries a
    window end, an expiry in milliseconds and a generation (section 12.1). Version 0, which
    no tokend wrote, is laid out as version 1 (section 12)."""
    return version >= 2


def parse_login(c: Cursor, version: int = FORMAT_VERSION) -> dict[str, Any]:
    kind = c.u8("login kind")
    if kind not in LOGIN_KINDS:
        raise Malformed(f"unknown login kind {kind}")
    revoked = c.u8("revoked")
    if revoked not in (0, 1):
        raise Malformed(f"bad revoked byte 0x{revoked:02x}")
    login: dict[str, Any] = {
        "kind": LOGIN_KINDS[kind],
        "revoked": revoked == 1,
        "created_at": c.i64("created_at"),
        "ttl": c.i64("ttl"),
        "expires_at": c.i64("expires_at"),
        "max_expires_at": c.i64("max_expires_at"),
        "refresh_ttl": c.i64("refresh_ttl"),
    }
    fingerprint = c.take(16, "fingerprint digest") if c.presence("fingerprint digest") else None
    refresh = c.take(16, "refresh id") if c.presence("refresh id") else None
    generation, used = 0, 0          # version 1: generation 0, unused
    if has_generations(version):
        generation = c.generation("generation")
        used = c.u8("used")
        if used not in (0, 1):
            raise Malformed(f"bad used byte 0x{used:02x}")
    subject_length = c.u16("subject length")
    login["fingerprint"] = digest_view(fingerprint)
    login["refresh_id"] = None if refresh is None else b64id(refresh)
    login["generation"] = generation
    login["used"] = used == 1
    login["subject"] = c.text(subject_length, "subject")
    return login


def seconds_to_milliseconds(seconds: int) -> int:
    """A version 1 time in seconds as milliseconds, saturated to the i64 range (section 12.1)."""
    return max(I64_MIN, min(I64_MAX, seconds * 1000))


def parse_dedup(c: Cursor, version: int = FORMAT_VERSION) -> dict[str, Any]:
    key = c.take(16, "dedup key")
    if has_generations(version):
        window_ends_at = c.i64("dedup window_ends_at")
        expires_at = c.i64("dedup expires_at")
        generation = c.generation("dedup generation")
    else:
        # Version 1: one expiry in seconds, the end of the window and of the entry alike.
        window_ends_at = expires_at = seconds_to_milliseconds(c.i64("dedup expires_at"))
        generation = 0
    fingerprint = c.take(16, "dedup fingerprint digest") if c.presence("dedup fingerprint") else None
    request = c.take(16, "request digest") if c.presence("request digest") else None
    sealed_length = c.u32("sealed length")
    if sealed_length > MAX_LENGTH:
        raise Malformed(f"sealed length {sealed_length} is above {MAX_LENGTH}")
    sealed = c.take(sealed_length, "sealed result")
    out: dict[str, Any] = {
        "key": digest_view(key),
        "window_ends_at": window_ends_at,      # Unix milliseconds
        "expires_at": expires_at,              # Unix milliseconds
        "generation": generation,
        "fingerprint": digest_view(fingerprint),
        "request_digest": digest_view(request),
        "sealed_length": sealed_length,
    }
    if RAW_DIGESTS:
        out["sealed"] = sealed
    return out


def parse_payload(rtype: int, payload: bytes, version: int = FORMAT_VERSION) -> dict[str, Any]:
    """A payload in the layout of format `version` (the file header's, section 12.1)."""
    c = Cursor(payload)
    out: dict[str, Any]
    if rtype == 1:
        out = {"session_id": b64id(c.take(16, "session id")), "login": parse_login(c, version)}
        out["dedup"] = parse_dedup(c, version) if c.presence("dedup entry") else None
    elif rtype == 2:
        out = {"session_id": b64id(c.take(16, "session id")), "expires_at": c.i64("expires_at")}
    elif rtype == 3:
        out = {"session_id": b64id(c.take(16, "session id")),
               "refresh_id": b64id(c.take(16, "jti")),
               "expires_at": c.i64("expires_at")}
        out["generation"] = c.generation("generation") if has_generations(version) else 0
        out["dedup"] = parse_dedup(c, version)
    elif rtype == 4:
        out = {"session_id": b64id(c.take(16, "session id"))}
    elif rtype == 5:
        out = {"dedup": parse_dedup(c, version)}
    elif rtype == 6:
        if not has_generations(version):
            raise Malformed(f"mark_used is not a record of format version {version}")
        out = {"session_id": b64id(c.take(16, "session id")), "generation": c.generation("generation")}
    elif rtype == 255:
        out = {"count": c.u64("count"), "file_crc": c.u32("file crc")}
    else:  # pragma: no cover - filtered before
        raise Malformed(f"unknown record type {rtype}")
    c.end()
    return out


# ---------------------------------------------------------------------------------------------
# Files

@dataclass
class Problem:
    offset: int
    reason: str
    cls: str = "damage"  # "damage" or "torn_tail" (section 9)

    def as_dict(self) -> dict[str, Any]:
        return {"offset": self.offset, "class": self.cls, "reason": self.reason}


@dataclass
class FileReport:
    path: str
    name: str
    kind: str                      # "snapshot" or "journal"
    size: int
    number: int | None = None      # a journal's number, from its name
    newest: bool = False           # the newest journal: the torn-tail rules apply
    role: str = "read"             # read / covered / torn_header / single
    mode: int = 0o600              # permission bits
    header: dict[str, Any] | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    problem: Problem | None = None
    valid_end: int = 0             # the end of the valid prefix (the problem's offset if any)
    snapshot_end: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for record in self.records:
            out[record["type_name"]] = out.get(record["type_name"], 0) + 1
        return out

    def as_dict(self, with_records: bool) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name, "path": self.path, "kind": self.kind, "role": self.role,
            "size": self.size, "mode": f"{self.mode:04o}", "number": self.number,
            "newest": self.newest,
            "header": self.header,
            "record_count": len(self.records),
            "records_by_type": self.counts(),
            "valid_end": self.valid_end,
            "snapshot_end": self.snapshot_end,
            "problem": None if self.problem is None else self.problem.as_dict(),
            "notes": self.notes,
        }
        if with_records:
            d["records"] = self.records
        return d


def read_header(data: bytes, kind: str) -> tuple[dict[str, Any] | None, str | None]:
    """The header fields, or the first problem in the order of section 3."""
    if len(data) < HEADER_SIZE:
        return None, f"file shorter than the {HEADER_SIZE}-byte header ({len(data)} bytes)"
    magic = data[0:8]
    expected = SNAPSHOT_MAGIC if kind == "snapshot" else JOURNAL_MAGIC
    header: dict[str, Any] = {
        "magic": magic.decode("ascii", errors="replace"),
        "version": int.from_bytes(data[8:10], "big"),
        "flags": int.from_bytes(data[10:12], "big"),
        "created_at": int.from_bytes(data[12:20], "big", signed=True),
        "sequence": int.from_bytes(data[20:28], "big"),
        "crc": int.from_bytes(data[28:32], "big"),
    }
    header["crc_valid"] = crc32c(data[0:28]) == header["crc"]
    if magic != expected:
        return header, f"bad magic {magic!r} (a {kind} has {expected.decode()})"
    if not header["crc_valid"]:
        return header, (f"header checksum mismatch (stored 0x{header['crc']:08x}, "
                        f"computed 0x{crc32c(data[0:28]):08x})")
    if header["version"] == 0:
        return header, "format version 0 does not exist (damage?)"
    if header["version"] > FORMAT_VERSION:
        return header, (f"format version {header['version']} is newer than this reader "
                        f"({FORMAT_VERSION})")
    if header["flags"] != 0:
        return header, f"non-zero flags 0x{header['flags']:04x}"
    return header, None


def all_zero(data: bytes, start: int) -> bool:
    return data.count(0, start) == len(data) - start


def read_file(path: str, kind: str, newest: bool, role: str, number: int | None) -> FileReport:
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode & 0o7777
        data = f.read()
    report = FileReport(path=path, name=os.path.basename(path), kind=kind, size=len(data),
                        number=number, newest=newest, role=role, mode=mode)
    header, header_problem = read_header(data, kind)
    report.header = header
    if header_problem is not None:
        # Section 9: a header at fault is a torn tail in the newest journal when the file is
        # shorter than 32 bytes or all its bytes are zero; anything else at offset 0 is damage.
        torn = newest and (len(data) < HEADER_SIZE or all_zero(data, 0))
        if newest and len(data) >= HEADER_SIZE and all_zero(data, 0):
            header_problem = "header all zero bytes"
        report.problem = Problem(0, header_problem, "torn_tail" if torn else "damage")
        report.valid_end = 0
        return report
    if kind == "journal" and number is not None and header is not None \
            and header["sequence"] != number:
        report.notes.append(f"header sequence {header['sequence']} differs from the number in "
                            f"the name ({number}); the daemon orders by the name")
    if kind == "snapshot" and header is not None and header["sequence"] >= JOURNAL_LIMIT:
        report.notes.append(f"sequence {header['sequence']} is not below 2^62: no journal name "
                            "can carry it (section 1)")

    assert header is not None              # a header without a problem was read
    version = header["version"]            # the records' layout (section 12.1)
    offset = HEADER_SIZE
    end_seen = False

    def fail(at: int, reason: str, torn: bool = False) -> FileReport:
        report.problem = Problem(at, reason, "torn_tail" if (torn and newest) else "damage")
        report.valid_end = at
        return report

    # Each frame, in the order of section 4: the first check that fails decides.
    while offset < len(data):                            # nothing left: the file ends cleanly
        if end_seen:
            return fail(offset, f"{len(data) - offset} bytes after the snapshot end record")
        remaining = len(data) - offset
        if all_zero(data, offset):
            # Second in section 4's order (section 9's last torn case): space allocated but
            # never written, before any check of a frame made of those zeros.
            return fail(offset, f"only zero bytes from here to the end ({remaining} bytes): "
                                "space allocated but never written", torn=True)
        if remaining < FRAME_SIZE:
            return fail(offset, f"fewer than {FRAME_SIZE} bytes left for a record frame "
                                f"({remaining})", torn=True)
        length = int.from_bytes(data[offset:offset + 4], "big")
        rtype = data[offset + 4]
        stored_crc = int.from_bytes(data[offset + 5:offset + 9], "big")
        if length > MAX_LENGTH:
            return fail(offset, f"record length {length} is above {MAX_LENGTH}")
        record_end = offset + FRAME_SIZE + length
        if record_end > len(data):
            return fail(offset, f"record length {length} runs past the end of the file "
                                f"({record_end - len(data)} bytes missing)", torn=True)
        payload = data[offset + FRAME_SIZE:record_end]
        computed = crc32c(payload, crc32c(bytes([rtype])))
        if computed != stored_crc:
            return fail(offset, f"record checksum mismatch (stored 0x{stored_crc:08x}, "
                                f"computed 0x{computed:08x})", torn=record_end == len(data))
        if rtype not in RECORD_TYPES:
            return fail(offset, f"unknown record type {rtype}")
        name = RECORD_TYPES[rtype]
        if rtype == 255 and kind == "journal":
            return fail(offset, "snapshot end record (type 255) in a journal")
        if rtype == 255 and length != END_PAYLOAD_SIZE:
            return fail(offset, f"snapshot end record payload of {length} bytes, not "
                                f"{END_PAYLOAD_SIZE}")
        try:
            fields = parse_payload(rtype, payload, version)
        except Malformed as error:
            return fail(offset, f"malformed {name} payload: {error}")
        record = {"offset": offset, "type": rtype, "type_name": name, "length": length,
                  "crc": stored_crc, **fields}
        if kind == "snapshot" and rtype not in SNAPSHOT_TYPES:
            # Section 6: tokend writes none, and applies one as in a journal.
            report.notes.append(f"{name} record at {offset} in a snapshot: tokend writes none; "
                                "applied as in a journal (section 6)")
        if rtype == 255:
            count_before = len(report.records)
            file_crc = crc32c(data[0:offset])
            report.snapshot_end = {"offset": offset, "count": fields["count"],
                                   "file_crc": fields["file_crc"],
                                   "file_crc_valid": file_crc == fields["file_crc"]}
            if fields["count"] != count_before:
                return fail(offset, f"snapshot end count {fields['count']} but "
                                    f"{count_before} records before it")
            if file_crc != fields["file_crc"]:
                return fail(offset, f"snapshot file crc mismatch (stored "
                                    f"0x{fields['file_crc']:08x}, computed 0x{file_crc:08x})")
            end_seen = True
        elif rtype == 1:
            if kind == "snapshot" and fields["dedup"] is not None:
                report.notes.append(f"put_login at {offset} carries a dedup entry in a snapshot: "
                                    "tokend writes none; applied as in a journal (section 6)")
            login = fields["login"]
            if login["kind"] == "session" and login["refresh_id"] is not None:
                report.notes.append(f"session at {offset} has a refresh id")
        dedup = fields.get("dedup")
        if dedup is not None and dedup["window_ends_at"] > dedup["expires_at"]:
            report.notes.append(f"dedup entry of the {name} at {offset} has its window end after "
                                "its expiry: kept until the window ends, as tokend does "
                                "(section 5)")
        report.records.append(record)
        offset = record_end

    if kind == "snapshot" and not end_seen:
        # Section 9: the problem is at the file's size, where the end record should start.
        return fail(len(data), "snapshot without an end record")
    report.valid_end = offset
    return report


# ---------------------------------------------------------------------------------------------
# Directories (sections 1 and 9)

def journal_number(name: str) -> int | None:
    """The number of a journal name (section 1), or None for any other name."""
    m = JOURNAL_RE.fullmatch(name)
    if m is None:
        return None
    number = int(m.group(1), 16)
    return number if number < JOURNAL_LIMIT else None


def kind_of(path: str) -> str | None:
    name = os.path.basename(path)
    if name.endswith(".broken"):
        name = name[:-len(".broken")]
    if name in (SNAPSHOT_NAME, SNAPSHOT_TMP_NAME):
        return "snapshot"
    if journal_number(name) is not None:
        return "journal"
    try:
        with open(path, "rb") as f:
            magic = f.read(8)
    except OSError:
        return None
    return {SNAPSHOT_MAGIC: "snapshot", JOURNAL_MAGIC: "journal"}.get(magic)


def journals_in(directory: str) -> list[tuple[int, str]]:
    out = []
    for name in os.listdir(directory):
        number = journal_number(name)
        if number is not None and os.path.isfile(os.path.join(directory, name)):
            out.append((number, name))
    out.sort()
    return out


def lock_status(directory: str) -> dict[str, Any]:
    """`tokend.lock` (section 1): its pid, and whether a daemon holds it.

    Tested as `tokenctl store check` does: opened read-only (never created), a shared
    non-blocking flock, released at once; never the exclusive lock, never written.
    """
    path = os.path.join(directory, LOCK_NAME)
    status: dict[str, Any] = {"present": False, "pid": None, "held": None}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return status
    except OSError as error:
        status.update(present=True, error=error.strerror)
        return status
    try:
        status["present"] = True
        content = os.read(fd, 64)
        m = re.fullmatch(rb"([0-9]{1,19})\n", content)
        status["pid"] = int(m.group(1)) if m else None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            status["held"] = True
        else:
            status["held"] = False
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return status


def mode_problem(report: FileReport) -> dict[str, Any] | None:
    """Section 1: tokend refuses a snapshot or journal with any of the mode bits 0077."""
    if report.mode & 0o077 == 0:
        return None
    return {"file": report.name, "offset": None, "class": "mode",
            "reason": f"mode {report.mode & 0o777:04o}: group or others may access it; tokend "
                      f"refuses to start on it (chmod 600 fixes it)"}


def apply(state: dict[str, Any], record: dict[str, Any]) -> None:
    """Apply a record as section 5 says (expiry is judged later, by the caller's clock)."""
    logins: dict[str, dict[str, Any]] = state["logins"]
    t = record["type"]
    if t == 1:
        logins[record["session_id"]] = dict(record["login"])
        if record["dedup"] is not None:
            state["dedup"].append(record["dedup"])
    elif t == 2:
        if record["session_id"] in logins:
            logins[record["session_id"]]["expires_at"] = record["expires_at"]
    elif t == 3:
        # The generation it carries, absolute, and the new pair unused; the dedup entry even
        # for a login not held. The family's previous rotation entry is kept for its window
        # only from now on (section 5, as tokend does).
        if record["session_id"] in logins:
            login = logins[record["session_id"]]
            login["refresh_id"] = record["refresh_id"]
            login["expires_at"] = record["expires_at"]
            login["generation"] = record["generation"]
            login["used"] = False
            keep_only_for_the_window(state, record["session_id"])
            entry = dict(record["dedup"])  # the state's copy: the record stays as written
            state.setdefault("latest", {})[record["session_id"]] = entry
            state["dedup"].append(entry)
        else:
            state["dedup"].append(record["dedup"])
    elif t == 4:
        if record["session_id"] in logins:
            logins[record["session_id"]]["revoked"] = True
    elif t == 5:
        state["dedup"].append(record["dedup"])
    elif t == 6:
        # Only while the login is still at that generation: else it rotated since.
        held = logins.get(record["session_id"])
        if held is not None and held["kind"] == "family" and held["generation"] == record["generation"]:
            held["used"] = True
            keep_only_for_the_window(state, record["session_id"])


def keep_only_for_the_window(state: dict[str, Any], session_id: str) -> None:
    """The family's latest rotation entry (from this replay) is kept for its window only."""
    latest: dict[str, Any] | None = state.get("latest", {}).get(session_id)
    if latest is not None and latest["expires_at"] > latest["window_ends_at"]:
        latest["expires_at"] = latest["window_ends_at"]


def kept_until(dedup: dict[str, Any]) -> int:
    """Until when (Unix milliseconds, exclusive) tokend keeps a dedup entry: its expiry, or its
    window's end when that is later (section 5)."""
    return int(max(dedup["expires_at"], dedup["window_ends_at"]))


def read_directory(directory: str, now: int, now_ms: int | None = None) -> dict[str, Any]:
    """`now` in Unix seconds judges logins; `now_ms` (default now * 1000) dedup entries."""
    if now_ms is None:
        now_ms = now * 1000
    names = sorted(os.listdir(directory))
    files: list[FileReport] = []
    notes: list[str] = []
    others: list[str] = []
    problems: list[dict[str, Any]] = []

    # Section 1: tokend refuses a state directory that grants more than 0750.
    dir_mode = os.stat(directory).st_mode & 0o777
    if dir_mode & ~0o750:
        problems.append({"file": None, "offset": None, "class": "mode",
                         "reason": f"the state directory's mode {dir_mode:04o} grants more than "
                                   "0750; tokend refuses to start on it (chmod 700 fixes it)"})
    lock = lock_status(directory)
    if lock["held"]:
        pid = lock["pid"] if lock["pid"] is not None else "unknown"
        notes.append(f"{LOCK_NAME}: a daemon (pid {pid}) holds this directory; its newest "
                     "journal may be caught mid-write")
    elif lock["present"] and lock["pid"] is None and "error" not in lock:
        notes.append(f"{LOCK_NAME} does not hold a pid and a newline (section 1)")

    snapshot_path = os.path.join(directory, SNAPSHOT_NAME)
    sequence = 0
    sequence_known = False
    have_snapshot = os.path.isfile(snapshot_path)
    snapshot: FileReport | None = None
    if have_snapshot:
        snapshot = read_file(snapshot_path, "snapshot", newest=False, role="read", number=None)
        files.append(snapshot)
        h = snapshot.header
        if h is not None and h["crc_valid"] and h["magic"] == SNAPSHOT_MAGIC.decode():
            sequence = h["sequence"]
            sequence_known = True
        else:
            notes.append("the snapshot's header is unreadable: every journal would be replayed")

    # Section 9 step 3: journals below S are covered (deleted unread), the others are read in
    # order. The newest journal is the highest number present; if its header never reached the
    # disk (a torn tail at offset 0) a start deletes it, and it is left out of step 4 and 6.
    journals = journals_in(directory)
    highest = journals[-1][0] if journals else None
    read_numbers: list[int] = []
    covered: list[int] = []
    torn_header: list[int] = []
    for number, name in journals:
        path = os.path.join(directory, name)
        if number < sequence:
            report = read_file(path, "journal", newest=False, role="covered", number=number)
            report.notes.append(f"covered by the snapshot (sequence {sequence}): a start "
                                "deletes it unread")
            covered.append(number)
        else:
            newest = number == highest
            report = read_file(path, "journal", newest=newest, role="read", number=number)
            if (report.problem is not None and report.problem.cls == "torn_tail"
                    and report.problem.offset == 0):
                report.role = "torn_header"
                report.notes.append("its header never reached the disk: a start deletes it, "
                                    "leaves it out of the numbering and reuses its number")
                torn_header.append(number)
            else:
                read_numbers.append(number)
        files.append(report)

    for name in names:
        path = os.path.join(directory, name)
        if name == SNAPSHOT_TMP_NAME:
            notes.append(f"{name}: a leftover temporary snapshot; a start deletes it unread")
        elif name.endswith(".broken"):
            notes.append(f"{name}: set aside by --repair; never read by the daemon")
        elif name in (SNAPSHOT_NAME, LOCK_NAME, "keys", "tokend.sock"):
            pass
        elif journal_number(name) is None:
            if JOURNAL_LIKE_RE.fullmatch(name):
                notes.append(f"{name}: not a journal name (16 lower-case hexadecimal digits "
                             "below 2^62, section 1); left alone")
            others.append(name)

    for report in files:
        if report.problem is not None and report.role in ("read", "torn_header"):
            problems.append({"file": report.name, **report.problem.as_dict()})
    for report in files:
        problem = mode_problem(report)
        if problem is not None:
            problems.append(problem)

    # Section 9 step 4: the journals read run from S (1 without a snapshot) to the highest one
    # read, with no number missing and no journal 0. (No number can be named twice: a journal's
    # name is exactly the lower-case one tokend writes, section 1.)
    if 0 in read_numbers:
        problems.append({"file": f"journal-{0:016x}.tkj", "offset": None, "class": "damage",
                         "reason": "journal 0: tokend numbers journals from 1"})
    missing: list[int] = []
    if read_numbers:
        # With a snapshot whose header cannot be read, S is unknown (section 9 says only that
        # every journal is then replayed): the numbering is checked from the lowest one read.
        if not have_snapshot:
            start = 1
        elif sequence_known:
            start = sequence
        else:
            start = min(read_numbers)
        present = set(read_numbers)
        top = max(read_numbers)
        if top - start > 1_000_000:
            missing_count = top - start + 1 - len(present)
            notes.append(f"{missing_count} journal numbers missing between {start} and {top}")
            missing = [n for n in range(start, start + 1000) if n not in present]
        else:
            missing = [n for n in range(start, top + 1) if n not in present]
    if missing:
        problems.append({"file": None, "offset": None, "class": "gap",
                         "reason": "missing journals: " + ", ".join(str(n) for n in missing)})
    # Section 9 step 6: H counts only the journals read (not covered ones, not a newest one
    # deleted for its torn header).
    next_journal = max(sequence, (max(read_numbers) if read_numbers else 0) + 1)
    if next_journal >= JOURNAL_LIMIT:
        notes.append(f"a start would open journal {next_journal}, which no journal name can "
                     "carry (section 1: below 2^62)")

    # Replay, as a start would (each file's valid prefix; expiry judged at `now`).
    state: dict[str, Any] = {"logins": {}, "dedup": []}
    if snapshot is not None:
        for record in snapshot.records:
            apply(state, record)
    for report in files:
        if report.kind == "journal" and report.role == "read":
            for record in report.records:
                apply(state, record)
    logins = state["logins"]
    # Section 5: an entry is live while now (milliseconds) is before its expiry.
    live_dedup = [d for d in state["dedup"] if kept_until(d) > now_ms]
    summary = {
        "logins": len(logins),
        "sessions": sum(1 for v in logins.values() if v["kind"] == "session"),
        "families": sum(1 for v in logins.values() if v["kind"] == "family"),
        "families_used": sum(1 for v in logins.values()
                             if v["kind"] == "family" and v["used"]),
        "highest_generation": max((v["generation"] for v in logins.values()
                                   if v["kind"] == "family"), default=None),
        "revoked": sum(1 for v in logins.values() if v["revoked"]),
        "forgettable": sum(1 for v in logins.values()
                           if v["max_expires_at"] + FORGET_AFTER <= now),
        "dedup_entries_read": len(state["dedup"]),
        "dedup_entries_live": len(live_dedup),
        "dedup_entries_in_window": sum(1 for d in live_dedup if d["window_ends_at"] > now_ms),
        "now": now,
        "now_ms": now_ms,
    }
    return {
        "directory": directory,
        "mode": f"{dir_mode:04o}",
        "lock": lock,
        "files": files,
        "journal_order": {
            "snapshot_sequence": sequence if have_snapshot else None,
            "journals_read": read_numbers,
            "journals_covered": covered,
            "journals_torn_header": torn_header,
            "missing": missing,
            "next_journal": next_journal,
        },
        "state": summary,
        "notes": notes,
        "other_files": others,
        "problems": problems,
    }


def read_single(path: str, force_newest: bool) -> dict[str, Any]:
    kind = kind_of(path)
    if kind is None:
        raise UsageError(f"{path}: not a snapshot or journal (by name or magic)")
    name = os.path.basename(path)
    base = name[:-len(".broken")] if name.endswith(".broken") else name
    number = journal_number(base)
    newest = False
    if kind == "journal":
        if force_newest:
            newest = True
        elif number is not None and not name.endswith(".broken"):
            journals = journals_in(os.path.dirname(os.path.abspath(path)))
            newest = bool(journals) and journals[-1][0] == number
    report = read_file(path, kind, newest=newest, role="single", number=number)
    problems = [] if report.problem is None else [{"file": report.name,
                                                   **report.problem.as_dict()}]
    if name == SNAPSHOT_NAME or journal_number(name) is not None:
        # A file a start would read (not a .broken copy, a temporary or another name).
        problem = mode_problem(report)
        if problem is not None:
            problems.append(problem)
    return {"directory": None, "files": [report], "journal_order": None, "state": None,
            "notes": [], "other_files": [], "problems": problems}


class UsageError(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Output

def hex32(value: int | None) -> str:
    return "-" if value is None else f"0x{value:08x}"


def text_report(result: dict[str, Any], with_records: bool) -> str:
    lines: list[str] = []
    if result["directory"] is not None:
        lines.append(f"state directory {result['directory']} (mode {result['mode']})")
        lock = result["lock"]
        if lock["present"]:
            held = {True: "held by a daemon", False: "not held", None: "not tested"}[lock["held"]]
            lines.append(f"{LOCK_NAME}: pid {lock['pid']}, {held}")
    for report in result["files"]:
        lines.append(f"{report.name}: {report.kind}, {report.size} bytes, mode "
                     f"{report.mode & 0o777:04o}, {report.role}"
                     + (", newest journal" if report.newest else ""))
        h = report.header
        if h is not None:
            lines.append(f"  header: magic {h['magic']!r} version {h['version']} flags "
                         f"{h['flags']} created_at {h['created_at']} sequence {h['sequence']} "
                         f"crc {hex32(h['crc'])} ({'valid' if h['crc_valid'] else 'INVALID'})")
        counts = report.counts()
        by_type = ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"
        lines.append(f"  records: {len(report.records)} ({by_type})")
        if report.snapshot_end is not None:
            e = report.snapshot_end
            lines.append(f"  end record at {e['offset']}: count {e['count']}, file crc "
                         f"{hex32(e['file_crc'])} ({'valid' if e['file_crc_valid'] else 'INVALID'})")
        if report.problem is None:
            lines.append("  problem: none")
        else:
            p = report.problem
            lines.append(f"  problem: {p.cls.replace('_', ' ')} at byte offset {p.offset}: "
                         f"{p.reason}")
        for note in report.notes:
            lines.append(f"  note: {note}")
        if with_records:
            for record in report.records:
                lines.append("  " + record_line(record))
    order = result["journal_order"]
    if order is not None:
        lines.append(f"journals: snapshot sequence {order['snapshot_sequence']}, read "
                     f"{order['journals_read'] or 'none'}, covered "
                     f"{order['journals_covered'] or 'none'}, torn header "
                     f"{order['journals_torn_header'] or 'none'}, missing "
                     f"{order['missing'] or 'none'}; a start opens journal "
                     f"{order['next_journal']}")
    if result["state"] is not None:
        s = result["state"]
        lines.append(f"state after replay: {s['logins']} logins ({s['sessions']} sessions, "
                     f"{s['families']} families of which {s['families_used']} with their "
                     f"current pair used, {s['revoked']} revoked, {s['forgettable']} "
                     f"to forget), {s['dedup_entries_live']} live dedup entries of "
                     f"{s['dedup_entries_read']} read ({s['dedup_entries_in_window']} within "
                     f"their window)")
    for note in result["notes"]:
        lines.append(f"note: {note}")
    if result["other_files"]:
        lines.append("ignored: " + ", ".join(result["other_files"]))
    if result["problems"]:
        for p in result["problems"]:
            where = p["file"] or "directory"
            at = "" if p["offset"] is None else f" at byte offset {p['offset']}"
            lines.append(f"problem: {where}: {p['class'].replace('_', ' ')}{at}: {p['reason']}")
        lines.append(f"{len(result['problems'])} problem(s)")
    else:
        lines.append("clean")
    return "\n".join(lines)


def record_line(record: dict[str, Any]) -> str:
    head = f"@{record['offset']} {record['type_name']} len {record['length']}"
    t = record["type"]
    if t == 1:
        login = record["login"]
        fp = "bound" if login["fingerprint"] else "unbound"
        dedup = f", dedup {dedup_text(record['dedup'])}" if record["dedup"] else ""
        return (f"{head} sid {record['session_id']} {login['kind']} subject "
                f"{login['subject']!r} revoked {login['revoked']} expires_at "
                f"{login['expires_at']} max {login['max_expires_at']} generation "
                f"{login['generation']} used {login['used']} {fp}{dedup}")
    if t == 2:
        return f"{head} sid {record['session_id']} expires_at {record['expires_at']}"
    if t == 3:
        return (f"{head} sid {record['session_id']} new jti {record['refresh_id']} "
                f"expires_at {record['expires_at']} generation {record['generation']}, dedup "
                f"{dedup_text(record['dedup'])}")
    if t == 4:
        return f"{head} sid {record['session_id']}"
    if t == 5:
        return f"{head} {dedup_text(record['dedup'])}"
    if t == 6:
        return f"{head} sid {record['session_id']} generation {record['generation']}"
    return f"{head} count {record['count']} file crc {hex32(record['file_crc'])}"


def dedup_text(d: dict[str, Any]) -> str:
    return (f"window_ends_at {d['window_ends_at']} ms expires_at {d['expires_at']} ms generation "
            f"{d['generation']} sealed {d['sealed_length']} B")


def json_report(results: list[dict[str, Any]], with_records: bool) -> str:
    out = []
    for result in results:
        r = dict(result)
        r["files"] = [f.as_dict(with_records) for f in result["files"]]
        out.append(r)
    problems = [p for r in results for p in r["problems"]]
    doc = {"format_version": FORMAT_VERSION, "clean": not problems, "results": out,
           "problems": problems}
    return json.dumps(doc, indent=2, sort_keys=False)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="state-reader.py",
        description="Read and check tokend state files (docs/state-format.md).")
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="a state directory, or snapshot/journal files")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--records", action="store_true",
                        help="also list every record (digests and sealed bytes as lengths)")
    parser.add_argument("--newest", action="store_true",
                        help="treat single journal files as the newest journal (torn-tail rules)")
    parser.add_argument("--now", type=int, default=None,
                        help="the Unix time in seconds against which expiry is judged (dedup "
                             "entries at --now * 1000 ms; default: now, to the millisecond)")
    args = parser.parse_args(argv)
    if args.now is None:
        now_ms = time.time_ns() // 1_000_000
        now = now_ms // 1000
    else:
        now, now_ms = args.now, args.now * 1000
    results = []
    try:
        for path in args.paths:
            if os.path.isdir(path):
                results.append(read_directory(path, now, now_ms))
            elif os.path.isfile(path):
                results.append(read_single(path, args.newest))
            else:
                raise UsageError(f"{path}: no such file or directory")
    except UsageError as error:
        print(f"state-reader.py: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"state-reader.py: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json_report(results, args.records))
    else:
        print("\n\n".join(text_report(r, args.records) for r in results))
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
