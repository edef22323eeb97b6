"""A small client for the dev API (the Dev page's only way to dev data; never SQL).

Every call sends the admin's key as ``Authorization: Bearer``; problems come back as
`DevApiError` carrying the RFC 9457 title and detail, so the page can say what went wrong.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

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
    """The dev API at `base_url` (e.g. ``http://127.0.0.1:8000``) with one admin key."""

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
