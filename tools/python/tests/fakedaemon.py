"""A scripted stand-in for tokend on a temporary Unix socket, for the cases the real daemon
does not produce on demand: replies out of order, malformed frames, a close mid-pipeline,
invalidation frames at chosen moments."""

from __future__ import annotations

import os
import socket
import struct
import tempfile
import threading
from dataclasses import dataclass
from typing import Callable, Mapping

from tokend_client.protocol import (
    Fields,
    Opcode,
    Status,
    Tag,
    encode_bool,
    encode_response,
    encode_u8,
    encode_u64,
)


@dataclass
class ReceivedRequest:
    version: int
    opcode: int
    request_id: int
    fields: Fields


class FakeConnection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.send_lock = threading.Lock()  # replies may be sent from timer threads

    def _read_exactly(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data
        chunk, self.buffer = self.buffer[:size], self.buffer[size:]
        return chunk

    def read_request(self) -> ReceivedRequest | None:
        prefix = self._read_exactly(4)
        if prefix is None:
            return None
        (length,) = struct.unpack(">I", prefix)
        body = self._read_exactly(length)
        if body is None:
            return None
        version, opcode, request_id = struct.unpack_from(">BBI", body)
        return ReceivedRequest(version, opcode, request_id, Fields.parse(body[6:]))

    def read_requests(self, count: int) -> list[ReceivedRequest]:
        result = []
        for _ in range(count):
            request = self.read_request()
            assert request is not None, "client closed early"
            result.append(request)
        return result

    def send(self, data: bytes) -> None:
        with self.send_lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass  # the client went away meanwhile

    def send_later(self, delay: float, data: bytes) -> threading.Timer:
        """Send ``data`` after ``delay`` seconds, from a timer thread."""
        timer = threading.Timer(delay, self.send, (data,))
        timer.daemon = True
        timer.start()
        return timer

    def answer_hello(self, max_frame_size: int = 65536, protocol_version: int = 1,
                     settings: Mapping[int, int] | None = None) -> None:
        """Answer the client's hello; ``settings``: extra u64 fields by tag (59-66)."""
        request = self.read_request()
        assert request is not None and request.opcode == Opcode.HELLO
        extra = [(tag, encode_u64(value)) for tag, value in (settings or {}).items()]
        self.send(encode_response(Opcode.HELLO, request.request_id, 0, [
            (Tag.PROTOCOL_VERSION, encode_u8(protocol_version)),
            (Tag.SERVER_NAME, b"fake 0"), (Tag.MAX_FRAME_SIZE, encode_u64(max_frame_size)),
            *extra]))


    def answer_track(self, status: int = Status.OK) -> None:
        """Answer the client's track (12.16) with ``status`` (a refusal carries a message)."""
        request = self.read_request()
        assert request is not None and request.opcode == Opcode.TRACK, request
        fields = [] if status == Status.OK else [(Tag.MESSAGE, b"unknown operation 0x08")]
        self.send(encode_response(Opcode.TRACK, request.request_id, status, fields))

    def invalidate(self, *, session_id: str | None = None, subject: str | bytes | None = None,
                   flush: bool | None = None,
                   extra: tuple[tuple[int, bytes], ...] = ()) -> None:
        """Send an invalidation frame (12.17); it is in the client's socket when this returns."""
        self.send(invalidation(session_id=session_id, subject=subject, flush=flush, extra=extra))


def invalidation(*, session_id: str | None = None, subject: str | bytes | None = None,
                 flush: bool | None = None, extra: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """An invalidation frame: opcode 0x09, request id 0, status ok, the fields given."""
    fields: list[tuple[int, bytes]] = []
    if session_id is not None:
        fields.append((Tag.SESSION_ID, session_id.encode()))
    if subject is not None:
        fields.append((Tag.SUBJECT, subject.encode() if isinstance(subject, str) else subject))
    if flush is not None:
        fields.append((Tag.FLUSH, encode_bool(flush)))
    fields.extend(extra)
    return encode_response(Opcode.INVALIDATE, 0, Status.OK, fields)


Script = Callable[[FakeConnection], None]


class FakeDaemon:
    """Serves each accepted connection with the next script of ``scripts``, in a thread."""

    def __init__(self, *scripts: Script) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="tokend-fake-")
        self.path = os.path.join(self.dir.name, "fake.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.scripts = list(scripts)
        self.errors: list[BaseException] = []
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for script in self.scripts:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with sock:
                try:
                    script(FakeConnection(sock))
                except BaseException as exc:  # reported by close()
                    self.errors.append(exc)

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
        except OSError:
            pass
        self.listener.close()
        self.thread.join(timeout=10)
        self.dir.cleanup()
        if self.errors:
            raise self.errors[0]
