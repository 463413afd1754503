"""One shared Client, many threads doing verify against the real tokend: ops/s, p50, p99.

    python3 bench_threads.py                                  # starts $TOKEND_BIN on a temp dir
    python3 bench_threads.py --socket ./tokend-data/tokend.sock --threads 1,16 --seconds 5
    python3 bench_threads.py --baseline /tmp/old/tools/python --rounds 3
    python3 bench_threads.py --redis-delay-ms 1 --baseline /tmp/old/tools/python

``--baseline DIR`` runs the same measurement with the tokend_client found in DIR (an older
checkout of tools/python) and with this one, alternately, on the same daemon and token, so that
before and after are compared in one session on a noisy machine. Each measurement runs in its
own Python process; only ``Client(path, timeout=...)``, ``issue`` and ``verify`` are used, so
any version of the client will do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def measure(socket_path: str, token: str, threads: int, seconds: float) -> dict[str, Any]:
    """In this process: ``threads`` threads share one client and verify ``token`` for
    ``seconds``; every call's latency is kept."""
    import tokend_client
    from tokend_client import Client

    client = Client(socket_path, timeout=10.0)
    client.verify(token)  # connect and warm up
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0]
    barrier = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def work(mine: list[float]) -> None:
        clock = time.perf_counter
        barrier.wait()
        end = stop_at[0]
        while True:
            started = clock()
            if started >= end:
                return
            try:
                client.verify(token)
            except Exception:  # noqa: BLE001 - counted, reported
                errors[0] += 1
            mine.append(clock() - started)

    workers = [threading.Thread(target=work, args=(latencies[i],)) for i in range(threads)]
    for worker in workers:
        worker.start()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    barrier.wait()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    client.close()
    every = sorted(x for mine in latencies for x in mine)
    return {"client": os.path.dirname(os.path.dirname(tokend_client.__file__ or "")),
            "threads": threads, "calls": len(every), "errors": errors[0],
            "seconds": round(elapsed, 3), "ops_per_s": round(len(every) / elapsed, 1),
            "p50_ms": round(every[len(every) // 2] * 1000, 3),
            "p99_ms": round(every[min(len(every) - 1, int(len(every) * 0.99))] * 1000, 3)}


def run_worker(code_dir: Path, socket_path: str, token: str, threads: int,
               seconds: float) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", "--code", str(code_dir),
         "--socket", socket_path, "--token", token, "--threads", str(threads),
         "--seconds", str(seconds)],
        capture_output=True, text=True, timeout=seconds + 60, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    if Path(result["client"]).resolve() != code_dir.resolve():
        raise RuntimeError(f"the worker imported {result['client']}, not {code_dir}")
    return result


def _wait_for_socket(path: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            return True
        except OSError:
            time.sleep(0.05)
        finally:
            probe.close()
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class DelayingProxy:
    """A Unix-socket proxy in a thread that hands each chunk from the server (Redis) on
    ``delay`` seconds after it came, in order: Redis as if it were across a network."""

    def __init__(self, listen: str, target: str, delay: float) -> None:
        self.listen, self.target, self.delay = listen, target, delay
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("the proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        await asyncio.start_unix_server(self._serve, self.listen)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_unix_connection(self.target)
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def upstream() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
            up_writer.close()

        async def downstream() -> None:
            loop = asyncio.get_running_loop()
            while data := await up_reader.read(65536):
                queue.put_nowait((loop.time() + self.delay, data))
            queue.put_nowait((0.0, b""))

        async def deliver() -> None:
            loop = asyncio.get_running_loop()
            while True:
                due, data = await queue.get()
                if not data:
                    writer.close()
                    return
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)

        await asyncio.gather(upstream(), downstream(), deliver(), return_exceptions=True)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class Tokend:
    """$TOKEND_BIN on a temporary state directory and socket, killed at the end; with
    ``redis_delay`` (seconds), on a redis-server of its own reached through
    :class:`DelayingProxy`."""

    def __init__(self, binary: str, redis_delay: float | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="tokend-bench-", dir="/tmp")
        self.socket_path = os.path.join(self.dir, "tokend.sock")
        self.log = open(os.path.join(self.dir, "tokend.log"), "wb")
        self.redis: subprocess.Popen[bytes] | None = None
        self.proxy: DelayingProxy | None = None
        store: list[str] = []
        if redis_delay is not None:
            redis_socket = os.path.join(self.dir, "redis.sock")
            self.redis = subprocess.Popen(
                ["redis-server", "--port", "0", "--unixsocket", redis_socket, "--save", "",
                 "--appendonly", "no", "--dir", self.dir],
                stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
            if not _wait_for_socket(redis_socket, self.redis):
                self.stop()
                raise RuntimeError("redis-server did not start")
            proxy_socket = os.path.join(self.dir, "redis-proxy.sock")
            self.proxy = DelayingProxy(proxy_socket, redis_socket, redis_delay)
            store = ["--store", f"redis+unix://{proxy_socket}", "--init-keys"]
        self.process = subprocess.Popen(
            [binary, "--state-dir", os.path.join(self.dir, "state"), "--socket",
             self.socket_path, "--log-level", "warning", *store],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        if not _wait_for_socket(self.socket_path, self.process):
            self.stop()
            raise RuntimeError(f"tokend did not start (see {self.dir})")

    def stop(self) -> None:
        if hasattr(self, "process"):
            _stop(self.process)
        if self.proxy is not None:
            self.proxy.stop()
        if self.redis is not None:
            _stop(self.redis)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--socket", help="a running tokend's socket (default: start "
                                         "$TOKEND_BIN on a temporary directory)")
    parser.add_argument("--threads", default="16",
                        help="comma-separated thread counts (default 16)")
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="measurements per setting")
    parser.add_argument("--redis-delay-ms", type=float, metavar="MS",
                        help="run the started tokend on a redis-server of its own, whose "
                             "replies a proxy delays by MS milliseconds (Redis across a "
                             "network: tokend waits on it, not on its CPU)")
    parser.add_argument("--baseline", type=Path,
                        help="a directory holding another tokend_client to compare with")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        sys.path.insert(0, args.code)  # before this script's own directory
        print(json.dumps(measure(args.socket, args.token, int(args.threads), args.seconds)))
        return

    daemon: Tokend | None = None
    socket_path = args.socket
    if socket_path is None:
        binary = os.environ.get("TOKEND_BIN") or str(HERE.parents[1] / ".build" / "release"
                                                     / "tokend")
        daemon = Tokend(binary, None if args.redis_delay_ms is None
                        else args.redis_delay_ms / 1000)
        socket_path = daemon.socket_path
    try:
        sys.path.insert(0, str(HERE))
        from tokend_client import Client
        with Client(socket_path) as tokend:
            token = tokend.issue("bench").token
            server = tokend.hello().server_name
        codes = ([("before", args.baseline.resolve())] if args.baseline else []) + [
            ("after" if args.baseline else "this", HERE)]
        store = ("embedded store" if args.redis_delay_ms is None
                 else f"Redis store, replies delayed {args.redis_delay_ms:g} ms")
        print(f"# {server}, {store if daemon else socket_path}, {args.seconds} s per "
              f"measurement, one shared Client per process")
        print("| client | threads | ops/s | p50 ms | p99 ms | calls | errors |")
        print("|---|---|---|---|---|---|---|")
        results: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for threads in (int(t) for t in args.threads.split(",")):
            for round_number in range(args.rounds):
                # Alternately, and in the other order every other round, so that drift and
                # noise hit both alike.
                for label, code in codes if round_number % 2 == 0 else codes[::-1]:
                    result = run_worker(code, socket_path, token, threads, args.seconds)
                    results.setdefault((label, threads), []).append(result)
                    print(f"| {label} | {threads} | {result['ops_per_s']:,.0f} | "
                          f"{result['p50_ms']:.2f} | {result['p99_ms']:.2f} | "
                          f"{result['calls']} | {result['errors']} |", flush=True)
        if args.rounds > 1:
            print("\nmedians:")
            print("| client | threads | ops/s | p50 ms | p99 ms |")
            print("|---|---|---|---|---|")
            for (label, threads), runs in results.items():
                print(f"| {label} | {threads} | "
                      f"{statistics.median(r['ops_per_s'] for r in runs):,.0f} | "
                      f"{statistics.median(r['p50_ms'] for r in runs):.2f} | "
                      f"{statistics.median(r['p99_ms'] for r in runs):.2f} |")
    finally:
        if daemon is not None:
            daemon.stop()


if __name__ == "__main__":
    main()
