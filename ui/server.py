"""The explorer's server: Streamlit's ASGI app (``st.App``) running ``ui/app.py``, plus FMW's
download route ``<base>/fmw/export/<token>`` (see `ui.downloads`).

``fmw ui`` starts ``streamlit run ui/server.py -- ...`` (`ui.launch`); Streamlit finds the
``app`` below and serves it with its own uvicorn, with the same flags (address, port, base
path, XSRF) as the plain script. Streamlit mounts user routes at the server root, not under
``server.baseUrlPath``, so the route's path carries the base path itself: behind Nginx it lies
under ``location /streamlit/`` and gets the same allow list as the pages.

At most `EXPORTS_AT_ONCE` exports run together; more downloads wait their turn (Nginx's
``/streamlit/`` timeout is a day). Each streams the query layer's chunks as they are made.

A download of a scoped user's rows (its ticket's spec has a row scope) is audited like the
API's exports: one audit-log row naming the user is written before the first byte is sent;
when it cannot be written (PostgreSQL down) the download is refused (503).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

if __package__ in (None, ""):  # run as a script by Streamlit: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio.to_thread  # noqa: E402
import streamlit as st  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.types import Receive, Scope, Send  # noqa: E402
from streamlit import config as st_config  # noqa: E402

from fmw.errors import FmwError  # noqa: E402
from ledger.explorer import DownloadAudit  # noqa: E402
from ui import reads  # noqa: E402
from ui.context import pick_client  # noqa: E402
from ui.downloads import BROWSER_COOKIE, TICKETS, Ticket, browser_id, route_path  # noqa: E402

log = logging.getLogger("fmw.ui.downloads")

#: Exports running at the same time; further downloads wait (each holds a DuckDB scan).
EXPORTS_AT_ONCE = 4
_slots: asyncio.Semaphore | None = None
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer"}


def disposition(name: str) -> str:
    """``attachment`` with the name as RFC 6266/5987 UTF-8 and an ASCII fallback."""
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in name)
    return (f"attachment; filename=\"{ascii_name}\"; "
            f"filename*=UTF-8''{urllib.parse.quote(name, safe='')}")


def _refused(status: int, text: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers=HEADERS)


class _Stream(StreamingResponse):
    """Sends `chunks` (a blocking iterator, advanced in a worker thread) and, however the
    response ends (done, client gone, error), closes it and frees its export slot."""

    def __init__(self, chunks: Iterator[bytes], first: bytes, slots: asyncio.Semaphore,
                 media_type: str, headers: dict[str, str]) -> None:
        self._chunks, self._slots = chunks, slots
        super().__init__(self._body(first), media_type=media_type, headers=headers)

    async def _body(self, first: bytes) -> AsyncIterator[bytes]:
        if first:
            yield first
        while True:
            # not abandoned on cancel: the thread finishes its chunk before we close
            try:
                chunk = await anyio.to_thread.run_sync(next, self._chunks, None)
            except FmwError as exc:  # cut the connection: a short file must not look whole
                log.warning("a download stopped halfway: %s", exc)
                raise
            if chunk is None:
                return
            yield chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                await anyio.to_thread.run_sync(close)
            self._slots.release()


def _open(ticket: Ticket) -> tuple[str, Iterator[bytes], bytes]:
    """Start the export (in a worker thread): its content type, chunks and first chunk."""
    export = reads.excel_export(ticket.engine, ticket.version, ticket.spec, ticket.fmt,
                                ticket.tz)
    chunks = iter(export.chunks)
    try:
        first = next(chunks, b"")
    except BaseException:
        getattr(chunks, "close", lambda: None)()
        raise
    return export.content_type, chunks, first


def audit_record(ticket: Ticket, client: str, path: str) -> DownloadAudit:
    """The audit row of a scoped user's download; `path` is the route's, without the token."""
    scope = ticket.spec.scope.text() if ticket.spec.scope is not None else "all rows"
    return DownloadAudit(client=client, path=path, subject=ticket.subject,
                         user_name=ticket.user_name,
                         detail=f"explorer download {ticket.fmt} {ticket.name} by a scoped "
                                f"user ({scope})")


def _audit(ticket: Ticket, record: DownloadAudit) -> bool:
    """Write `record` (in a worker thread); False when it could not be written."""
    if ticket.ledger is None:
        log.error("a scoped download was refused: its ticket has no ledger to audit to")
        return False
    try:
        ticket.ledger.audit_download(record)
    except Exception as exc:  # any failure: not audited, so not sent
        log.error("a scoped download of %s was refused: its audit record could not be "
                  "written: %s", ticket.name, exc)
        return False
    return True


def _close(chunks: Iterator[bytes]) -> None:
    getattr(chunks, "close", lambda: None)()


async def export(request: Request) -> Response:
    """``GET <base>/fmw/export/<token>``: the view the token was issued for, as a file."""
    global _slots
    token = str(request.path_params.get("token", ""))
    try:
        ticket = TICKETS.claim(token, browser_id(request.cookies.get(BROWSER_COOKIE)))
    except PermissionError:
        return _refused(403, "This download link was made for another browser. Open the "
                             "explorer's Overview and click the download there.")
    if ticket is None:
        return _refused(404, "This download link has expired or does not exist. Reload the "
                             "explorer's Overview page and click the download again.")
    if _slots is None:
        _slots = asyncio.Semaphore(EXPORTS_AT_ONCE)
    await _slots.acquire()
    try:
        media, chunks, first = await anyio.to_thread.run_sync(_open, ticket)
    except FmwError as exc:
        _slots.release()
        log.warning("a download of %s failed: %s", ticket.name, exc)
        return _refused(409, f"The download could not be made: {exc}")
    except BaseException:
        _slots.release()
        raise
    if ticket.spec.scope is not None:  # audited before a byte is sent, or not sent
        client = pick_client(request.client.host if request.client else None,
                             dict(request.headers))
        record = audit_record(ticket, client, request.url.path.rsplit("/", 1)[0])
        if not await anyio.to_thread.run_sync(_audit, ticket, record):
            await anyio.to_thread.run_sync(_close, chunks)
            _slots.release()
            return _refused(503, f"{ticket.name} was not downloaded: its audit record could "
                                 "not be written (the ledger database is not reachable). "
                                 "Try again later.")
    headers = {**HEADERS, "Content-Disposition": disposition(ticket.name)}
    return _Stream(chunks, first, _slots, media, headers)


def routes(base_url_path: str) -> list[Route]:
    return [Route(route_path(base_url_path), export, methods=["GET"])]


app = st.App("app.py", routes=routes(str(st_config.get_option("server.baseUrlPath") or "")))
