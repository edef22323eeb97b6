"""The explorer's file downloads, streamed by a route of the explorer's own server.

Streamlit's ``st.download_button`` holds whatever it serves in memory (bytes, a file or a
callable's result, read whole) until two script runs later: one full export grew the process
by 500 MiB (issue 12 §4). Instead the Overview asks `Tickets.issue` for a link to the current
view and draws it; `ui.server` answers ``<base>/fmw/export/<token>`` by running the export
when the link is followed and sending the query layer's chunks as they come, so nothing but a
chunk is held in memory and no temporary file waits on disk.

A token is 128 random bits, bound to the browser that was shown it (Streamlit's XSRF cookie,
compared by digest), and lives while the page that drew it is open (its Streamlit session)
or `TTL_S` after that page was last drawn, at most `MAX_AGE_S`. Tokens are never logged.

A ticket also carries who it was issued to (subject and name) and where to write an audit
row: a download of a scoped user's rows is audited before it streams (`ui.server`).
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import html
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from query import Engine, QuerySpec

#: Streamlit's XSRF cookie: one random value per browser, sent with every request to it.
BROWSER_COOKIE = "_streamlit_xsrf"
#: A link stays valid this long after the page that drew it was last drawn (seconds)...
TTL_S = 600.0
#: ... or while that page is still open, but never longer than this after it was issued.
MAX_AGE_S = 8 * 3600.0
#: Where the route lives, under the explorer's base path.
ROUTE = "fmw/export"
#: The downloads are links to the explorer's download route, drawn as Streamlit's buttons.
ICON = '<span class="fmw-dl-icon" aria-hidden="true">download</span>'
STYLE = """<style>
.fmw-dl {display: flex; align-items: center; justify-content: center; gap: 0.4rem;
  width: 100%; min-height: 2.5rem; padding: 0.25rem 0.75rem; border-radius: 0.5rem;
  box-sizing: border-box; font-weight: 400; text-decoration: none !important;
  border: 1px solid rgba(49, 51, 63, 0.2); user-select: none; line-height: 1.6;}
.fmw-dl-primary {background: #ff4b4b; border-color: #ff4b4b; color: #fff !important;}
.fmw-dl-primary:hover {background: #ff3333; border-color: #ff3333;}
.fmw-dl-secondary {background: #fff; color: rgb(49, 51, 63) !important;}
.fmw-dl-secondary:hover {border-color: #ff4b4b; color: #ff4b4b !important;}
.fmw-dl-icon {font-family: 'Material Symbols Rounded'; font-size: 1.25rem; line-height: 1;
  font-feature-settings: 'liga'; -webkit-font-feature-settings: 'liga';}
.fmw-dl[aria-disabled='true'] {opacity: 0.45; cursor: not-allowed;}
</style>"""


class AuditWriter(Protocol):
    """Writes a download's audit row (`ui.usage.LedgerIO`); raises when it cannot."""

    def audit_download(self, download: Any) -> None: ...


@dataclass(frozen=True)
class Ticket:
    """What one download link gives: every row of `spec` in `fmt`, named `name`."""

    engine: Engine
    version: int
    spec: QuerySpec
    fmt: str
    tz: str
    name: str
    session: str
    browser: str | None  # digest of the browser's cookie token; None: the browser sent none
    issued: float
    renewed: float
    #: Who the link was drawn for (the signed-in viewer), for the audit row of a scoped
    #: user's download; `ledger` writes that row (None: nowhere, so such a download is refused).
    subject: str | None = None
    user_name: str | None = None
    ledger: AuditWriter | None = None


def browser_id(cookie: str | None) -> str | None:
    """A digest of the token inside Streamlit's XSRF cookie (``2|mask|masked|time``: the
    mask changes each time the cookie is set, the token does not), or None."""
    if not cookie:
        return None
    value = cookie.strip("\"'")
    try:
        if value.startswith("2|"):
            _, mask_hex, masked_hex, _stamp = value.split("|")
            mask, masked = binascii.a2b_hex(mask_hex), binascii.a2b_hex(masked_hex)
            token = bytes(b ^ mask[i % 4] for i, b in enumerate(masked))
        else:
            token = value.encode()
    except (ValueError, IndexError, binascii.Error):
        return None
    return hashlib.sha256(b"fmw-download\0" + token).hexdigest() if token else None


def _same_view(a: Ticket, b: Ticket) -> bool:
    return (a.engine is b.engine and a.version == b.version and a.spec == b.spec
            and a.fmt == b.fmt and a.tz == b.tz and a.name == b.name and a.browser == b.browser
            and a.subject == b.subject and a.user_name == b.user_name)


class Tickets:
    """The live download tokens of this process (thread-safe): at most one per session and
    format, so the table stays as small as the number of open pages."""

    def __init__(self, session_alive: Callable[[str], bool] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, Ticket] = {}
        self._slots: dict[tuple[str, str], str] = {}
        self._alive = session_alive or _session_alive
        self._clock = clock

    def issue(self, engine: Engine, version: int, spec: QuerySpec, fmt: str, *, tz: str,
              name: str, session: str, browser: str | None, subject: str | None = None,
              user_name: str | None = None, ledger: AuditWriter | None = None) -> str:
        """A token for this view (the same one while the view is unchanged), renewed."""
        now = self._clock()
        want = Ticket(engine, version, spec, fmt, tz, name, session, browser, now, now,
                      subject, user_name, ledger)
        with self._lock:
            self._sweep(now)
            old_token = self._slots.get((session, fmt))
            old = self._tokens.get(old_token) if old_token else None
            if old_token and old is not None and _same_view(old, want):
                self._tokens[old_token] = replace(old, renewed=now)
                return old_token
            if old_token:
                self._tokens.pop(old_token, None)
            token = secrets.token_urlsafe(16)  # 128 bits
            self._tokens[token] = want
            self._slots[(session, fmt)] = token
            return token

    def claim(self, token: str, browser: str | None) -> Ticket | None:
        """The ticket of `token` when it is live and `browser` is the one it was issued to.

        Raises:
            PermissionError: the token is live but was issued to another browser.
        """
        now = self._clock()
        with self._lock:
            ticket = self._tokens.get(token)
        if ticket is None or not self._live(ticket, now):
            return None
        if ticket.browser is not None and not (
                browser is not None and hmac.compare_digest(ticket.browser, browser)):
            raise PermissionError("this download link belongs to another browser")
        return ticket

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)

    def _live(self, ticket: Ticket, now: float) -> bool:
        if now - ticket.issued > MAX_AGE_S:
            return False
        return now - ticket.renewed <= TTL_S or self._alive(ticket.session)

    def _sweep(self, now: float) -> None:
        dead = [t for t, ticket in self._tokens.items() if not self._live(ticket, now)]
        for token in dead:
            ticket = self._tokens.pop(token)
            if self._slots.get((ticket.session, ticket.fmt)) == token:
                del self._slots[(ticket.session, ticket.fmt)]


def _session_alive(session: str) -> bool:
    """Whether the Streamlit session `session` is still open in a browser."""
    from streamlit.runtime import Runtime
    try:
        return Runtime.exists() and Runtime.instance().is_active_session(session)
    except RuntimeError:
        return False


#: The process's tokens: `ui.overview` issues them, `ui.server` claims them.
TICKETS = Tickets()


def route_path(base_url_path: str) -> str:
    """The route's path template on the server (Streamlit mounts its routes at the root,
    not under ``server.baseUrlPath``)."""
    base = base_url_path.strip("/")
    return f"/{base + '/' if base else ''}{ROUTE}/{{token}}"


def link(base_url_path: str, token: str) -> str:
    """The link the page draws (an absolute path: the browser keeps the host it is on)."""
    return route_path(base_url_path).replace("{token}", token)


def button(label: str, href: str | None, name: str, tip: str, *, primary: bool = False) -> str:
    """A download link drawn as a button (None: a disabled one); `tip` is its tooltip."""
    kind = "fmw-dl-primary" if primary else "fmw-dl-secondary"
    attrs = (f'href="{html.escape(href)}" download="{html.escape(name)}"' if href
             else 'aria-disabled="true"')
    return (f"{STYLE}<a class=\"fmw-dl {kind}\" data-testid=\"fmwDownload\" "
            f'{attrs} title="{html.escape(tip)}">{ICON}{html.escape(label)}</a>')
