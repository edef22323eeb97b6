"""`fmw smoke`: after a deploy (or any time), check the running API the way users reach it.

Checks, in order: the dev health endpoint (database and snapshot), a v1 query, the snapshot's
age, and the dev API with a key (and that it refuses a request without one). Without a key
given (`--key`, `--key-file` or `smoke_key_file`) a temporary one is created in the ledger for
the run and revoked afterwards, so a deploy script needs no secret.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from fmw.errors import FmwError
from fmw.settings import Settings
from ops.config import api_base_url, ops_setting

TEMP_KEY_NAME = "fmw smoke (temporary)"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class SmokeReport:
    url: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


@dataclass(frozen=True)
class Reply:
    status: int  # 0: no answer
    headers: dict[str, str]
    body: bytes
    error: str = ""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def fetch(url: str, key: str | None = None, timeout: float = 10.0) -> Reply:
    """GET `url`; never raises: a refused connection is status 0 with the reason."""
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - our own URL
            return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Reply(0, {}, b"", f"no answer from {url}: {reason}")


def _detail(r: Reply) -> str:
    if r.status == 0:
        return r.error
    body = r.json()
    if isinstance(body, dict) and body.get("detail"):
        return f"HTTP {r.status}: {body['detail']}"
    return f"HTTP {r.status}"


def run_checks(base: str, key: str, max_age_s: float, timeout: float = 10.0
               ) -> tuple[Check, ...]:
    """The checks against the API at `base` (e.g. ``http://127.0.0.1:8000``)."""
    checks = []
    h = fetch(f"{base}/api/dev/health", key, timeout)
    body = h.json() if h.status in (200, 503) else None
    if h.status == 200 and isinstance(body, dict) and body.get("status") == "ok":
        snap = body.get("snapshot") or {}
        checks.append(Check("health", True, f"database ok, snapshot {snap.get('name', '?')}"))
    elif isinstance(body, dict) and "database" in body:
        db = body.get("database") or {}
        snap = body.get("snapshot") or {}
        checks.append(Check("health", False, f"HTTP {h.status}, {body.get('status')}: database "
                            f"{db.get('status')} {db.get('detail', '')}".rstrip()
                            + f"; snapshot {snap.get('status')} {snap.get('detail', '')}".rstrip()))
    else:
        checks.append(Check("health", False, _detail(h)))
    # the key goes with the v1 query too: with sign-on (auth.mode = "oidc") v1 needs a
    # credential, and an admin key is one; without sign-on v1 ignores it
    v1 = fetch(f"{base}/api/v1/features?format=json&limit=1", key, timeout)
    version = v1.headers.get("x-snapshot-version", "")
    if v1.status == 200 and version not in ("", "none"):
        checks.append(Check("v1 query", True, f"{v1.headers.get('x-total-count', '?')} features "
                            f"in snapshot {_version(version)}"))
    else:
        checks.append(Check("v1 query", False, _detail(v1) + (
            "; no snapshot published" if v1.status == 200 else "")))
    age = (body or {}).get("snapshot", {}).get("age_s") if isinstance(body, dict) else None
    if isinstance(age, int | float):
        ok = age <= max_age_s
        checks.append(Check("snapshot age", ok, f"{_hours(age)} old (limit {_hours(max_age_s)})"))
    else:
        checks.append(Check("snapshot age", False, "unknown: the health check gave no snapshot"))
    runs = fetch(f"{base}/api/dev/runs?limit=1", key, timeout)
    anon = fetch(f"{base}/api/dev/runs?limit=1", None, timeout)
    if runs.status == 200 and anon.status == 401:
        checks.append(Check("dev API", True, "answers with the key, refuses without (401)"))
    elif runs.status != 200:
        checks.append(Check("dev API", False, "with the key: " + _detail(runs)))
    else:
        checks.append(Check("dev API", False, f"a request without a key got HTTP {anon.status}, "
                            "expected 401"))
    return tuple(checks)


def _version(header: str) -> str:
    return f"v{int(header):06d}" if header.isdigit() else header


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.1f} s"


def wait_until_up(base: str, wait_s: float, timeout: float = 5.0) -> Reply:
    """Poll the API until it answers at all (any HTTP status) or `wait_s` passes."""
    deadline = time.monotonic() + wait_s
    while True:
        r = fetch(f"{base}/api/v1/features?format=json&limit=1", None, timeout)
        if r.status != 0 or time.monotonic() >= deadline:
            return r
        time.sleep(0.5)


def smoke(settings: Settings, *, url: str | None = None, key: str | None = None,
          wait_s: float = 0.0, timeout: float = 10.0) -> SmokeReport:
    """Run the smoke checks against the API (`smoke_url`, default the API's own address).

    A missing key is replaced by a temporary one, revoked when the checks end; when the
    database is down that fails as its own check.
    """
    base = (url or api_base_url(settings)).rstrip("/")
    max_age = float(ops_setting(settings, "snapshot_max_age_hours")) * 3600
    up = wait_until_up(base, wait_s)
    if up.status == 0:
        return SmokeReport(base, (Check("reachable", False, up.error),))
    if key:
        return SmokeReport(base, run_checks(base, key, max_age, timeout))
    try:
        from ledger.access import create_key, revoke_key, session
        with session(settings, application_name="fmw-smoke") as conn:
            made = create_key(conn, TEMP_KEY_NAME)
    except FmwError as exc:
        return SmokeReport(base, (Check("temporary key", False, str(exc)),))
    try:
        return SmokeReport(base, run_checks(base, made.secret, max_age, timeout))
    finally:
        with session(settings, application_name="fmw-smoke") as conn:
            revoke_key(conn, str(made.key.id))
