#!/usr/bin/env python3
"""Runs every `curl --unix-socket /run/tokend/http.sock ...` line README.md and docs/http.md show against a real
tokend's HTTP face, so that an example a reader copies cannot be wrong.

    tools/readme-http-test.py

Binaries: $TOKEND_BIN and $TOKENCTL_BIN, by default .build/debug/tokend and .build/debug/tokenctl.
The README's socket path is replaced by a temporary one, and $TOKEN by a session token issued
with the fingerprint the examples send (`-A curl/8`). Each line must exit 0 and answer as a
success: a 2xx status line (with -i), `"active":true` from /introspect, `ok` from /healthz.
Standard library only.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools" / "nginx"))
import harness  # noqa: E402  (starts tokend with its HTTP face and waits for both sockets)

TOKEND_BIN = harness.binary("TOKEND_BIN", REPO / ".build/debug/tokend")
TOKENCTL_BIN = harness.binary("TOKENCTL_BIN", REPO / ".build/debug/tokenctl")
README_SOCKET = "/run/tokend/http.sock"
# Every endpoint README must show an example of.
ENDPOINTS = ["/auth", "/introspect", "/.well-known/jwks.json", "/healthz"]


def curl_lines(text):
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line.startswith("curl ") and f"--unix-socket {README_SOCKET}" in line]


def main():
    if shutil.which("curl") is None:
        sys.exit("readme-http-test: curl is missing (tools/test installs it)")
    readme = curl_lines((REPO / "README.md").read_text())
    lines = readme + curl_lines((REPO / "docs/http.md").read_text())
    missing = [endpoint for endpoint in ENDPOINTS if not any(f"http://tokend{endpoint}" in line for line in readme)]
    if missing:
        sys.exit(f"readme-http-test: README shows no curl example for {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="tokend-readme-http-") as directory:
        tokend = harness.Tokend(TOKEND_BIN, directory, ["--http-token-cookie", "access", "--http-fingerprint-headers", "User-Agent"])
        try:
            issued = subprocess.run([str(TOKENCTL_BIN), "--socket", tokend.socket_path, "--json", "issue", "--subject", "alice",
                                     "--fingerprint", "curl/8"], capture_output=True, text=True, check=True)
            token = json.loads(issued.stdout)["token"]
            failures = 0
            for line in lines:
                command = line.replace(README_SOCKET, tokend.http_socket)
                result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=20,
                                        env={**os.environ, "TOKEN": token})
                output = result.stdout
                status = re.match(r"HTTP/1\.1 (\d{3})", output)
                problems = []
                if result.returncode != 0:
                    problems.append(f"exit {result.returncode}: {result.stderr.strip()}")
                if " -i " in f" {line} " and not (status and status.group(1).startswith("2")):
                    problems.append(f"status line: {output.splitlines()[:1]}")
                if "/introspect" in line and '"active":true' not in output:
                    problems.append(f"not active: {output.strip()}")
                if "/healthz" in line and output.strip() != "ok":
                    problems.append(f"not ok: {output.strip()}")
                if token in output:
                    problems.append("the token came back in the answer")
                print(("FAIL " if problems else "ok   ") + line + "".join(f"\n     {p}" for p in problems))
                failures += bool(problems)
            print(f"readme-http-test: {len(lines) - failures} of {len(lines)} README curl examples answered as shown")
            sys.exit(1 if failures else 0)
        finally:
            tokend.stop()


if __name__ == "__main__":
    main()
