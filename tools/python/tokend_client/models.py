"""Result types of the operations (proto-spec.md section 12).

Times are Unix seconds. ``mode`` and ``state`` are kept as the numbers the daemon sent, so that
a value this client does not know still decodes (section 8); ``mode_name`` and ``state_name``
give the spec's names, or the number as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

from .protocol import MODE_NAMES, STATE_NAMES, Status, status_name

__all__ = [
    "HelloInfo",
    "IssueResult",
    "KeyInfo",
    "NearCacheStats",
    "RevokeResult",
    "SessionInfo",
    "SessionsPage",
    "SnapshotResult",
    "Stats",
    "VerifyResult",
]


def _mode_name(mode: int) -> str:
    return MODE_NAMES.get(mode, str(mode))


@dataclass(frozen=True)
class HelloInfo:
    """The ``hello`` reply (12.1): the daemon's version and limits, and its settings.

    The settings (tags 59 to 66) are None when the daemon does not send them (an older daemon).
    All are whole seconds except ``dedup_window_ms``; :attr:`dedup_window` gives it in seconds.

    - ``dedup_window_ms``: how long a refresh result, and an issue result with an idempotency
      key, is handed out again (to the millisecond): the window within which repeating a
      ``refresh`` (same fingerprint) or an ``issue`` (same idempotency key and request) is safe
      (section 14.4). A ``refresh`` repeated after it still gets the same pair while that pair
      is unused, within the daemon's rotation grace (not reported here).
    - ``idle_ttl``: session mode's idle TTL, also the largest ``ttl`` a session-mode ``issue``
      may ask for.
    - ``renew_below``, ``renew_by``: a verify extends a session by ``renew_by`` when less than
      ``renew_below`` remains of its idle expiry.
    - ``access_ttl``: pair mode's access-token TTL, also the largest ``ttl`` in pair mode.
    - ``refresh_token_ttl``: the refresh-token TTL, the largest ``refresh_ttl``.
    - ``max_login_lifetime``: a login's maximum lifetime, the largest ``max_lifetime``.
    - ``leeway``: clock skew tolerated on a token's ``exp``.
    - ``store_healthy`` (tag 67, as ``ping`` reports it): whether the state store serves every
      operation now; None from a daemon that does not send it.
    """

    protocol_version: int
    server_name: str
    max_frame_size: int
    dedup_window_ms: int | None = None
    idle_ttl: int | None = None
    renew_below: int | None = None
    renew_by: int | None = None
    access_ttl: int | None = None
    refresh_token_ttl: int | None = None
    max_login_lifetime: int | None = None
    leeway: int | None = None
    store_healthy: bool | None = None

    @property
    def dedup_window(self) -> float | None:
        """The dedup window in seconds (``dedup_window_ms / 1000``), None when not reported."""
        return None if self.dedup_window_ms is None else self.dedup_window_ms / 1000

    @property
    def reports_settings(self) -> bool:
        """True when the daemon reported its settings (tags 59 to 66; a newer daemon)."""
        return self.dedup_window_ms is not None


@dataclass(frozen=True)
class IssueResult:
    """The ``issue`` reply (12.3), also the ``refresh`` reply (12.6, always pair mode).

    Session mode fills ``session_token``; pair mode ``access_token``, ``refresh_token`` and
    ``refresh_expires_at``. ``expires_at`` is the idle expiry (session) or the access token's
    ``exp`` (pair).
    """

    mode: int
    session_id: str
    expires_at: int
    max_expires_at: int
    session_token: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    refresh_expires_at: int | None = None

    @property
    def mode_name(self) -> str:
        return _mode_name(self.mode)

    @property
    def token(self) -> str:
        """The token to hand to the user agent: the session token, else the access token."""
        token = self.session_token if self.session_token is not None else self.access_token
        if token is None:
            raise ValueError(f"no token in an issue result of mode {self.mode_name}")
        return token


@dataclass(frozen=True)
class VerifyResult:
    """An accepted ``verify`` or ``renew`` (12.4, 12.5): status ``ok``, ``renewed`` or
    ``refreshed``.

    ``renewed`` is true exactly when this call moved the session's idle expiry. ``claims`` is
    ``claims_json`` parsed; ``expires_at`` is the idle expiry after this call (session token) or
    the token's ``exp`` (access token); ``token_expires_at`` is the token's own ``exp``.

    ``refreshed`` is true when a ``verify`` given the pair's refresh token found the access token
    expired (and nothing else wrong with it) and rotated the pair, as ``refresh`` does: the
    other fields then describe the *new* access token, and ``access_token``, ``refresh_token``,
    ``refresh_expires_at`` and ``max_expires_at`` carry the new pair (also as :attr:`pair`), which
    the caller must hand back to its client: the refresh token it presented is spent. They are
    None otherwise.

    ``cacheable_until`` is the daemon's ``cacheable_until(68)`` (12.16): on a tracking connection
    (the near cache, :class:`tokend_client.Client`'s ``near_cache``), the Unix time until which
    this answer may be given again without asking the daemon; None otherwise. ``local`` is true
    when the answer came from the client's near cache, not from the daemon: it is then the
    cached reply with status ``ok`` and ``renewed`` false (nothing was renewed).
    """

    status: int
    renewed: bool
    mode: int
    subject: str
    session_id: str
    claims: Mapping[str, Any] = field(repr=False)
    claims_json: str = field(repr=False)
    expires_at: int
    token_expires_at: int
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    refresh_expires_at: int | None = None
    max_expires_at: int | None = None
    cacheable_until: int | None = None
    local: bool = False

    @property
    def refreshed(self) -> bool:
        """Whether this verify rotated the pair (status ``refreshed``): a new pair is here."""
        return self.status == Status.REFRESHED

    @property
    def pair(self) -> IssueResult | None:
        """The new pair of a ``refreshed`` verify, as :meth:`Client.refresh` would return it;
        None for ``ok`` and ``renewed``."""
        if (self.access_token is None or self.refresh_token is None
                or self.refresh_expires_at is None or self.max_expires_at is None):
            return None
        return IssueResult(mode=self.mode, session_id=self.session_id,
                           expires_at=self.token_expires_at, max_expires_at=self.max_expires_at,
                           access_token=self.access_token, refresh_token=self.refresh_token,
                           refresh_expires_at=self.refresh_expires_at)

    @property
    def status_name(self) -> str:
        return status_name(self.status)

    @property
    def mode_name(self) -> str:
        return _mode_name(self.mode)


@dataclass(frozen=True)
class NearCacheStats:
    """The counters of a client's near cache (``Client.near_cache_stats()``), since the client
    was made.

    - ``hits``: verifies answered from the cache; ``misses``: verifies sent to the daemon
      (whatever their answer).
    - ``invalidations``: invalidation frames applied (12.17), flushes included.
    - ``flushes``: times the whole cache was dropped: a ``flush`` frame (or a frame naming
      nothing it knows), and the end of a connection (closed, failed, lost, replaced).
    - ``evictions``: answers dropped to keep the cache within its size (least recently used).
    - ``entries``: answers held now (some may have expired; they are dropped when looked up).
    - ``tracking``: whether the current connection tracks (its ``track`` was accepted). False
      before the first connection, after the connection ended, and with a daemon that does
      not know ``track`` (then nothing is cached).
    """

    hits: int = 0
    misses: int = 0
    invalidations: int = 0
    flushes: int = 0
    evictions: int = 0
    entries: int = 0
    tracking: bool = False


@dataclass(frozen=True)
class RevokeResult:
    """The ``revoke`` reply (12.7): how many sessions and families this call newly revoked."""

    count: int


@dataclass(frozen=True)
class Stats:
    """The ``stats`` reply (12.8): counters by name. Names this client does not know are kept."""

    counters: Mapping[str, int]

    def __getitem__(self, name: str) -> int:
        return self.counters[name]

    def __contains__(self, name: object) -> bool:
        return name in self.counters

    def __iter__(self) -> Iterator[str]:
        return iter(self.counters)

    def get(self, name: str, default: int = 0) -> int:
        return self.counters.get(name, default)

    def op(self, operation: str) -> int:
        """Responses sent for an operation, refusals included (``op.<name>``)."""
        return self.get(f"op.{operation}")

    def status(self, status: str | Status) -> int:
        """Responses sent with a status (``status.<name>``)."""
        name = status.wire_name if isinstance(status, Status) else status
        return self.get(f"status.{name}")


@dataclass(frozen=True)
class SessionInfo:
    """A ``session(48)`` record of the ``sessions`` reply (12.9): a session or a family."""

    session_id: str
    subject: str
    mode: int
    state: int
    created_at: int
    expires_at: int
    max_expires_at: int

    @property
    def mode_name(self) -> str:
        return _mode_name(self.mode)

    @property
    def state_name(self) -> str:
        return STATE_NAMES.get(self.state, str(self.state))


@dataclass(frozen=True)
class SessionsPage:
    """One page of ``sessions``; ``next_cursor`` is None on the last page."""

    sessions: list[SessionInfo]
    next_cursor: str | None


@dataclass(frozen=True)
class KeyInfo:
    """A ``key(50)`` record (12.10, 12.12)."""

    kid: str
    algorithm: str
    signing: bool
    created_at: int


@dataclass(frozen=True)
class SnapshotResult:
    """The ``snapshot`` reply (12.13): records written, and a summary for people."""

    count: int
    message: str
