"""``python -m tokend_client``: JSON out, exit 0 accepted, 1 refused, 2 usage, 3 service failure;
and the package's version, typing and packaging."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unittest
from typing import Any

import tokend_client

from .support import TOOLS_PYTHON, Daemon, SharedStore, tokend_binary


def cli(*args: str) -> tuple[int, Any, str]:
    """Run the CLI: its exit code, its JSON output (None if none) and its stderr."""
    env = {**os.environ, "PYTHONPATH": str(TOOLS_PYTHON)}
    done = subprocess.run([sys.executable, "-m", "tokend_client", *args], env=env,
                          capture_output=True, text=True, timeout=30)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


class CliTest(unittest.TestCase):
    def test_verify(self) -> None:
        daemon = Daemon([])
        self.addCleanup(daemon.stop)
        sock = ["--socket", daemon.socket_path]
        with tokend_client.Client(daemon.socket_path) as tokend:
            token = tokend.issue("quinn", fingerprint="UA", claims={"n": 1}).token
            gone = tokend.issue("quinn").token
            tokend.revoke(gone)

        code, out, _ = cli("verify", token, "--fingerprint", "UA", *sock)
        self.assertEqual(code, 0)
        self.assertEqual((out["status"], out["mode"], out["subject"], out["claims"]["n"],
                          out["renewed"]), ("ok", "session", "quinn", 1, False))
        self.assertEqual(set(out), {"status", "mode", "subject", "session_id", "claims",
                                    "expires_at", "token_expires_at", "renewed"})
        code, out, _ = cli("verify", gone, *sock)
        self.assertEqual((code, out["status"]), (1, "revoked"))
        self.assertTrue(out["message"])
        code, out, _ = cli("verify", token, "--fingerprint", "other", *sock)
        self.assertEqual((code, out["status"]), (1, "fingerprint_mismatch"))
        code, out, err = cli("verify", f"Bearer {token}", *sock)
        self.assertEqual((code, out), (2, None))
        self.assertIn("Bearer", err)
        code, out, err = cli("verify", "", *sock)
        self.assertEqual(code, 2)
        self.assertIn("empty", err)
        code, out, err = cli("verify", *sock)  # no token
        self.assertEqual(code, 2)
        code, out, _ = cli("verify", token, "--socket", daemon.socket_path + ".missing")
        self.assertEqual((code, out["status"]), (3, "unreachable"))

        code, out, _ = cli("hello", *sock)
        self.assertEqual(code, 0)
        self.assertEqual(out["protocol_version"], 1)
        self.assertIn("dedup_window_ms", out)

    def test_store_unavailable_is_a_service_failure(self) -> None:
        store = SharedStore()
        self.addCleanup(store.stop)
        with tokend_client.Client(store.socket_path) as tokend:
            token = tokend.issue("rita").token
        self.assertEqual(cli("verify", token, "--socket", store.socket_path)[0], 0)
        store.redis_down()
        code, out, _ = cli("verify", token, "--socket", store.socket_path)
        self.assertEqual((code, out["status"]), (3, "store_unavailable"))


class PackageTest(unittest.TestCase):
    def test_version_is_tokends(self) -> None:
        # tokend names its version in hello's server_name ("tokend 0.1.0"); `tokend --version`
        # is compared too once the daemon has that option.
        binary = tokend_binary()
        daemon = Daemon([])
        self.addCleanup(daemon.stop)
        with tokend_client.Client(daemon.socket_path) as tokend:
            server_name = tokend.hello().server_name
        self.assertEqual(server_name, f"tokend {tokend_client.__version__}")
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                              timeout=10)
        if done.returncode == 0:
            self.assertIn(tokend_client.__version__, done.stdout.split())
        self.assertEqual(_stdout("--version").split(), ["tokend_client", tokend_client.__version__])

    def test_pyproject_takes_the_version_from_the_package(self) -> None:
        text = (TOOLS_PYTHON / "pyproject.toml").read_text(encoding="utf-8")
        self.assertIn('dynamic = ["version"]', text)
        self.assertRegex(text, r'version = \{ attr = "tokend_client\._version\.__version__" \}')
        self.assertIsNone(re.search(r'^version = "', text, re.M))
        self.assertTrue((TOOLS_PYTHON / "tokend_client" / "py.typed").exists())
        self.assertIn('"py.typed"', text)

    def test_mypy_strict(self) -> None:
        try:
            import mypy  # noqa: F401
        except ImportError:
            self.skipTest("mypy is not installed (pip install mypy)")
        done = subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "tokend_client", "example_wsgi.py",
             "example_asgi.py", "bench_threads.py", "tests"],
            cwd=TOOLS_PYTHON, capture_output=True, text=True, timeout=300)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)


def _stdout(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(TOOLS_PYTHON)}
    return subprocess.run([sys.executable, "-m", "tokend_client", *args], env=env,
                          capture_output=True, text=True, timeout=30).stdout


if __name__ == "__main__":
    unittest.main()
