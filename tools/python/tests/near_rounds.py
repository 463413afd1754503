"""Rounds of "revoke, then verify through another client's near cache" against the real daemon,
shared by tests/test_near_cache_daemon.py (a few hundred rounds) and
tools/near-cache-stale-test.py (10,000 and more).

Each round caches a verify answer in the caching client (checked: the second verify is answered
from the cache), revokes the login through another client (another connection) and waits for
the acknowledgement, then verifies through the caching client again: read-your-revocations
(proto-spec.md 12.16 rule 5) says that this verify must be refused. A success there is a stale
answer, counted in ``stale``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from tokend_client import Client, Revoked, ReuseDetected, TokendError
from tokend_client.near_cache import NearCacheMode

KINDS = ("token", "session", "subject", "reuse")


@dataclass
class Outcome:
    kind: str
    rounds: int = 0
    stale: int = 0  # the cached client answered success after the acknowledged revocation
    not_cached: int = 0  # the second verify before the revocation did not come from the cache
    wrong: list[str] = field(default_factory=list)  # other unexpected results, described
    stale_examples: list[str] = field(default_factory=list)
    busy_calls: int = 0  # calls made by the busy threads meanwhile
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.stale == 0 and self.not_cached == 0 and not self.wrong

    def __str__(self) -> str:
        text = (f"{self.kind:<8} rounds {self.rounds:>6}  stale {self.stale}  "
                f"not cached {self.not_cached}  other failures {len(self.wrong)}  "
                f"busy calls {self.busy_calls}  {self.seconds:.1f} s")
        return text + "".join(f"\n    {w}" for w in self.stale_examples[:3] + self.wrong[:5])


class Busy:
    """Threads that keep the caching client's connection busy while the rounds run: cache hits
    on a token of their own, and pings (which read replies, so that the reader's role and the
    strict mode's reads meet)."""

    def __init__(self, cached: Client, admin: Client, threads: int) -> None:
        self.calls = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._token = admin.issue("near-busy").token if threads else ""
        self._cached = cached
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        try:
            n = 0
            while not self._stop.is_set():
                self._cached.verify(self._token)
                if n % 4 == 0:
                    self._cached.ping()
                n += 1
            self.calls += n
        except BaseException as exc:
            self.errors.append(exc)

    def stop(self) -> int:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        if self.errors:
            raise self.errors[0]
        return self.calls


def _check_cached(cached: Client, token: str, outcome: Outcome) -> None:
    first = cached.verify(token)
    second = cached.verify(token)
    if first.local:
        outcome.wrong.append(f"the first verify of a new token came from the cache: {first}")
    if not second.local:
        outcome.not_cached += 1


def _expect_revoked(cached: Client, token: str, outcome: Outcome, what: str) -> None:
    try:
        result = cached.verify(token)
    except Revoked:
        return
    except TokendError as exc:
        outcome.wrong.append(f"{what}: {exc.name} instead of revoked")
        return
    outcome.stale += 1
    if len(outcome.stale_examples) < 20:
        source = "local" if result.local else "daemon"
        outcome.stale_examples.append(f"{what}: stale {source} answer {result.status_name} "
                                      "after the acknowledged revocation")


def revoke_rounds(cached: Client, admin: Client, kind: str, rounds: int,
                  prefix: str = "near") -> Outcome:
    """``kind``: ``token`` (revoke with the token), ``session`` (by session id), ``subject``
    (by subject: two logins of the subject, both cached)."""
    outcome = Outcome(kind)
    started = time.monotonic()
    for n in range(rounds):
        subject = f"{prefix}-{kind}-{n}"
        login = admin.issue(subject)
        _check_cached(cached, login.token, outcome)
        tokens = [login.token]
        if kind == "token":
            count = admin.revoke(login.token).count
        elif kind == "session":
            count = admin.revoke(session_id=login.session_id).count
        elif kind == "subject":
            other = admin.issue(subject, "pair")
            _check_cached(cached, other.token, outcome)
            tokens.append(other.token)
            count = admin.revoke(subject=subject).count
        else:
            raise ValueError(f"unknown kind {kind!r}")
        if count != len(tokens):
            outcome.wrong.append(f"round {n}: revoke counted {count}, not {len(tokens)}")
        for token in tokens:  # the revocation is acknowledged: no cached answer may survive it
            _expect_revoked(cached, token, outcome, f"round {n} ({kind})")
        outcome.rounds += 1
    outcome.seconds = time.monotonic() - started
    return outcome


def dedup_window_of(client: Client) -> float:
    """The daemon's dedup window in seconds, as its ``hello`` reports it."""
    info = client.server or client.hello()
    if info.dedup_window is None:
        raise RuntimeError(f"{info.server_name} does not report its dedup window in hello")
    return info.dedup_window


def reuse_rounds(cached: Client, admin: Client, rounds: int, dedup_window: float | None = None,
                 batch: int = 500, prefix: str = "near") -> Outcome:
    """Reuse detection: a pair's access token is cached; the pair is refreshed (its refresh
    token spent) through the other client, and the new pair's access token is verified through
    the caching client, and cached too: the legitimate holder has used the new pair. That ends
    the lost-response grace, in which a retry of the spent refresh token would get the same
    new pair back; after the dedup window (``dedup_window`` seconds, by default as hello
    reports it) the spent refresh token presented again is reuse (``reuse_detected``: the
    family is revoked, acknowledged by that reply). Then both cached access tokens, the old
    and the new, must be refused. In batches, so that one wait for the window serves many
    rounds."""
    outcome = Outcome("reuse")
    started = time.monotonic()
    window = dedup_window_of(admin) if dedup_window is None else dedup_window
    done = 0
    while done < rounds:
        size = min(batch, rounds - done)
        pairs = []
        for n in range(done, done + size):
            pair = admin.issue(f"{prefix}-reuse-{n}", "pair")
            _check_cached(cached, pair.token, outcome)
            assert pair.refresh_token is not None
            new = admin.refresh(pair.refresh_token)  # spends it
            _check_cached(cached, new.token, outcome)  # uses the new pair
            pairs.append((n, pair.token, new.token, pair.refresh_token))
        # The window runs from each refresh, to the millisecond: the last one was made before
        # this time, so every window is over once `window` seconds more have passed.
        window_end = time.time() + window + 0.05
        time.sleep(max(0.0, window_end - time.time()))
        for n, access, new_access, spent in pairs:
            for token in (access, new_access):  # still cached after the refresh and the wait
                if not cached.verify(token).local:
                    outcome.not_cached += 1
            try:
                admin.refresh(spent)
                outcome.wrong.append(f"round {n}: the spent refresh token was accepted")
                continue
            except ReuseDetected:
                pass  # the family is revoked, and that is acknowledged now
            except TokendError as exc:
                outcome.wrong.append(f"round {n}: {exc.name} instead of reuse_detected")
                continue
            _expect_revoked(cached, access, outcome, f"round {n} (reuse, old access token)")
            _expect_revoked(cached, new_access, outcome, f"round {n} (reuse, new access token)")
            outcome.rounds += 1
        done += size
    outcome.seconds = time.monotonic() - started
    return outcome


def run(socket_path: str, kind: str, rounds: int, *, mode: NearCacheMode = "strict",
        busy_threads: int = 0, dedup_window: float | None = None,
        prefix: str = "near") -> Outcome:
    """One kind of rounds with a caching client and an admin client of their own;
    ``dedup_window``: the daemon's, in seconds (by default as its hello reports it)."""
    with Client(socket_path, timeout=30.0) as admin, \
            Client(socket_path, timeout=30.0, near_cache=True, near_cache_mode=mode,
                   near_cache_size=max(10000, 2 * rounds + 10)) as cached:
        busy = Busy(cached, admin, busy_threads)
        try:
            if kind == "reuse":
                outcome = reuse_rounds(cached, admin, rounds, dedup_window, prefix=prefix)
            else:
                outcome = revoke_rounds(cached, admin, kind, rounds, prefix=prefix)
        finally:
            outcome_busy = busy.stop()
        outcome.busy_calls = outcome_busy
        stats = cached.near_cache_stats()
        assert stats is not None
        if not stats.tracking:
            outcome.wrong.append("the caching client's connection does not track")
        return outcome
