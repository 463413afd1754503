"""A WSGI app that lets a request in only with a bearer token tokend accepts.

    python3 example_wsgi.py --socket ./tokend-data/tokend.sock --issue alice
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/

Whose fault decides the answer:

- tokend refused the token (``expired``, ``revoked``, ``fingerprint_mismatch``, ...): 401 with
  ``WWW-Authenticate: Bearer error="invalid_token"``; the user agent logs in again.
- tokend could not answer (``store_unavailable`` while Redis is down, ``internal_error``, no
  connection, timeout): 503 with ``Retry-After``. The token may be perfectly good, so this must
  not look like a 401: clients that drop their tokens on 401 would turn an outage into a mass
  logout.
- no token at all: 401 with a bare ``WWW-Authenticate: Bearer`` (RFC 6750 section 3.1).
"""

from __future__ import annotations

import argparse
import os
from typing import Callable, Iterable
from wsgiref.simple_server import make_server

from tokend_client import Client, ServiceUnavailable, TokenRefused

StartResponse = Callable[[str, list[tuple[str, str]]], object]

# One client for the process, shared by its threads: concurrent requests are pipelined on one
# connection, which is opened on first use and again after it was lost. A web request should
# not wait long for the daemon: two seconds, then 503.
TOKEND = Client(os.environ.get("TOKEND_SOCKET"), timeout=2.0)
RETRY_AFTER_SECONDS = 1


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; None when there is none."""
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def app(environ: dict[str, object], start_response: StartResponse) -> Iterable[bytes]:
    token = bearer_token(str(environ.get("HTTP_AUTHORIZATION", "")))
    if token is None:
        start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                            ("WWW-Authenticate", 'Bearer realm="example"')])
        return [b"missing bearer token\n"]
    try:
        login = TOKEND.verify(token, fingerprint=str(environ.get("HTTP_USER_AGENT", "")))
    except TokenRefused as refusal:                 # the token is no good: log in again
        return unauthorized(start_response, refusal.name)
    except ServiceUnavailable as failure:           # tokend could not answer: try again later
        start_response("503 Service Unavailable", [
            ("Content-Type", "text/plain"), ("Retry-After", str(RETRY_AFTER_SECONDS))])
        return [f"authentication unavailable ({failure.name}), try again\n".encode()]
    except ValueError:                              # a token no protocol message can carry
        return unauthorized(start_response, "malformed_token")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"hello {login.subject}\n".encode()]


def unauthorized(start_response: StartResponse, reason: str) -> Iterable[bytes]:
    start_response("401 Unauthorized", [
        ("Content-Type", "text/plain"),
        ("WWW-Authenticate", f'Bearer error="invalid_token", error_description="{reason}"')])
    return [f"{reason}\n".encode()]


def main() -> None:
    global TOKEND
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--socket", help="tokend's socket (default $TOKEND_SOCKET or "
                                         "./tokend-data/tokend.sock)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--issue", metavar="SUBJECT",
                        help="first issue an unbound session token for SUBJECT and print it")
    args = parser.parse_args()
    if args.socket:
        TOKEND = Client(args.socket, timeout=2.0)
    if args.issue:
        token = TOKEND.issue(args.issue).token
        print(f"TOKEN={token}")
        print(f'curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:{args.port}/')
    with make_server("127.0.0.1", args.port, app) as server:
        print(f"serving on http://127.0.0.1:{args.port}/")
        server.serve_forever()


if __name__ == "__main__":
    main()
