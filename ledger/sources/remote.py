"""Sources behind a connection: a SQL query through SQLAlchemy, and an HTTP(S) endpoint.

Reaching the other side can fail for reasons a retry may fix (refused, timed out, 5xx); those
raise `TransientSourceError`. Everything else raises `SourceError`. Messages use
``cfg.location``, which hides passwords and secret query parameters.

Credentials never cross origins: a redirect to another scheme, host or port drops the
Authorization header, every configured header and cookies. ``http://user:password@host/``
is sent as HTTP basic auth (and never shown).
"""

from __future__ import annotations

import base64
import http.client
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import IO, Any

import pyarrow as pa
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from fmw.errors import SourceError, TransientSourceError
from fmw.settings import SECRET_PARAM_RE, SourceConfig
from ledger.sources.base import DEFAULT_LIMITS, RowError, SourceLimits, SourceTable
from ledger.sources.convert import build_table, check_mapped, finish, normalize_headers
from ledger.sources.text import read_csv_bytes, read_json_bytes

_BATCH_ROWS = 10_000
_CSV_TYPES = frozenset({"text/csv", "application/csv", "text/comma-separated-values"})
_JSONL_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl",
                          "application/x-jsonlines", "application/jsonlines"})
_RETRYABLE_STATUS = frozenset({408, 425, 429})


# --- SQL ---------------------------------------------------------------------------------------

def read_sql(cfg: SourceConfig, limits: SourceLimits = DEFAULT_LIMITS) -> SourceTable:
    """Run ``cfg.query`` and stream the result in batches.

    Args:
        cfg: the source; `url` is a SQLAlchemy URL (``postgresql://`` uses psycopg 3) and
            `query` a single SELECT, passed to the database verbatim (no bind parameters).

    Returns:
        Row numbers are 1-based record indexes.

    Raises:
        TransientSourceError: the database cannot be reached (or the connection dropped).
        SourceError: the URL is unusable, the query fails (with the database's message) or
            returns no rows result, or a mapped column is missing.
    """
    url = _sql_url(cfg)
    args: dict[str, Any] = {}
    if url.get_backend_name() == "postgresql":
        args["connect_args"] = {"connect_timeout": max(1, round(cfg.timeout_s))}
    try:
        engine = create_engine(url, poolclass=NullPool, **args)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise _sql_fail(cfg, f"cannot use database URL: {exc}") from None
    try:
        try:
            conn = engine.connect()
        except DBAPIError as exc:
            raise _sql_fail(cfg, f"cannot connect to database: {_db_message(exc)}",
                            transient=True) from None
        with conn:
            return _run_query(cfg, conn, limits)
    finally:
        engine.dispose()


def _sql_url(cfg: SourceConfig) -> URL:
    try:
        url = make_url(cfg.url or "")
    except (ArgumentError, ValueError):
        raise _sql_fail(cfg, "url is not a valid SQLAlchemy URL") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")  # psycopg 3 is FMW's PostgreSQL driver
    return url


def _run_query(cfg: SourceConfig, conn: Connection, limits: SourceLimits) -> SourceTable:
    # Escape every colon so text() finds no ":name" bind parameters in literals or JSON.
    statement = text((cfg.query or "").replace(":", "\\:"))
    options: dict[str, Any] = {"yield_per": _BATCH_ROWS}
    if conn.dialect.name == "postgresql":
        options["postgresql_readonly"] = True  # a source is read, never written
    mapped = {col: fld for fld, col in cfg.columns}
    try:
        result = conn.execution_options(**options).execute(statement)
        if not result.returns_rows:
            raise _sql_fail(cfg, "query returned no result rows; a source query must be a SELECT")
        names = normalize_headers(list(result.keys()))
        check_mapped(cfg, names, cfg.location)
        tables: list[pa.Table] = []
        errors: list[RowError] = []
        count = 0
        for batch in result.partitions():
            numbered = [(count + i, row) for i, row in enumerate(batch, start=1)]
            count += len(batch)
            table, bad = build_table(names, numbered, mapped)
            tables.append(table)
            errors.extend(bad)
    except DBAPIError as exc:
        transient = bool(exc.connection_invalidated)
        raise _sql_fail(cfg, f"query failed: {_db_message(exc)}", transient=transient) from None
    except SQLAlchemyError as exc:
        raise _sql_fail(cfg, f"query failed: {exc}") from None
    if not tables:
        tables.append(build_table(names, [], mapped)[0])
    return finish(cfg, cfg.location, pa.concat_tables(tables), errors, limits)


def _db_message(exc: DBAPIError) -> str:
    orig = exc.orig if exc.orig is not None else exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    message = lines[0] if lines else type(orig).__name__
    state = getattr(orig, "sqlstate", None)
    return f"{message} (SQLSTATE {state})" if state else message


def _sql_fail(cfg: SourceConfig, reason: str, transient: bool = False) -> SourceError:
    try:
        password = make_url(cfg.url or "").password
    except (ArgumentError, ValueError):
        password = None
    if password:
        reason = reason.replace(str(password), "***")
    if cfg.url:
        reason = reason.replace(cfg.url, cfg.location)
    cls = TransientSourceError if transient else SourceError
    return cls(cfg.name, reason, location=cfg.location)


# --- HTTP --------------------------------------------------------------------------------------

def read_http(cfg: SourceConfig, limits: SourceLimits = DEFAULT_LIMITS) -> SourceTable:
    """GET ``cfg.url`` and parse the body as JSON or CSV.

    The format is ``cfg.format`` if set, else from the Content-Type (``text/csv`` -> CSV,
    NDJSON types -> JSON Lines, anything else -> JSON). The charset comes from the Content-Type,
    else it is detected as for files.

    Args:
        cfg: the source; `url`, `headers`, `timeout_s`, `format`, `records_path` are used.

    Returns:
        The parsed table, with the same row numbering as the matching file kind.

    Raises:
        TransientSourceError: refused, timed out, dropped, or HTTP 408/425/429/5xx.
        SourceError: other HTTP errors (``HTTP 404 Not Found``), TLS errors, a redirect to a
            URL that is not http(s), an empty or malformed body, or a missing mapped column.
    """
    url, headers = _request_parts(cfg)
    request = urllib.request.Request(url, headers=headers)
    body, content_type, charset = _fetch(cfg, request)
    if not body:
        raise SourceError(cfg.name, "response body is empty", location=cfg.location)
    encoding = charset or "auto"
    fmt = cfg.format or ("csv" if content_type in _CSV_TYPES else
                         "jsonl" if content_type in _JSONL_TYPES else "json")
    if fmt == "csv":
        return read_csv_bytes(cfg, cfg.location, body, encoding, limits)
    return read_json_bytes(cfg, cfg.location, body, encoding,
                           "jsonl" if fmt == "jsonl" else "json", limits)


def _request_parts(cfg: SourceConfig) -> tuple[str, dict[str, str]]:
    """The URL to request (without user info) and the request headers (with basic auth)."""
    url = cfg.url or ""
    if not url.lower().startswith(("http://", "https://")):
        raise SourceError(cfg.name, "url must start with http:// or https://",
                          location=cfg.location)
    headers = {"User-Agent": "fmw", **dict(cfg.headers)}
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, headers
    if any(name.lower() == "authorization" for name in headers):
        raise SourceError(cfg.name, "url has a user name and the headers set Authorization; "
                          "use one of the two", location=cfg.location)
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    headers["Authorization"] = f"Basic {token}"
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), headers


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class _CredentialSafeRedirect(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only; another origin gets none of the source's secrets."""

    def __init__(self, cfg: SourceConfig, secret_headers: set[str]) -> None:
        self.cfg = cfg
        self.secret_headers = secret_headers | {"authorization", "cookie", "proxy-authorization"}

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: http.client.HTTPMessage, newurl: str) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise SourceError(self.cfg.name, f"HTTP {code}: redirected to a URL that is not "
                              "http(s); refused", location=self.cfg.location)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in list(new.headers):
                if name.lower() in self.secret_headers:
                    new.remove_header(name)
        return new


def _secrets(cfg: SourceConfig) -> list[str]:
    """Values that must not appear in a message: password, secret parameters, header values."""
    parts = urllib.parse.urlsplit(cfg.url or "")
    found = [parts.password or "", urllib.parse.unquote(parts.password or "")]
    found += [value for name, value in urllib.parse.parse_qsl(parts.query)
              if SECRET_PARAM_RE.search(name)]
    found += [value for _, value in cfg.headers]
    return sorted((v for v in found if len(v) >= 3), key=len, reverse=True)


def _scrub(cfg: SourceConfig, text: str) -> str:
    """A library's message with the URL shown as `cfg.location` and every secret as ***."""
    if cfg.url:
        text = text.replace(cfg.url, cfg.location)
    for secret in _secrets(cfg):
        text = text.replace(secret, "***")
    return text


def _fetch(cfg: SourceConfig, request: urllib.request.Request) -> tuple[bytes, str, str | None]:
    opener = urllib.request.build_opener(
        _CredentialSafeRedirect(cfg, {name.lower() for name, _ in cfg.headers}))
    try:
        with opener.open(request, timeout=cfg.timeout_s) as response:
            body = response.read()
            return body, response.headers.get_content_type(), response.headers.get_content_charset()
    except urllib.error.HTTPError as exc:
        exc.close()
        cls = TransientSourceError if exc.code >= 500 or exc.code in _RETRYABLE_STATUS \
            else SourceError
        raise cls(cfg.name, f"HTTP {exc.code} {exc.reason}", location=cfg.location) from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise TransientSourceError(cfg.name, f"timed out after {cfg.timeout_s:g} s",
                                       location=cfg.location) from None
        if isinstance(exc.reason, ssl.SSLError):
            raise SourceError(cfg.name, _scrub(cfg, f"TLS error: {exc.reason}"),
                              location=cfg.location) from None
        raise TransientSourceError(cfg.name, _scrub(cfg, f"cannot connect: {exc.reason}"),
                                   location=cfg.location) from None
    except TimeoutError:
        raise TransientSourceError(cfg.name, f"timed out after {cfg.timeout_s:g} s",
                                   location=cfg.location) from None
    except (OSError, http.client.HTTPException) as exc:
        raise TransientSourceError(cfg.name, _scrub(cfg, f"request failed: {exc}"),
                                   location=cfg.location) from None
