"""Processes for tools/nginx/e2e-test.py and tools/bench-nginx: a real tokend with its HTTP face,
and nginx (a non-daemon master on a temporary prefix) serving tools/nginx/tokend.conf itself,
its socket path, listen address and application address substituted.

Standard library only.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Sequence

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "tools" / "nginx" / "tokend.conf"

# What the shipped site names, and the test replaces: each must occur exactly once, so that an
# edit of tokend.conf that moves them fails loudly instead of testing something else.
SHIPPED_HTTP_SOCKET = "server unix:/run/tokend/http.sock;"
SHIPPED_LISTEN = "listen 80;"
SHIPPED_APP = "server 127.0.0.1:8080;"


def binary(env: str, default: Path) -> Path:
    configured = os.environ.get(env)
    path = Path(configured) if configured else default
    if not path.exists():
        raise FileNotFoundError(f"no binary at {path}" + ("" if configured else f"; set {env}"))
    return path


def nginx_binary() -> str | None:
    """$NGINX_BIN if set (None if it does not exist), else nginx on PATH or /usr/sbin/nginx."""
    configured = os.environ.get("NGINX_BIN")
    if configured:
        return configured if os.path.exists(configured) else None
    found = shutil.which("nginx")
    if found is None and os.path.exists("/usr/sbin/nginx"):
        found = "/usr/sbin/nginx"
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def render_site(http_socket: str, listen: str, app: str) -> str:
    """tools/nginx/tokend.conf with tokend's socket, the listen address and the application's
    address replaced."""
    text = SITE.read_text()
    for old, new in ((SHIPPED_HTTP_SOCKET, f"server unix:{http_socket};"),
                     (SHIPPED_LISTEN, f"listen {listen};"),
                     (SHIPPED_APP, f"server {app};")):
        count = text.count(old)
        if count != 1:
            raise RuntimeError(f"{SITE} has {count} times {old!r}, expected exactly once")
        text = text.replace(old, new)
    return text


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()[-limit:]
    except OSError:
        return ""


def _connectable(family: int, address: str | tuple[str, int]) -> bool:
    probe = socket.socket(family, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(address)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def wait_connectable(family: int, address: str | tuple[str, int], process: subprocess.Popen[bytes], what: str,
                     log: Callable[[], str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log()}")
        if _connectable(family, address):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not accept on {address} within {timeout:.0f} s:\n{log()}")


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                 timeout: float = 20.0) -> int:
    """Signal the process (and, if it leads its own process group, what is left of the group
    afterwards), wait, then kill."""
    if process.poll() is None:
        try:
            process.send_signal(sig)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    try:  # nginx's workers, should the master have gone without them
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return process.returncode


class Tokend:
    """tokend with its HTTP face on ``unix:DIR/http.sock``, state and sockets in ``directory``."""

    def __init__(self, tokend: Path, directory: str, extra_args: Sequence[str]) -> None:
        self.dir = directory
        self.socket_path = os.path.join(directory, "tokend.sock")
        self.http_socket = os.path.join(directory, "http.sock")
        self.log_path = os.path.join(directory, "tokend.log")
        args = [str(tokend), "--state-dir", os.path.join(directory, "state"),
                "--socket", self.socket_path, "--http-listen", f"unix:{self.http_socket}",
                "--log-level", "notice", *extra_args]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        try:
            for path in (self.socket_path, self.http_socket):
                wait_connectable(socket.AF_UNIX, path, self.process, "tokend", self.log)
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        return _tail(self.log_path)

    def stop(self) -> int:
        return stop_process(self.process)


class Nginx:
    """nginx in the foreground on a temporary prefix, running ``site`` (text of server and
    upstream blocks) inside its ``http { }``, listening on ``port`` (127.0.0.1)."""

    def __init__(self, nginx: str, directory: str, site: str, port: int, *,
                 workers: int = 1, extra_http: str = "") -> None:
        self.dir = directory
        self.port = port
        self.error_log = os.path.join(directory, "error.log")
        temp = os.path.join(directory, "temp")
        os.makedirs(temp, exist_ok=True)
        with open(os.path.join(directory, "tokend.conf"), "w") as f:
            f.write(site)
        # As root, nginx's workers would drop to `nobody`, who may not open tokend's socket
        # (mode 0660 in a 0700 temporary directory): keep them root. Otherwise nginx cannot
        # switch users and runs as the current one.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = f"""{user}worker_processes {workers};
pid {directory}/nginx.pid;
error_log {self.error_log} notice;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {directory}/tokend.conf;
{extra_http}
}}
"""
        self.conf_path = os.path.join(directory, "nginx.conf")
        with open(self.conf_path, "w") as f:
            f.write(conf)
        args = [nginx, "-p", directory, "-c", self.conf_path, "-e", self.error_log,
                "-g", "daemon off;"]
        check = subprocess.run([*args[:-2], "-t"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=60)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t refused the configuration:\n{check.stderr}\n{conf}")
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        try:
            wait_connectable(socket.AF_INET, ("127.0.0.1", port), self.process, "nginx",
                             self.log)
        except BaseException:
            self.stop()
            raise

    def log(self) -> str:
        return _tail(self.error_log)

    def pids(self) -> list[int]:
        """The master and its workers."""
        pids = [self.process.pid]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if proc_stat(int(entry))[1] == self.process.pid:
                        pids.append(int(entry))
                except OSError:
                    pass
        return pids

    def stop(self) -> int:
        # SIGTERM is nginx's fast shutdown: the master stops its workers and exits.
        return stop_process(self.process)


def proc_stat(pid: int) -> tuple[int, int]:
    """utime + stime in clock ticks, and the parent pid, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command: state(3) ppid(4) ... utime(14) stime(15), numbered from 1.
    return int(fields[11]) + int(fields[12]), int(fields[1])


def cpu_seconds(pids: Sequence[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            ticks += proc_stat(pid)[0]
        except OSError:
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a Unix socket (tokend's HTTP face without nginx)."""

    def __init__(self, path: str, timeout: float = 30.0) -> None:
        super().__init__("tokend", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock
