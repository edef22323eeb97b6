"""Row scopes: the rows a signed-in user may see, enforced in one place (`query.plan.prepare`).

A scope is a union of rules; a rule is an AND over feature groups, operators and MCCs (a
dimension left empty is unrestricted). Every statement the query layer builds for a scoped
request carries the scope's predicate, reads only the files of the scope's groups, and has
the scope in its fingerprint, so a cursor, a cached page or an ETag of one scope never
serves another.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fmw.authconfig import ROLES, Role, RoleRule
from query.errors import OutOfScope
from query.filters import Params, ident

__all__ = ["ROLES", "Role", "RoleRule", "RowScope", "ScopeRule", "resolve_role"]
_RANK = {"scoped": 1, "viewer": 2, "admin": 3}

#: Tables a scoped user may read, and how a row of each names its group, operator and MCC.
_FEATURES = {"feature_group": "feature_group", "operator": "operator", "mcc": "mcc"}
_CHANGES = {
    "feature_group": "feature_group",
    "operator": "json_extract_string(coalesce(after_json, before_json), '$.operator')",
    "mcc": "json_extract_string(coalesce(after_json, before_json), '$.mcc')",
}
SCOPED_TABLES: dict[str, dict[str, str] | None] = {
    "features": _FEATURES, "changes": _CHANGES,
    "mcc_mnc_map": None,  # public reference data: no rows to hide
}


@dataclass(frozen=True)
class ScopeRule:
    """Rows of these groups AND operators AND MCCs (None: any)."""

    feature_groups: frozenset[str] | None = None
    operators: frozenset[str] | None = None
    mccs: frozenset[str] | None = None

    @classmethod
    def of(cls, feature_groups: Iterable[str] = (), operators: Iterable[str] = (),
           mccs: Iterable[str] = ()) -> ScopeRule:
        def norm(values: Iterable[str]) -> frozenset[str] | None:
            out = frozenset(str(v) for v in values)
            return out or None
        return cls(norm(feature_groups), norm(operators), norm(mccs))

    def text(self) -> str:
        parts = []
        for name, values in (("groups", self.feature_groups), ("operators", self.operators),
                             ("mccs", self.mccs)):
            if values is not None:
                parts.append(f"{name}={','.join(sorted(values))}")
        return " ".join(parts) or "everything"


@dataclass(frozen=True)
class RowScope:
    """The union of `rules`; no rules: no rows at all."""

    rules: tuple[ScopeRule, ...]

    @classmethod
    def of(cls, rules: Iterable[ScopeRule]) -> RowScope:
        return cls(tuple(sorted(set(rules), key=lambda r: r.text())))

    @functools.cached_property
    def key(self) -> str:
        """A short stable digest (fingerprints, ETags, cache keys)."""
        text = "|".join(r.text() for r in self.rules)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def text(self) -> str:
        return "; ".join(r.text() for r in self.rules) or "nothing"

    def as_json(self) -> list[dict[str, list[str]]]:
        """The rules as JSON (``/api/me``'s `scope`, a personal token's stored scope)."""
        return [{k: sorted(v) for k, v in (("feature_groups", r.feature_groups),
                                           ("operators", r.operators), ("mccs", r.mccs)) if v}
                for r in self.rules]

    @classmethod
    def from_json(cls, rules: list[dict[str, list[str]]] | None) -> RowScope | None:
        """The scope `as_json` wrote (None stays None: every row)."""
        if rules is None:
            return None
        return cls.of(ScopeRule.of(r.get("feature_groups", ()), r.get("operators", ()),
                                   r.get("mccs", ())) for r in rules)

    def groups(self) -> frozenset[str] | None:
        """The groups any rule reaches (None: every group)."""
        return self._groups

    @functools.cached_property
    def _groups(self) -> frozenset[str] | None:
        out: set[str] = set()
        for r in self.rules:
            if r.feature_groups is None:
                return None
            out |= r.feature_groups
        return frozenset(out)

    def allows_group(self, group: str) -> bool:
        groups = self.groups()
        return groups is None or group in groups

    def visible_groups(self, groups: Sequence[str]) -> list[str]:
        return [g for g in groups if self.allows_group(g)]

    def predicate(self, table: str, params: Params | None) -> str | None:
        """SQL (values bound in `params`, or written as quoted literals when None, for a view)
        true for the rows in scope; None: no restriction.

        Raises:
            OutOfScope: `table` cannot be scoped.
        """
        if table not in SCOPED_TABLES:
            raise OutOfScope(table, SCOPED_TABLES)
        columns = SCOPED_TABLES[table]
        if columns is None:
            return None
        ors = []
        for rule in self.rules:
            ands = []
            for dim, values in (("feature_group", rule.feature_groups),
                                ("operator", rule.operators), ("mcc", rule.mccs)):
                if values is None:
                    continue
                expr = columns[dim]
                col = ident(expr) if expr == dim else expr
                # a list of constants (not one list parameter): DuckDB pushes IN and = down
                # into the Parquet scan, where row-group statistics can skip data
                marks = ", ".join(params.add(v) if params is not None else _literal(v)
                                  for v in sorted(values))
                ands.append(f"{col} = {marks}" if len(values) == 1 else f"{col} IN ({marks})")
            if not ands:
                return None  # one rule sees everything
            ors.append("(" + " AND ".join(ands) + ")")
        return "(" + " OR ".join(ors) + ")" if ors else "FALSE"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def resolve_role(rules: Sequence[RoleRule], groups: Iterable[str]
                 ) -> tuple[Role | None, RowScope | None]:
    """The role a member of `groups` gets from the config's role map, and its row scope
    (None: every row).

    The highest role wins (admin, viewer, scoped); the rules of several scoped groups add up.
    Group names are compared exactly (the config says the name as the provider sends it).
    """
    mine = set(groups)
    best: Role | None = None
    scoped: list[ScopeRule] = []
    for rule in rules:
        if rule.group not in mine:
            continue
        if best is None or _RANK[rule.role] > _RANK[best]:
            best = rule.role
        if rule.role == "scoped":
            scoped.append(ScopeRule.of(rule.feature_groups, rule.operators, rule.mccs))
    if best is None:
        return None, None
    if best != "scoped":
        return best, None
    return best, RowScope.of(scoped)
