"""`st.cache_data` around `ui.reads`: results keyed by (snapshots folder, version, request).

Every spec passes `Ctx.scoped` here, so each read carries the viewer's row scope and the scope
is part of the cache key (one user's cached page never answers for another scope).

The version is part of every key, so a new snapshot is read on the next render without a
restart and a cached result of an older version never answers for a newer one. Arguments with
a leading underscore are not hashed (the engine; the spec, represented by its `repr`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pyarrow as pa
import streamlit as st

from query import Engine, QuerySpec, Result, VersionInfo
from query.scope import RowScope
from ui import reads
from ui.context import Ctx

TTL_S = 3600
ENTRIES = 512


@st.cache_data(ttl=TTL_S, max_entries=ENTRIES, show_spinner=False)
def _home(root: str, version: int, today: str, _engine: Engine) -> reads.HomeData:
    return reads.home_data(_engine, version, date.fromisoformat(today))


def home(c: Ctx, version: int, today: date) -> reads.HomeData:
    return _home(c.root, version, today.isoformat(), c.engine)


@st.cache_data(ttl=TTL_S, max_entries=ENTRIES, show_spinner=False)
def _page(root: str, version: int, key: str, _engine: Engine, _spec: QuerySpec) -> Result:
    return reads.page(_engine, version, _spec)


def page(c: Ctx, version: int, spec: QuerySpec) -> Result:
    spec = c.scoped(spec)
    return _page(c.root, version, repr(spec), c.engine, spec)


@st.cache_data(ttl=TTL_S, max_entries=ENTRIES, show_spinner=False)
def _facets(root: str, version: int, key: str, _engine: Engine,
            _specs: Sequence[tuple[QuerySpec, Sequence[str]]], top: int
            ) -> dict[str, list[tuple[Any, int]]]:
    return reads.facet_counts(_engine, version, _specs, top)


def facets(c: Ctx, version: int, specs: Sequence[tuple[QuerySpec, Sequence[str]]],
           top: int = 1000) -> dict[str, list[tuple[Any, int]]]:
    specs = [(c.scoped(spec), columns) for spec, columns in specs]
    return _facets(c.root, version, repr(specs), c.engine, specs, top)


@st.cache_data(ttl=TTL_S, max_entries=ENTRIES, show_spinner=False)
def _rows(root: str, version: int, key: str, _engine: Engine, _spec: QuerySpec) -> pa.Table:
    return reads.rows_of(_engine, version, _spec)


def rows(c: Ctx, version: int, spec: QuerySpec) -> pa.Table:
    """Every row of a limited spec (feature matrix, timelines)."""
    spec = c.scoped(spec)
    return _rows(c.root, version, repr(spec), c.engine, spec)


@st.cache_data(ttl=TTL_S, max_entries=64, show_spinner=False)
def _columns(root: str, version: int, table: str, _engine: Engine) -> tuple[str, ...]:
    return reads.schema_names(_engine, version, table)


def columns(c: Ctx, version: int, table: str = "features") -> tuple[str, ...]:
    return _columns(c.root, version, table, c.engine)


@st.cache_data(ttl=60, max_entries=16, show_spinner=False)
def _versions(root: str, current: int, _engine: Engine) -> list[VersionInfo]:
    return _engine.versions()


def versions(c: Ctx, current: int) -> list[VersionInfo]:
    """Kept versions, newest first (re-read when the current version changes)."""
    return _versions(c.root, current, c.engine)


@st.cache_data(ttl=TTL_S, max_entries=64, show_spinner=False)
def _diff(root: str, old: int, new: int, group: str | None, limit: int, offset: int,
          scope_key: str, _engine: Engine, _scope: RowScope | None) -> Any:
    return _engine.diff(old, new, feature_group=group, limit=limit, offset=offset, scope=_scope)


def diff(c: Ctx, old: int, new: int, group: str | None, limit: int, offset: int) -> Any:
    """The difference of two versions, as far as the viewer's scope reaches."""
    scope_key = repr(c.scope)
    return _diff(c.root, old, new, group, limit, offset, scope_key, c.engine, c.scope)


def groups(c: Ctx, version: int) -> dict[str, int]:
    """The feature groups the viewer may see, with their row counts in scope (the engine
    caches scoped counts per version)."""
    return c.engine.groups(version=version, scope=c.scope)


@st.cache_data(ttl=TTL_S, max_entries=ENTRIES, show_spinner=False)
def _scoped_home(root: str, version: int, today: str, tz: str, scope_key: str,
                 _engine: Engine, _scope: RowScope) -> reads.HomeData:
    return reads.scoped_home_data(_engine, version, date.fromisoformat(today), tz, _scope)


def scoped_home(c: Ctx, version: int, today: date, scope: RowScope) -> reads.HomeData:
    """Home's figures counted from the changes in `scope` (daily_counts cannot be scoped)."""
    return _scoped_home(c.root, version, today.isoformat(), c.ui.timezone, repr(scope),
                        c.engine, scope)
