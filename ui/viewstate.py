"""The Overview's filters as data: parsed from and written to the URL, turned into a `QuerySpec`.

The URL uses the v1 API's own parameter names and list syntax (``status=enabled&status=planned``,
a comma inside a value written ``\\,``), so an Overview URL's query is a valid
``/api/v1/features`` query plus the UI's ``page`` and ``size``. Any parameter the UI has no
widget for is an advanced filter in the API's grammar (``last_changed_at__gte=2026-11-01``).
Pure: no Streamlit here, so tests and the benchmark use it directly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode

from query.filters import split_values
from query.plan import RESERVED, QuerySpec

#: Filters with a multi-select widget (and facet counts beside it), in display order.
FACET_FIELDS: tuple[str, ...] = ("status", "region", "country", "operator")
#: Columns shown when the URL names none (those missing from a snapshot are skipped).
DEFAULT_COLUMNS: tuple[str, ...] = (
    "feature_group", "feature_name", "mcc", "mnc", "status", "value", "notes", "operator",
    "country", "region", "owner", "last_changed_at",
)
UI_PARAMS = ("page", "size")
WIDGET_PARAMS = ("feature_group", "mcc", "mnc", "q", "columns", "order", *FACET_FIELDS)
MAX_PAGE_SIZE = 1000
_MCC_RE = re.compile(r"^\d{3}$")
_MNC_RE = re.compile(r"^\d{2,3}$")


def escape(value: str) -> str:
    """A value for the API's comma lists: ``\\`` -> ``\\\\``, ``,`` -> ``\\,``."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


@dataclass(frozen=True)
class ViewState:
    """What the Overview shows. `choices` maps a facet field to its selected values."""

    group: str | None = None
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    mcc: str = ""
    mnc: str = ""
    q: str = ""
    extra: tuple[tuple[str, str], ...] = ()
    columns: tuple[str, ...] = ()
    order: str = ""
    page: int = 1
    size: int = 100

    def chosen(self, name: str) -> tuple[str, ...]:
        return dict(self.choices).get(name, ())

    def with_choice(self, name: str, values: Sequence[str]) -> ViewState:
        rest = [(k, v) for k, v in self.choices if k != name]
        if values:
            rest.append((name, tuple(values)))
        order = {n: i for i, n in enumerate(FACET_FIELDS)}
        return replace(self, choices=tuple(sorted(rest, key=lambda kv: order.get(kv[0], 99))))

    # -- conversions --------------------------------------------------------------------------

    def filter_pairs(self, *, without: str | None = None) -> list[tuple[str, str]]:
        """The filters as API pairs (`without`: leave that facet field out, for its counts)."""
        pairs: list[tuple[str, str]] = []
        for name, values in self.choices:
            if name != without:
                pairs.extend((name, escape(v)) for v in values)
        for name, raw in (("mcc", self.mcc), ("mnc", self.mnc)):
            if raw.strip():
                pairs.append((name, ",".join(v.strip() for v in raw.split(","))))
        pairs.extend(self.extra)
        return pairs

    def spec(self, *, paged: bool = True, without: str | None = None,
             columns: Sequence[str] | None = None) -> QuerySpec:
        """The query for this view: one page, or (``paged=False``) every row, for export."""
        return QuerySpec(
            feature_group=self.group, filters=tuple(self.filter_pairs(without=without)),
            q=self.q.strip() or None, columns=tuple(columns if columns is not None
                                                   else self.columns),
            order=tuple(s for s in self.order.split(",") if s) if self.order else (),
            limit=self.size if paged else None,
            offset=(self.page - 1) * self.size if paged else 0,
        )

    def api_path(self) -> str:
        return f"/api/v1/features/{self.group}" if self.group else "/api/v1/features"

    def api_pairs(self, *, columns: Sequence[str] | None = None) -> list[tuple[str, str]]:
        """The same view as v1 API parameters (all rows: no page)."""
        pairs = self.filter_pairs()
        if self.q.strip():
            pairs.append(("q", self.q.strip()))
        cols = columns if columns is not None else self.columns
        if cols:
            pairs.append(("columns", ",".join(cols)))
        if self.order:
            pairs.append(("order", self.order))
        return pairs

    def to_params(self, default_size: int = 100) -> dict[str, list[str]]:
        """URL parameters (defaults left out, so a plain Overview has a plain URL)."""
        out: dict[str, list[str]] = {}
        if self.group:
            out["feature_group"] = [self.group]
        for name, values in self.choices:
            out[name] = [escape(v) for v in values]
        for name, raw in (("mcc", self.mcc), ("mnc", self.mnc), ("q", self.q),
                          ("order", self.order)):
            if raw.strip():
                out[name] = [raw.strip()]
        if self.columns:
            out["columns"] = [",".join(self.columns)]
        for key, value in self.extra:
            out.setdefault(key, []).append(value)
        if self.page != 1:
            out["page"] = [str(self.page)]
        if self.size != default_size:
            out["size"] = [str(self.size)]
        return out


def parse_params(params: Mapping[str, Sequence[str]], *, default_size: int = 100
                 ) -> tuple[ViewState, list[str]]:
    """A view from URL parameters (values as lists), and what was wrong with them.

    A bad ``page`` or ``size`` falls back to its default and is reported, so a stale link
    still opens.
    """
    errors: list[str] = []

    def one(name: str) -> str:
        values = [v for v in params.get(name, ()) if v is not None]
        return str(values[-1]) if values else ""

    choices = []
    for name in FACET_FIELDS:
        values: list[str] = []
        for raw in params.get(name, ()):
            values.extend(v for v in split_values(str(raw)) if v != "")
        if values:
            choices.append((name, tuple(dict.fromkeys(values))))
    extra = [(k, str(v)) for k, vs in params.items()
             if k not in WIDGET_PARAMS and k not in UI_PARAMS and k not in RESERVED
             for v in vs]
    for k in params:
        if k in RESERVED and k not in WIDGET_PARAMS:
            errors.append(f"URL parameter {k!r} is not used by the Overview and was ignored")
    page = _int_param(one("page"), "page", 1, 10**9, errors)
    size = _int_param(one("size"), "size", default_size, MAX_PAGE_SIZE, errors,
                      default=default_size)
    columns = tuple(c.strip() for c in one("columns").split(",") if c.strip())
    state = ViewState(group=one("feature_group") or None, choices=tuple(choices),
                      mcc=one("mcc"), mnc=one("mnc"), q=one("q"), extra=tuple(extra),
                      columns=columns, order=one("order"), page=page, size=size)
    return state, errors


def _int_param(raw: str, name: str, fallback: int, high: int, errors: list[str], *,
               default: int = 1) -> int:
    if raw == "":
        return fallback
    try:
        value = int(raw)
    except ValueError:
        errors.append(f"URL parameter {name}={raw!r} is not a whole number; using {default}")
        return default
    if not 1 <= value <= high:
        errors.append(f"URL parameter {name}={value} must be between 1 and {high}; "
                      f"using {default}")
        return default
    return value


def validate(state: ViewState) -> list[str]:
    """What is wrong with the filter values, in words (empty when the view can be queried)."""
    problems = []
    for raw, pattern, label, rule in ((state.mcc, _MCC_RE, "MCC", "3 digits"),
                                      (state.mnc, _MNC_RE, "MNC", "2 or 3 digits")):
        for part in (p.strip() for p in raw.split(",")):
            if raw.strip() and not pattern.match(part):
                problems.append(f"{label} {part!r} is not {rule} (e.g. "
                                f"{'450' if label == 'MCC' else '05'}); separate several "
                                "with commas")
    for key, _ in state.extra:
        if key in RESERVED:
            problems.append(f"advanced filter {key!r} is not a filter; use the controls for it")
    return problems


def parse_advanced(text: str) -> tuple[tuple[tuple[str, str], ...], list[str]]:
    """``"owner=kim&last_changed_at__gte=2026-11-01"`` -> pairs, and syntax problems."""
    text = text.strip().lstrip("?")
    if not text:
        return (), []
    problems: list[str] = []
    pairs: list[tuple[str, str]] = []
    for part in re.split(r"[&\n]", text):
        if not part.strip():
            continue
        if "=" not in part:
            problems.append(f"advanced filter {part.strip()!r} needs the form field=value "
                            "(e.g. owner__icontains=kim)")
            continue
        got = parse_qsl(part.strip(), keep_blank_values=True)
        pairs.extend((k.strip(), v) for k, v in got)
    for key, _ in pairs:
        if key in WIDGET_PARAMS or key in UI_PARAMS or key in RESERVED:
            problems.append(f"advanced filter {key!r} has its own control above; use that")
    return tuple(pairs), problems


def format_advanced(pairs: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in pairs)


def query_string(pairs: Iterable[tuple[str, str]]) -> str:
    return urlencode(list(pairs), safe=",")
