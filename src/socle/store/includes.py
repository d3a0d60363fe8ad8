"""`_include` and `_revinclude` (R4 §3.1.1.5.4, search.html#include): ONE statement per level.

A level reads, in one SELECT, every resource that the level's sources reference (`_include`) or
that references them (`_revinclude`), for all the parameters asked at once:

- forward: the sources' `idx_reference` rows (by resource key, the table's clustered key) give
  (target type, target id) pairs, looked up on `resource`'s unique (type, id) index;
- reverse: the (source type, parameter, target type, target id) hash that the writes stored in
  `idx_reference.target_hash` is computed here for each page resource, so the lookup is the same
  bigint equality as a reference search, served by `ix_idx_reference_target`.

The two halves are a UNION of keys (deduplicated in SQL) joined back to `resource` for the JSON,
and every row read carries the access filter: an included resource the policy hides is not there.

`:iterate` (R4; `:recurse` is its STU3 name) applies again to what the previous level added, until
nothing new comes, at most `MAX_ROUNDS` levels and `MAX_INCLUDED` resources (the caller reports the
truncation in an OperationOutcome). `Type:*` means every reference parameter of Type; a bare `*` in
`_include` means every reference parameter of whatever the sources are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, false, or_, select, tuple_, union

from socle.fhir.errors import Invalid, NotSupported
from socle.fhir.hashing import param_hash, system_value_hash
from socle.fhir.resource_types import is_resource_type
from socle.fhir.search_params import registry
from socle.store.access import AccessFilter
from socle.store.indexes import idx_reference
from socle.store.results import version_columns, version_from_row
from socle.store.schema import resource
from socle.store.versioned import StoredVersion

__all__ = ["MAX_INCLUDED", "MAX_ROUNDS", "IncludeSpec", "Included", "fetch_included", "parse_include"]

MAX_ROUNDS = 10
MAX_INCLUDED = 1000


@dataclass(frozen=True)
class IncludeSpec:
    source_type: str | None  # None: any type (bare `_include=*`)
    param: str  # a reference parameter of source_type, or "*"
    target_type: str | None
    reverse: bool
    iterate: bool


@dataclass(frozen=True)
class Included:
    versions: list[StoredVersion]
    truncated: bool


def parse_include(name: str, value: str) -> IncludeSpec:
    """`_include[:iterate]=Source:param[:Target]` (or `Source:*`, or `*`); `_revinclude` likewise.

    Malformed values raise `Invalid`; well-formed ones naming what does not exist raise `NotSupported`
    (a lenient search ignores those, as it ignores unknown parameters).
    """
    base, _, modifier = name.partition(":")
    if base not in ("_include", "_revinclude") or modifier not in ("", "iterate", "recurse"):
        raise Invalid(f"Unknown modifier in {name!r}: use :iterate", expression=name)
    reverse = base == "_revinclude"
    iterate = bool(modifier)
    parts = value.split(":")
    if value == "*" and not reverse:
        return IncludeSpec(None, "*", None, reverse, iterate)
    if len(parts) not in (2, 3) or not all(parts):
        raise Invalid(f"{name}={value!r} must look like SourceType:parameter[:TargetType]", expression=name)
    source, param_name, *rest = parts
    target = rest[0] if rest else None
    for type_name in (source, target):
        if type_name is not None and not is_resource_type(type_name):
            raise NotSupported(f"{name}={value!r}: {type_name!r} is not a resource type", expression=name)
    if param_name != "*":
        param = registry().get(source, param_name)
        if param is None or param.type != "reference" or param.expression is None:
            raise NotSupported(
                f"{name}={value!r}: {source} has no reference search parameter {param_name!r}",
                expression=name,
            )
        if target is not None and param.targets and target not in param.targets:
            raise NotSupported(f"{name}={value!r}: {param_name} cannot point to {target}", expression=name)
    return IncludeSpec(source, param_name, target, reverse, iterate)


def _names(param: str, resource_type: str) -> list[str]:
    params = registry().params(resource_type)
    if param != "*":
        return [param] if param in params else []
    return sorted(n for n, p in params.items() if p.type == "reference" and p.expression is not None)


def _forward(sources: Sequence[StoredVersion], specs: Sequence[IncludeSpec]) -> ColumnElement[bool] | None:
    present = {s.resource_type for s in sources}
    conditions: list[ColumnElement[bool]] = []
    for spec in specs:
        types = present if spec.source_type is None else present & {spec.source_type}
        hashes = sorted({param_hash(t, n) for t in types for n in _names(spec.param, t)})
        if not hashes:
            continue
        condition: ColumnElement[bool] = idx_reference.c.param_hash.in_(hashes)
        if spec.target_type is not None:
            condition = and_(condition, idx_reference.c.target_type == spec.target_type)
        conditions.append(condition)
    if not conditions:
        return None
    targets = select(idx_reference.c.target_type, idx_reference.c.target_id).where(
        idx_reference.c.resource_key.in_([s.resource_key for s in sources]),
        idx_reference.c.target_id.is_not(None),
        or_(*conditions),
    )
    return tuple_(resource.c.resource_type, resource.c.id).in_(targets)


def _reverse(sources: Sequence[StoredVersion], specs: Sequence[IncludeSpec]) -> ColumnElement[bool] | None:
    hashes: set[int] = set()
    for spec in specs:
        if spec.source_type is None:
            continue
        for name in _names(spec.param, spec.source_type):
            targets = registry().params(spec.source_type)[name].targets
            for s in sources:
                if spec.target_type not in (None, s.resource_type):
                    continue
                if targets and s.resource_type not in targets:
                    continue
                hashes.add(system_value_hash(spec.source_type, name, s.resource_type, s.id))
    if not hashes:
        return None
    keys = select(idx_reference.c.resource_key).where(idx_reference.c.target_hash.in_(sorted(hashes)))
    return resource.c.resource_key.in_(keys)


def _statement(
    sources: Sequence[StoredVersion],
    specs: Sequence[IncludeSpec],
    access: AccessFilter,
    content: ColumnElement[Any],
    scope: ColumnElement[bool] | None,
    limit: int,
) -> Select[Any] | None:
    base: list[ColumnElement[bool]] = [resource.c.deleted == false(), access.condition(resource)]
    if scope is not None:
        base.append(scope)
    forward = _forward(sources, [s for s in specs if not s.reverse])
    reverse = _reverse(sources, [s for s in specs if s.reverse])
    halves = [
        select(resource.c.resource_key).where(*base, condition)
        for condition in (forward, reverse)
        if condition is not None
    ]
    if not halves:
        return None
    keys = (halves[0] if len(halves) == 1 else union(*halves)).subquery("k")
    return (
        select(*version_columns(), content)
        .select_from(resource.join(keys, resource.c.resource_key == keys.c.resource_key))
        .where(access.condition(resource))
        .order_by(resource.c.resource_key)
        .limit(limit)
    )


def fetch_included(
    conn: Connection,
    access: AccessFilter,
    content: ColumnElement[Any],
    sources: Sequence[StoredVersion],
    specs: Sequence[IncludeSpec],
    *,
    scope: ColumnElement[bool] | None = None,
    cap: int = MAX_INCLUDED,
    rounds: int = MAX_ROUNDS,
) -> Included:
    """The resources the specs bring in for `sources` (never one of the sources), level by level.

    `scope` narrows what may be included (`$everything`: only what is not already a match).
    """
    seen = {s.resource_key for s in sources}
    found: list[StoredVersion] = []
    current = list(sources)
    for level in range(rounds):
        active = list(specs) if level == 0 else [s for s in specs if s.iterate]
        if not active or not current:
            return Included(found, False)
        remaining = cap - len(found)
        # Rows already seen may come back (a cycle, a match referenced by another): ask for enough.
        stmt = _statement(current, active, access, content, scope, remaining + len(seen) + 1)
        if stmt is None:
            return Included(found, False)
        new = []
        for row in conn.execute(stmt):
            if row[0] not in seen:
                seen.add(row[0])
                new.append(version_from_row(row))
        if len(new) > remaining:
            return Included(found + new[:remaining], True)
        found += new
        current = new
    return Included(found, bool(current) and any(s.iterate for s in specs))
