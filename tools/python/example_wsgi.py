"""A WSGI app that lets a request in only with a bearer token tokend accepts.

    python3 example_wsgi.py --socket ./tokend-data/tokend.sock --issue alice
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/

Anything tokend refuses gets 401 with the status name (``expired``, ``revoked``,
``fingerprint_mismatch``, ...); a daemon that cannot be reached gets 503.
"""

from __future__ import annotations

import argparse
import os
from typing import Callable, Iterable
from wsgiref.simple_server import make_server

from tokend_client import Client, TokendClientError, TokendError

StartResponse = Callable[[str, list[tuple[str, str]]], object]

# One client for the process: it connects on first use, reconnects after the daemon closed an
# idle connection, and serialises calls from several threads.
TOKEND = Client(os.environ.get("TOKEND_SOCKET"))


def app(environ: dict[str, object], start_response: StartResponse) -> Iterable[bytes]:
    header = str(environ.get("HTTP_AUTHORIZATION", ""))
    token = header[7:].strip() if header[:7].lower() == "bearer " else ""
    try:
        login = TOKEND.verify(token, fingerprint=str(environ.get("HTTP_USER_AGENT", "")))
    except TokendError as refusal:
        start_response("401 Unauthorized", [
            ("Content-Type", "text/plain"),
            ("WWW-Authenticate", f'Bearer error="invalid_token", error_description="{refusal.name}"')])
        return [f"{refusal.name}\n".encode()]
    except TokendClientError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
        return [b"tokend unavailable\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {login.subject}\n".encode()]


def main() -> None:
    global TOKEND
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", help="tokend's socket (default $TOKEND_SOCKET or "
                                         "./tokend-data/tokend.sock)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--issue", metavar="SUBJECT",
                        help="first issue an unbound session token for SUBJECT and print it")
    args = parser.parse_args()
    if args.socket:
        TOKEND = Client(args.socket)
    if args.issue:
        token = TOKEND.issue(args.issue).token
        print(f"TOKEN={token}")
        print(f'curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:{args.port}/')
    with make_server("127.0.0.1", args.port, app) as server:
        print(f"serving on http://127.0.0.1:{args.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main()
