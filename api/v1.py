"""v1: read-only features from the published snapshot, in five formats, cacheable.

Paging: JSON is always a page (``limit`` default 100, at most 10,000; ``cursor`` or ``offset``
for the next). The other formats stream every matching row unless ``limit`` or ``cursor`` is
given, in which case they return that page. Every response carries ``X-Total-Count`` and
``X-Snapshot-Version``; a page with more rows after it carries ``Link: <...>; rel="next"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlencode

import falcon

from api import params
from api.compress import accepts_gzip
from api.errors import Problem, bad_request
from api.respcache import CachedPage
from api.services import Services, api_setting
from fmw.settings import Settings
from query.encoders import CONTENT_TYPES, FORMATS, encode
from query.engine import TEXT_FORMATS, Engine
from query.errors import UnknownGroup
from query.fields import JSON_COLUMNS
from query.paging import decode_cursor
from query.plan import QuerySpec
from query.scope import RowScope
from query.snapshot import Snapshot, SnapshotReadError

#: Parameters of the API itself; every other parameter is a filter of the query layer.
API_PARAMS = ("format", "download", "version", "as_of", "bom", "neutralise")
_BY_MEDIA = {
    "text/csv": "csv", "application/json": "json", "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson", "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet", CONTENT_TYPES["xlsx"]: "xlsx",
}


def make_reader(settings: Settings) -> Engine:
    """The query engine v1 reads through (one per server; thread-safe)."""
    return Engine(settings)


def negotiate(req: falcon.Request) -> str:
    """The format: ``format=`` wins, then the first supported type in Accept, else CSV."""
    fmt = params.one(req, "format")
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise bad_request(f"parameter 'format' must be one of {', '.join(FORMATS)}, got "
                              f"{fmt!r}", parameter="format", valid=list(FORMATS))
        return fmt
    accept = req.get_header("Accept")
    if not accept:
        return "csv"
    ranked = []
    for i, part in enumerate(accept.split(",")):
        media, _, rest = part.strip().partition(";")
        q = 1.0
        for p in rest.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        ranked.append((-q, i, media.strip().lower()))
    for negq, _, media in sorted(ranked):
        if negq >= 0:
            continue
        if media in _BY_MEDIA:
            return _BY_MEDIA[media]
        if media in ("*/*", "text/*", "application/*"):
            return "csv" if media != "application/*" else "json"
    raise Problem(406, "Not Acceptable", f"none of the types in Accept ({accept}) is offered; "
                  f"use format= one of {', '.join(FORMATS)}", kind="not-acceptable",
                  valid=list(FORMATS))


def _version_param(req: falcon.Request) -> int | None:
    raw = params.one(req, "version")
    if raw is None or raw in ("", "current"):
        return None
    text = raw[1:] if raw[:1] in ("v", "V") else raw
    if not text.isdigit() or len(text) > 12:
        raise bad_request(f"parameter 'version' must be a snapshot version like 123 or "
                          f"v000123, got {raw!r}", parameter="version")
    return int(text)


def _as_of_param(req: falcon.Request) -> date | datetime | None:
    raw = params.one(req, "as_of")
    if raw is None or raw == "":
        return None
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
        return params.timestamp(req, "as_of")
    except ValueError:
        raise bad_request(f"parameter 'as_of' must be an ISO date or date-time, got {raw!r}",
                          parameter="as_of") from None


def _pairs(req: falcon.Request) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in req.params.items():
        for v in value if isinstance(value, list) else [value]:
            out.append((key, str(v)))
    return out


def etag_for(version: int, path: str, fmt: str, pairs: list[tuple[str, str]],
             scope: RowScope | None = None) -> str:
    """Weak ETag: the snapshot version, the normalised request (sorted parameters) and the
    caller's row scope (the same URL answers differently per scope)."""
    norm = "&".join(f"{k}={v}" for k, v in sorted(p for p in pairs if p[0] != "download"))
    seen = f"|scope={scope.key}" if scope is not None else ""
    digest = hashlib.sha256(f"{path}|{fmt}|{norm}{seen}".encode()).hexdigest()[:24]
    return f'W/"v{version}-{digest}"'


def _not_modified(req: falcon.Request, etag: str, modified: datetime) -> bool:
    inm = req.get_header("If-None-Match")
    if inm is not None:
        tags = [t.strip() for t in inm.split(",")]
        bare = etag[2:] if etag.startswith("W/") else etag
        return "*" in tags or any((t[2:] if t.startswith("W/") else t) == bare for t in tags)
    ims = req.get_header("If-Modified-Since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return modified.replace(microsecond=0) <= since
    return False


def _created(snap: Snapshot) -> datetime:
    ts = datetime.fromisoformat(snap.created_at)
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


class Features:
    """GET /api/v1/features[/{feature_group}] and the short forms /api/v1/all, /api/v1/{g}."""

    def __init__(self, svc: Services, *, grouped: bool) -> None:
        self.svc = svc
        self.grouped = grouped

    @property
    def engine(self) -> Engine:
        return self.svc.reader

    def on_get(self, req: falcon.Request, resp: falcon.Response,
               feature_group: str | None = None) -> None:
        self._handle(req, resp, feature_group)

    def on_head(self, req: falcon.Request, resp: falcon.Response,
                feature_group: str | None = None) -> None:
        self._handle(req, resp, feature_group)
        if resp.stream is not None:
            close = getattr(resp.stream, "close", None)
            if close is not None:
                close()
            resp.stream = None

    def _group(self, feature_group: str | None, snap: Snapshot,
               scope: RowScope | None) -> str | None:
        if feature_group is None:
            return None
        groups = snap.groups()
        if (params.GROUP_RE.match(feature_group) and feature_group in groups
                and (scope is None or scope.allows_group(feature_group))):
            return feature_group
        known = list(groups) if scope is None else scope.visible_groups(sorted(groups))
        raise UnknownGroup(feature_group, known, version=snap.version)

    def _handle(self, req: falcon.Request, resp: falcon.Response,
                feature_group: str | None) -> None:
        try:
            self._answer(req, resp, feature_group)
        except SnapshotReadError:
            # The current version failed a read and a fresh check found it damaged: "current"
            # now falls back, so answer once more (X-Snapshot-Fallback says so). A request
            # that named its version gets the 503 instead of another version.
            if any(req.get_param(p) for p in ("version", "as_of", "cursor")):
                raise
            self._answer(req, resp, feature_group)

    def _answer(self, req: falcon.Request, resp: falcon.Response,
                feature_group: str | None) -> None:
        fmt = negotiate(req)
        version, as_of = _version_param(req), _as_of_param(req)
        download = params.boolean(req, "download", False)
        bom = params.boolean(req, "bom", False)
        neutralise = params.boolean(req, "neutralise", False)
        pairs = _pairs(req)
        cursor = params.one(req, "cursor")
        if cursor and version is None and as_of is None:
            snap = self.engine.snapshot(decode_cursor(cursor).version)
        else:
            snap = self.engine.snapshot(version, as_of)
        who = getattr(req.context, "principal", None)
        scope: RowScope | None = who.scope if who is not None else None
        group = self._group(feature_group, snap, scope)
        pinned = version is not None or as_of is not None or bool(cursor)
        if not pinned:
            warm(self.svc)
        etag = etag_for(snap.version, req.path, fmt, pairs, scope)
        modified = _created(snap)
        resp.set_header("X-Snapshot-Version", str(snap.version))
        resp.etag = etag
        resp.last_modified = modified
        resp.cache_control = (["private", "max-age=86400", "immutable"] if pinned
                              else ["private", "no-cache"])
        resp.append_header("Vary", "Accept")
        if snap.fallback is not None:
            resp.set_header("X-Snapshot-Fallback", snap.fallback.message)
        if _not_modified(req, etag, modified):
            resp.status = falcon.HTTP_304
            return
        spec = dataclasses.replace(QuerySpec.from_params(pairs, feature_group=group,
                                                         ignore=API_PARAMS), scope=scope)
        use_version = snap.version if not cursor or version is not None else None
        paged = fmt == "json" or spec.limit is not None or spec.cursor is not None
        if download:
            resp.downloadable_as = f"features_{group or 'all'}_{snap.name}.{fmt}"
        resp.content_type = CONTENT_TYPES[fmt]
        fresh = _wants_fresh(req)
        if scope is not None and (download or not paged):
            # every export of a scoped user is audited, with the user (api.middleware)
            req.context.audit = True
            req.context.audit_detail = f"export {fmt} by a scoped user ({scope.text()})"[:500]
        if paged:
            self._page(req, resp, spec, fmt, use_version, etag, fresh, bom=bom,
                       neutralise=neutralise)
            return
        whole = not (pinned or spec.filters or spec.q or spec.columns or spec.order
                     or spec.offset or spec.limit is not None or scope is not None)
        if whole and not fresh:
            self._whole(req, resp, snap, group, fmt, bom=bom, neutralise=neutralise)
        else:
            self._stream(resp, spec, fmt, use_version, bom=bom, neutralise=neutralise)

    def _page(self, req: falcon.Request, resp: falcon.Response, spec: QuerySpec, fmt: str,
              version: int | None, key: str, fresh: bool, *, bom: bool,
              neutralise: bool) -> None:
        cache = self.svc.responses
        hit = cache.get(key) if cache is not None and not fresh else None
        if hit is None:
            hit = self._compute_page(req, spec, fmt, version, bom=bom, neutralise=neutralise)
            if cache is not None and "no-store" not in (req.get_header("Cache-Control") or ""):
                cache.put(key, hit)
        if hit.link is not None:
            resp.append_header("Link", f'<{hit.link}>; rel="next"')
        resp.set_header("X-Total-Count", str(hit.total))
        resp.data = hit.body

    def _compute_page(self, req: falcon.Request, spec: QuerySpec, fmt: str,
                      version: int | None, *, bom: bool, neutralise: bool) -> CachedPage:
        if fmt in TEXT_FORMATS:  # the text made in the page's own query
            page = self.engine.page_text(spec, fmt, version=version, bom=bom,
                                         neutralise=neutralise)
            total, cursor, count, body = page.total, page.next_cursor, page.rows, page.body
            served = page.version
        else:
            result = self.engine.query(spec, version=version)
            total, cursor, count = result.total or 0, result.next_cursor, result.rows.num_rows
            served = result.version
            body = b"".join(encode(result.rows.to_reader(), fmt, bom=bom, neutralise=neutralise,
                                   json_columns=JSON_COLUMNS))
        nxt = None
        if cursor is not None:
            kept = [(k, v) for k, v in _pairs(req) if k not in ("cursor", "offset")]
            nxt = f"{req.path}?{urlencode([*kept, ('cursor', cursor)])}"
        if fmt == "json":
            meta = {"total": total, "version": served, "next": nxt, "cursor": cursor,
                    "count": count}
            body = (b'{"data":' + body.strip() + b',"meta":' + params.dumps(meta).encode()
                    + b"}")
        return CachedPage(body, total, nxt)

    def _whole(self, req: falcon.Request, resp: falcon.Response, snap: Snapshot,
               group: str | None, fmt: str, *, bom: bool, neutralise: bool) -> None:
        """Every row of the table or of one group, current version: from the download cache."""
        groups = snap.groups()
        resp.set_header("X-Total-Count", str(groups[group] if group else sum(groups.values())))
        cache = self.svc.exports
        name = export_name(group, fmt, bom=bom, neutralise=neutralise)
        path = cache.get(snap.version, name) if cache is not None else None
        gz = cache.get(snap.version, name + ".gz") if path is not None and cache else None
        if gz is not None and accepts_gzip(req.get_header("Accept-Encoding")):
            resp.stream = open(gz, "rb")  # noqa: SIM115 - closed by the WSGI server
            resp.content_length = gz.stat().st_size
            resp.set_header("Content-Encoding", "gzip")
            return
        if path is not None:
            resp.stream = open(path, "rb")  # noqa: SIM115 - closed by the WSGI server
            resp.content_length = path.stat().st_size
            return
        spec = QuerySpec(feature_group=group)
        export = self.engine.export(spec, fmt, version=snap.version, bom=bom,
                                    neutralise=neutralise)
        chunks = export.chunks
        if cache is not None:
            chunks = cache.tee(snap.version, name, chunks)
        resp.stream = _Body(chunks)

    def _stream(self, resp: falcon.Response, spec: QuerySpec, fmt: str, version: int | None,
                *, bom: bool, neutralise: bool) -> None:
        total = self.engine.count(spec, version=version)
        resp.set_header("X-Total-Count", str(total))
        export = self.engine.export(spec, fmt, version=version, bom=bom, neutralise=neutralise)
        resp.stream = _Body(export.chunks)


def export_name(group: str | None, fmt: str, *, bom: bool = False,
                neutralise: bool = False) -> str:
    return (f"features_{group or 'all'}" + ("_bom" if bom else "")
            + ("_safe" if neutralise else "") + f".{fmt}")


def _wants_fresh(req: falcon.Request) -> bool:
    cc = (req.get_header("Cache-Control") or "").lower()
    return "no-cache" in cc or "no-store" in cc


def warm(svc: Services) -> None:
    """Note the current version; when it is new, write its full CSV download in the background
    (so the first full download after a publish is already a file)."""
    cache, engine = svc.exports, svc.reader
    if cache is None or engine is None:
        return
    try:
        snap = svc.snapshots.current()
    except Exception:  # nothing published yet
        return

    def fill(version: int) -> None:
        name = export_name(None, "csv")
        cache.fill(version, name, lambda: engine.export(QuerySpec(), "csv",
                                                        version=version).chunks)

    cache.note_current(snap.version, fill if api_setting(svc.settings, "api_warm_downloads")
                       else None)


class _Body:
    """A WSGI body that closes the underlying DuckDB stream even if the client goes away."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if chunk:
                yield chunk

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
