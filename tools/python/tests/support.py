"""Helpers of the tests: the real tokend and redis-server on temporary Unix sockets."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[3]
TOOLS_PYTHON = Path(__file__).resolve().parents[1]
DEFAULT_BIN = REPO / ".build" / "debug" / "tokend"
MAX_FRAME_SIZE = 32768  # not the default, so that a test can see hello report it


def token_claims(token: str) -> dict[str, Any]:
    """A JWT's payload, decoded (base64url, then JSON) without checking anything."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert isinstance(claims, dict)
    return claims


def sleep_until(unix_time: float) -> None:
    """Sleep until the wall clock (the daemon's clock too) reads ``unix_time``."""
    delay = unix_time - time.time()
    if delay > 0:
        time.sleep(delay)


def tokend_binary() -> Path:
    configured = os.environ.get("TOKEND_BIN")
    binary = Path(configured) if configured else DEFAULT_BIN
    if not binary.exists():
        if configured:
            raise FileNotFoundError(f"TOKEND_BIN={configured} does not exist")
        raise unittest.SkipTest(f"no tokend binary at {DEFAULT_BIN}; set TOKEND_BIN")
    return binary


def wait_for_socket(path: str, process: subprocess.Popen[bytes], what: str,
                    log: Callable[[], str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log()}")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            return
        except OSError:
            time.sleep(0.02)
        finally:
            probe.close()
    raise RuntimeError(f"{what} did not open {path} in time:\n{log()}")


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


class Daemon:
    """A tokend process on a temporary state directory and socket, with ``--dedup-window
    1s`` unless ``dedup_window`` says otherwise (the daemon refuses an option given twice)."""

    def __init__(self, extra_args: list[str], *, directory: str | None = None,
                 dedup_window: str = "1s") -> None:
        self.own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="tokend-py-", dir="/tmp")
        self.socket_path = os.path.join(self.dir, "tokend.sock")
        self.log_path = os.path.join(self.dir, "tokend.log")
        args = [str(tokend_binary()), "--state-dir", os.path.join(self.dir, "state"),
                "--socket", self.socket_path, "--dedup-window", dedup_window,
                "--max-frame-size", str(MAX_FRAME_SIZE), "--log-level", "notice", *extra_args]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT)
        try:
            wait_for_socket(self.socket_path, self.process, "tokend", self.log)
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        _kill(self.process)
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A redis-server on a Unix socket only (no TCP port, no persistence)."""

    def __init__(self, directory: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise unittest.SkipTest("redis-server is not installed (apt-get install redis-server)")
        self.socket_path = os.path.join(directory, "redis.sock")
        self.log_path = os.path.join(directory, "redis.log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [binary, "--port", "0", "--unixsocket", self.socket_path, "--unixsocketperm",
                 "700", "--save", "", "--appendonly", "no", "--dir", directory],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_socket(self.socket_path, self.process, "redis-server", self.log)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"redis+unix://{self.socket_path}"

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        _kill(self.process)


class SharedStore:
    """redis-server and a tokend on it (``--store redis+unix://...``), in one temporary
    directory; :meth:`redis_down` kills Redis so that tokend answers ``store_unavailable``."""

    def __init__(self) -> None:
        tokend_binary()
        self.dir = tempfile.mkdtemp(prefix="tokend-py-redis-", dir="/tmp")
        self.redis: RedisServer | None = None
        self.daemon: Daemon | None = None
        try:
            self.redis = RedisServer(self.dir)
            self.daemon = Daemon(["--store", self.redis.url, "--init-keys",
                                  "--store-timeout", "300ms"], directory=self.dir)
        except BaseException:
            self.stop()
            raise

    @property
    def socket_path(self) -> str:
        assert self.daemon is not None
        return self.daemon.socket_path

    def redis_down(self) -> None:
        assert self.redis is not None
        self.redis.stop()

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
        if self.redis is not None:
            self.redis.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_wsgi(app: Any, environ: dict[str, str]) -> tuple[str, dict[str, str], str]:
    """Call a WSGI app directly: its status line, headers and body."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/", **environ}, start_response))
    return str(seen["status"]), seen["headers"], body.decode()


async def run_asgi(app: Any, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    """Call an ASGI app directly with one GET request: its status, headers and body."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "path": "/", "raw_path": b"/", "query_string": b"",
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                         for k, v in headers.items()]}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
            body.decode())
