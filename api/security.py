"""Who may call what: the in-memory allow list (refreshed from PostgreSQL), and rate limits.

The allow list is read on every request, so it lives in memory. It is reloaded in the
background when older than `refresh_s` and at once after a PUT; when PostgreSQL is down the
last good copy stays in force (also across restarts, through a small JSON backup file).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.access import AllowEntry, Network, Role, parse_entries

log = logging.getLogger(__name__)

#: Local use works out of the box: the machine's own loopback address (not the whole
#: 127.0.0.0/8, so other loopback addresses behave like any remote client).
LOOPBACK: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.1/32"),
                                 ipaddress.ip_network("::1/128"))
_RANK = {"user": 1, "admin": 2}


def parse_address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """A client address from REMOTE_ADDR; IPv4-mapped IPv6 is unwrapped, zones dropped."""
    if not text:
        return None
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


@dataclass(frozen=True)
class AllowListState:
    entries: tuple[AllowEntry, ...]
    origin: str  # "database", "backup" or "none"
    loaded_at: float | None  # wall-clock seconds
    last_error: str | None


class AllowList:
    """The allow list in memory, with the role each address gets.

    Args:
        loader: reads the list from PostgreSQL (raises when it cannot).
        refresh_s: reload in the background when the copy is older than this.
        allow_loopback: 127.0.0.1 and ::1 are admin addresses without an entry.
        backup: JSON file holding the last good copy, used when starting with PostgreSQL down.
    """

    def __init__(self, loader: Callable[[], list[AllowEntry]], *, refresh_s: float = 30.0,
                 allow_loopback: bool = True, backup: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._loader = loader
        self._refresh_s = refresh_s
        self._allow_loopback = allow_loopback
        self._backup = backup
        self._clock = clock
        self._lock = threading.Lock()
        self._refreshing = False
        self._fetched = -math.inf
        self._state = AllowListState((), "none", None, None)
        self._compiled: tuple[tuple[Network, Role], ...] = ()

    @property
    def state(self) -> AllowListState:
        return self._state

    def _install(self, entries: Sequence[AllowEntry], origin: str, error: str | None) -> None:
        compiled = tuple(sorted(((e.cidr, e.role) for e in entries),
                                key=lambda t: -t[0].prefixlen))
        with self._lock:
            self._compiled = compiled
            self._state = AllowListState(tuple(entries), origin, time.time(), error)

    def load(self) -> bool:
        """Reload now; returns False (keeping the last good copy) when the loader fails."""
        try:
            entries = self._loader()
        except Exception as exc:
            self._fetched = self._clock()
            with self._lock:
                self._state = AllowListState(self._state.entries, self._state.origin,
                                             self._state.loaded_at, str(exc))
            if self._state.origin == "none":
                self._load_backup()
            log.warning("allow list not refreshed, keeping the last good copy: %s", exc)
            return False
        self._fetched = self._clock()
        self._install(entries, "database", None)
        self._save_backup(entries)
        return True

    def replace(self, entries: Sequence[AllowEntry]) -> None:
        """Install a list just written to PostgreSQL (no reload round trip)."""
        self._fetched = self._clock()
        self._install(entries, "database", None)
        self._save_backup(entries)

    def maybe_refresh(self) -> None:
        """Kick a background reload when stale; never blocks the request that calls it."""
        if self._clock() - self._fetched < self._refresh_s:
            return
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def work() -> None:
            try:
                self.load()
            finally:
                self._refreshing = False

        threading.Thread(target=work, name="fmw-allowlist-refresh", daemon=True).start()

    def role(self, address: str | None) -> Role | None:
        """The best role of `address` (admin over user), or None when it is not allowed."""
        addr = parse_address(address)
        if addr is None:
            return None
        best: Role | None = None
        if self._allow_loopback and any(addr in n for n in LOOPBACK if n.version == addr.version):
            best = "admin"
        for net, role in self._compiled:
            if net.version == addr.version and addr in net and (
                    best is None or _RANK[role] > _RANK[best]):
                best = role
        return best

    def _save_backup(self, entries: Sequence[AllowEntry]) -> None:
        if self._backup is None:
            return
        try:
            self._backup.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._backup.with_suffix(".tmp")
            tmp.write_text(json.dumps([e.as_json() for e in entries]), encoding="utf-8", newline="\n")
            tmp.replace(self._backup)
        except OSError as exc:
            log.warning("could not write the allow-list backup %s: %s", self._backup, exc)

    def _load_backup(self) -> None:
        if self._backup is None or not self._backup.is_file():
            return
        try:
            entries = parse_entries(json.loads(self._backup.read_text(encoding="utf-8")))
        except Exception as exc:
            log.warning("allow-list backup %s unusable: %s", self._backup, exc)
            return
        self._install(entries, "backup", self._state.last_error)
        log.warning("using the allow-list backup %s (%d entries) until PostgreSQL is back",
                    self._backup, len(entries))


class RateLimiter:
    """Token bucket per key (client address): `per_minute` requests, bursts up to `burst`.

    Memory is bounded: at most `max_keys` buckets, the least recently used dropped first.
    """

    def __init__(self, per_minute: float, burst: int | None = None, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, int(per_minute)))
        self._max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Spend one token; returns 0 when allowed, else the seconds until the next token."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return wait


class AllowListListener:
    """Reloads `allow_list` as soon as PostgreSQL announces a change (LISTEN/NOTIFY), so every
    FMW process applies a new list within about a second; the periodic refresh and the last
    good copy remain the fallback while PostgreSQL is away."""

    def __init__(self, listen: Callable[[Callable[[], object], threading.Event], None],
                 allow_list: AllowList) -> None:
        self._listen = listen
        self._allow_list = allow_list
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fmw-allowlist-listen",
                                        daemon=True)

    def start(self) -> AllowListListener:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._listen(self._allow_list.load, self._stop)
        except Exception:  # a listener bug must not take the API down: the refresh remains
            log.exception("allow-list listener stopped")

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
