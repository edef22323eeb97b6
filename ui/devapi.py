"""A small client for the dev API (the Dev page's only way to dev data; never SQL) and for
``/api/me`` (the API tokens page, with the signed-in user's access token).

Every call sends the admin's key (or the user's access token) as ``Authorization: Bearer``; problems come back as
`DevApiError` carrying the RFC 9457 title and detail, so the page can say what went wrong.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import fmw.relay as relay
from fmw.errors import FmwError

TIMEOUT_S = 15.0


class DevApiError(FmwError):
    """The dev API refused or could not be reached (`status` 0)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        super().__init__(f"{title}: {detail}" if detail and detail != title else title)

    @property
    def bad_key(self) -> bool:
        return self.status == 401


@dataclass(frozen=True)
class DevApi:
    """The dev API at `base_url` (e.g. ``http://127.0.0.1:8000``) with one admin key, or an
    admin's provider access token (``auth.mode = "oidc"``)."""

    base_url: str
    key: str
    timeout_s: float = TIMEOUT_S
    #: The person's address and the relay key (fmw.relay): the API then checks, rate-limits
    #: and audits that address instead of the explorer's own.
    client: str | None = None
    relay_key: bytes | None = None

    def _call(self, method: str, path: str, params: dict[str, Any] | None = None,
              body: Any = None) -> Any:
        target = path
        if params:
            target += "?" + urlencode({k: v for k, v in params.items() if v is not None})
        url = self.base_url.rstrip("/") + target
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json",
                   **({"Content-Type": "application/json"} if data is not None else {})}
        if self.client is not None and self.relay_key is not None:
            headers.update(relay.sign(self.relay_key, self.client, method, target))
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise _problem(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DevApiError(0, "API not reachable",
                              f"{self.base_url} did not answer ({reason}); is the API running "
                              "(`fmw serve` or `fmw up`)?") from None
        return json.loads(raw) if raw else None

    # -- calls --------------------------------------------------------------------------------

    def check(self) -> None:
        """Raises DevApiError unless the key is valid (and this address is an admin one)."""
        self._call("GET", "/api/dev/runs", {"limit": 1})

    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/dev/runs", {"limit": limit})["data"])

    def run(self, run_id: int, errors_limit: int = 500) -> dict[str, Any]:
        return dict(self._call("GET", f"/api/dev/runs/{run_id}",
                               {"errors_limit": errors_limit}))

    def summary(self, days: int = 7, yesterday: bool = False) -> dict[str, Any]:
        return dict(self._call("GET", "/api/dev/runs/summary",
                               {"days": days, "yesterday": str(yesterday).lower()}))

    def start_sync(self) -> dict[str, Any]:
        return dict(self._call("POST", "/api/dev/sync/run"))

    def allow_list(self) -> dict[str, Any]:
        return dict(self._call("GET", "/api/dev/allow_list"))

    def put_allow_list(self, entries: list[dict[str, str]]) -> dict[str, Any]:
        return dict(self._call("PUT", "/api/dev/allow_list", body={"entries": entries}))

    def roles(self) -> dict[str, Any]:
        """The role map (sign-on): ``config`` (read-only), ``entries`` (stored), ``last_error``."""
        return dict(self._call("GET", "/api/dev/roles"))

    def put_roles(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Replace the stored role-map entries (a 400 names the bad entry)."""
        return dict(self._call("PUT", "/api/dev/roles", body={"entries": entries}))

    # -- the signed-in user (auth.mode = "oidc"; `key` is their provider access token) ------

    def me(self) -> dict[str, Any]:
        return dict(self._call("GET", "/api/me"))

    def my_tokens(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/me/tokens")["tokens"])

    def make_token(self, name: str, days: int) -> dict[str, Any]:
        """A new personal token; its secret (``token``) is in this answer only."""
        return dict(self._call("POST", "/api/me/tokens", body={"name": name, "days": days}))

    def revoke_token(self, prefix: str) -> dict[str, Any]:
        return dict(self._call("DELETE", f"/api/me/tokens/{quote(prefix, safe='')}"))

    def health(self) -> dict[str, Any]:
        try:
            return dict(self._call("GET", "/api/dev/health"))
        except DevApiError as exc:
            if exc.status == 503 and isinstance(getattr(exc, "body", None), dict):
                return dict(exc.body)  # type: ignore[attr-defined]
            raise


def _problem(exc: urllib.error.HTTPError) -> DevApiError:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = {}
    title = str(body.get("title") or exc.reason or "HTTP error")
    detail = str(body.get("detail") or "")
    err = DevApiError(exc.code, title, detail)
    err.body = body  # type: ignore[attr-defined]
    return err
