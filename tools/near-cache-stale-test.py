#!/usr/bin/env python3
"""Read-your-revocations of the Python client's near cache, at length, against the real tokend.

For each kind of revocation (by token, by session id, by subject, and reuse detection: a spent
refresh token presented after the dedup window, once the new pair it was traded for has been used,
its access token verified), every round caches a verify answer in a client with the near cache
(strict mode unless --mode says otherwise), revokes the login through another client and waits
for the acknowledgement, then verifies through the caching client: the answer must be a refusal
(for reuse, of the old access token and of the new one, both cached). A success is a stale
answer. The rounds are those of
tools/python/tests/near_rounds.py, which the unit tests run 300 times each.

    TOKEND_BIN=/path/to/tokend tools/near-cache-stale-test.py --rounds 10000
    tools/near-cache-stale-test.py --rounds 1000 --busy-threads 2    # other threads on the cache
    tools/near-cache-stale-test.py --rounds 200 --break-drain         # must report stale answers

--break-drain disables strict mode's read before each hit, to show that the rounds do catch a
stale cache (the run then fails unless it finds stale answers). Exits 0 when every kind had no
stale answer (and every round had its answer cached before the revocation), 1 otherwise.

Starts tokend ($TOKEND_BIN, default <repo>/.build/debug/tokend) on a temporary state directory
with --dedup-window 1s, as tools/python/tests/support.py does. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools" / "python"))

from tests import near_rounds  # noqa: E402
from tests.support import Daemon  # noqa: E402
from tokend_client import Client, Status  # noqa: E402
from tokend_client import client as client_module  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10000, help="rounds per kind (10000)")
    parser.add_argument("--kinds", default=",".join(near_rounds.KINDS),
                        help="comma-separated: " + ",".join(near_rounds.KINDS))
    parser.add_argument("--mode", choices=("strict", "reader"), default="strict")
    parser.add_argument("--busy-threads", type=int, default=0,
                        help="threads making other calls on the caching client meanwhile")
    parser.add_argument("--break-drain", action="store_true",
                        help="self-check: no read before a hit; stale answers are expected")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    for kind in kinds:
        if kind not in near_rounds.KINDS:
            parser.error(f"unknown kind {kind!r}")
    if args.break_drain:
        setattr(client_module._Connection, "drain", lambda self: None)

    if not os.environ.get("TOKEND_BIN") and not (REPO / ".build" / "debug" / "tokend").exists():
        print("near-cache-stale-test: no tokend; set TOKEND_BIN", file=sys.stderr)
        return 2
    daemon = Daemon([])
    try:
        with Client(daemon.socket_path) as probe:
            if probe.call("track").status == Status.UNKNOWN_OPERATION:
                print("near-cache-stale-test: this tokend predates track (12.16)",
                      file=sys.stderr)
                return 2
        print(f"tokend {daemon.process.args[0]}, mode {args.mode}, {args.rounds} rounds per "
              f"kind, {args.busy_threads} busy threads" +
              (", drain broken on purpose" if args.break_drain else ""))
        outcomes = []
        for kind in kinds:
            outcome = near_rounds.run(daemon.socket_path, kind, args.rounds, mode=args.mode,
                                      busy_threads=args.busy_threads, prefix=f"stale-{kind}")
            print(outcome, flush=True)
            outcomes.append(outcome)
    finally:
        daemon.stop()
    stale = sum(o.stale for o in outcomes)
    rounds = sum(o.rounds for o in outcomes)
    print(f"total: {rounds} rounds, {stale} stale answers")
    if args.break_drain:
        print("self-check: " + ("stale answers found, as expected" if stale else
                                "NO stale answer found: the rounds do not test the cache"))
        return 0 if stale else 1
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
