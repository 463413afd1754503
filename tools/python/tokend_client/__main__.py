"""``python -m tokend_client``: a tiny command line for scripts.

::

    python -m tokend_client verify TOKEN [--fingerprint F] [--refresh-token R] [--socket PATH]
                                         [--timeout S]
    python -m tokend_client hello [--socket PATH]

Prints one JSON object (the keys of ``tokenctl --json``) and exits with:

- 0: accepted (``ok``, ``renewed``, or ``refreshed``: with ``--refresh-token``, the access
  token had expired and the pair was rotated; the JSON then carries the new pair,
  ``access_token``, ``refresh_token``, ``refresh_expires_at`` and ``max_expires_at``, and the
  refresh token given is spent),
- 1: refused by the daemon (the token, or the request: ``{"status": "revoked", ...}``),
- 2: usage error (bad arguments, an empty token or one still starting with ``Bearer ``),
- 3: service failure: tokend could not answer (``store_unavailable``, ``internal_error``,
  unreachable, connection lost, timeout, protocol error).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any, Sequence

from ._version import __version__
from .client import Client, default_socket_path
from .errors import ServiceUnavailable, TokendError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_SERVICE = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tokend_client",
                                     description="Ask tokend from a script; prints JSON.")
    parser.add_argument("--version", action="version", version=f"tokend_client {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--socket", default=None,
                        help=f"tokend's socket (default $TOKEND_SOCKET, else "
                             f"{default_socket_path()})")
    common.add_argument("--timeout", type=float, default=5.0,
                        help="seconds for the whole call (default 5)")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", parents=[common],
                                 help="verify a session or access token (exit 0 accepted, "
                                      "1 refused, 3 service failure)")
    verify.add_argument("token")
    verify.add_argument("--fingerprint", default=None,
                        help="the fingerprint of the client presenting it (UTF-8)")
    verify.add_argument("--refresh-token", default=None, metavar="R",
                        help="the refresh token of the access token's pair: if the access token "
                             "has expired, the pair is rotated (status refreshed; the new pair "
                             "is printed, and R is spent)")
    commands.add_parser("hello", parents=[common],
                        help="the daemon's version, limits and settings")
    return parser


def _print(obj: dict[str, Any]) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on a usage error
    client = Client(args.socket, timeout=args.timeout, client_name=f"tokend_client-cli "
                                                                   f"{__version__}")
    try:
        if args.command == "verify":
            result = client.verify(args.token, fingerprint=args.fingerprint,
                                   refresh_token=args.refresh_token)
            out: dict[str, Any] = {
                "status": result.status_name, "mode": result.mode_name,
                "subject": result.subject, "session_id": result.session_id,
                "claims": result.claims, "expires_at": result.expires_at,
                "token_expires_at": result.token_expires_at, "renewed": result.renewed}
            if result.refreshed:
                out.update(access_token=result.access_token, refresh_token=result.refresh_token,
                           refresh_expires_at=result.refresh_expires_at,
                           max_expires_at=result.max_expires_at)
            _print(out)
        else:
            info = client.hello()
            _print(asdict(info))
        return EXIT_OK
    except ValueError as mistake:  # found before sending: an empty token, a Bearer prefix, ...
        print(f"python -m tokend_client: {mistake}", file=sys.stderr)
        return EXIT_USAGE
    except TokendError as error:
        _print({"status": error.name, "message": error.message})
        return EXIT_SERVICE if isinstance(error, ServiceUnavailable) else EXIT_REFUSED
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
