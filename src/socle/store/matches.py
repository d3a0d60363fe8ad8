"""Where the matches of a search come from (R4 §3.1.1 type and system search, §3.1.0.9.4 compartments,
operation Patient-everything): a `MatchSet` gives the SELECTs of (resource_key, id, *extra columns)
that `socle.store.results` sorts and pages and `socle.store.includes` scopes.

Criteria are compiled by `socle.store.search.compile_search` (one SELECT per searched type, UNION
ALL-ed by the caller); this module adds only the compartment and `$everything` restrictions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, CompoundSelect, Select, and_, false, or_, select, union

from socle.fhir.compartment import compartment_params
from socle.fhir.hashing import system_value_hash
from socle.fhir.query import SearchQuery
from socle.store.access import AccessFilter
from socle.store.indexes import idx_reference
from socle.store.schema import resource
from socle.store.search import compile_search

__all__ = ["EverythingMatches", "MatchSet", "TypeMatches", "compartment_members"]


class MatchSet(Protocol):
    """Where the matches of a search come from: SELECTs of (resource_key, id, *extra) over `resource`."""

    def branches(
        self,
        access: AccessFilter,
        extra: Sequence[ColumnElement[Any]],
        *,
        key_order: bool = False,
        bounded: bool = False,
    ) -> list[Select[Any]]:
        """One SELECT per branch (UNION ALL-ed); every branch reads `resource` with the access filter.

        `key_order`: the caller reads the matches in resource-key order (a page without `_sort`);
        `bounded`: it reads at most a given number of them, in any order (a bounded count)."""
        ...

    def include_filter(self) -> ColumnElement[bool] | None:
        """A condition on included `resource` rows (the `$everything` scope), or None."""
        ...


@dataclass(frozen=True)
class TypeMatches:
    """The criteria of a type search, one query per type (system search with `_type`: several).

    `compartment` restricts to a Patient compartment (R4 §3.1.0.9.4 compartment search).
    """

    queries: tuple[SearchQuery, ...]
    compartment: str | None = None

    def branches(
        self,
        access: AccessFilter,
        extra: Sequence[ColumnElement[Any]],
        *,
        key_order: bool = False,
        bounded: bool = False,
    ) -> list[Select[Any]]:
        out = []
        for query in self.queries:
            scope = None  # the compartment, when given, drives: the criteria then probe its members
            if self.compartment is not None:
                scope = compartment_members(access, self.compartment, [query.resource_type])
            stmt = compile_search(query, access, scope, key_order=key_order, bounded=bounded).order_by(None)
            out.append(stmt.add_columns(*extra))
        return out

    def include_filter(self) -> ColumnElement[bool] | None:
        return None


@dataclass(frozen=True)
class EverythingMatches:
    """`Patient/$everything` (R4 operation Patient-everything): the compartment of one patient
    (`patient`) or of every patient (None), optionally limited to `types` and to `since` (µs)."""

    patient: str | None
    types: tuple[str, ...] | None = None
    since: int | None = None

    def branches(
        self,
        access: AccessFilter,
        extra: Sequence[ColumnElement[Any]],
        *,
        key_order: bool = False,
        bounded: bool = False,
    ) -> list[Select[Any]]:
        conditions: list[ColumnElement[bool]] = [resource.c.deleted == false(), access.condition(resource)]
        if self.patient is None:
            conditions.append(resource.c.compartment.is_not(None))
        else:
            types = sorted({"Patient", *compartment_params()})
            conditions.append(resource.c.resource_key.in_(compartment_members(access, self.patient, types)))
        if self.types is not None:
            conditions.append(resource.c.resource_type.in_(self.types))
        if self.since is not None:
            conditions.append(resource.c.updated_at >= self.since)
        key: ColumnElement[int] = resource.c.resource_key
        if self.patient is not None:
            # One patient's record is small: fetch it, then sort it. Ordered by the bare key, PostgreSQL
            # walked the primary key from the first row, merge-joining the record (it expected the
            # record spread over the table): a page cost the position of the patient in the table.
            key = (key + 0).label("resource_key")
        return [select(key, resource.c.id, *extra).where(*conditions)]

    def include_filter(self) -> ColumnElement[bool] | None:
        """Referenced resources that are not already matches (they come on their own page)."""
        if self.patient is None:
            outside: ColumnElement[bool] = resource.c.compartment.is_(None)
        else:
            outside = or_(resource.c.compartment.is_(None), resource.c.compartment != self.patient)
        if self.types is not None:
            outside = and_(outside, resource.c.resource_type.in_(self.types))
        return outside


def compartment_members(
    access: AccessFilter, patient: str, resource_types: Sequence[str]
) -> Select[Any] | CompoundSelect[Any]:
    """Keys of the resources of these types in the Patient compartment of `patient`.

    The `compartment` column holds ONE patient per row (the first the CompartmentDefinition names);
    a resource in several patients' compartments (an Observation with two performers who are
    patients) is found through its reference index rows instead, hence the UNION. A UNION inside
    one IN keeps both halves index-served (an OR of two IN-subqueries defeats PostgreSQL's semi-join).
    """
    column = resource.c.compartment == patient
    if len(resource_types) == 1:
        column = and_(column, resource.c.resource_type == resource_types[0])
    own = select(resource.c.resource_key).where(column, access.condition(resource))
    hashes = [
        system_value_hash(t, name, "Patient", patient)
        for t in resource_types
        for name in compartment_params().get(t, ())
    ]
    if not hashes:
        return own
    linked = select(idx_reference.c.resource_key).where(idx_reference.c.target_hash.in_(hashes))
    return union(own, linked)
