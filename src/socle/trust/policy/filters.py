"""The access filters the policy hands to the store: SQL conditions over a resource-shaped table.

Each filter is built once per request and is immutable; its `condition(table)` is ANDed by the store
into every SELECT on `resource` or `resource_history` (or an alias of them), so every read path
(read, vread, search with chains/_has/_include/_revinclude, history, compartment search,
$everything, batch entries, operations) returns only admitted rows. On a table or a named alias the
condition is SQL text rendered once per equal decision (`PolicySQL`); on an anonymous alias (chains,
`_has`) an expression built once per request.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Alias,
    Boolean,
    ColumnElement,
    Dialect,
    FromClause,
    Select,
    Table,
    and_,
    exists,
    false,
    literal_column,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from socle.fhir.hashing import system_value_hash, value_hash
from socle.store.access import AccessFilter
from socle.store.indexes import idx_reference, idx_token
from socle.trust.policy.labels import MASQUE_PS, labelled

# Non-patient resources every admitted person may read (directory, terminology, conformance).
PUBLIC_TYPES = frozenset(
    {
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "HealthcareService",
        "Endpoint",
        "Medication",
        "Substance",
        "ValueSet",
        "CodeSystem",
        "ConceptMap",
        "NamingSystem",
        "SearchParameter",
        "StructureDefinition",
        "OperationDefinition",
        "CapabilityStatement",
        "CompartmentDefinition",
        "Questionnaire",
        "PlanDefinition",
        "ActivityDefinition",
        "Library",
    }
)
# The index tables the policy probes in EXISTS subqueries, under names of their own so that they
# are never correlated with the query's own idx_token / idx_reference; built once (an alias builds
# its column collection on first use: per request that was a measurable share of the policy's cost).
POLICY_KINDS = idx_token.alias("policy_kinds")
POLICY_AUTHORS = idx_reference.alias("policy_authors")
# Never shown to professionals: the patient's own choices and the record of who looked.
PATIENT_PRIVATE_TYPES = frozenset({"AuditEvent", "Consent"})
# Reference parameters naming who wrote an item (the author still sees what the patient masked).
AUTHOR_PARAMS = (
    ("DocumentReference", "author"),
    ("Composition", "author"),
    ("DiagnosticReport", "performer"),
    ("Observation", "performer"),
)


@dataclass(frozen=True)
class DenyAll:
    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return false()


class _Memo:
    """A filter's condition: shared by equal decisions on named tables, else built once per request
    per table object (the statements of a request reuse it)."""

    _memo: dict[int, tuple[FromClause, ColumnElement[bool]]]

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        names = _names(table)
        if names is not None:  # a table, or a named alias of one: shared across equal decisions
            return _rendered(self, table, names)
        hit = self._memo.get(id(table))
        if hit is None or hit[0] is not table:
            hit = (table, self._build(table))
            self._memo[id(table)] = hit
        return hit[1]

    def _build(self, table: FromClause) -> ColumnElement[bool]:
        raise NotImplementedError


class PolicySQL(ColumnElement[bool]):
    """A filter's condition on a table named in SQL (a table or a named alias), compiled once per
    dialect to SQL text with its values inline and reused by every statement of every equal decision.

    Why: as an expression the condition made every statement that carries it longer to key for
    SQLAlchemy's compiled cache and to expand (its IN lists are expanding parameters), and an alias
    made per statement (results' `newest`) rebuilt it each time; that was most of a professional's
    extra CPU per request. Its cache key is a token unique to (decision, table name), never reused.
    The values are the decision's own (patient ids, hashes, labels), rendered by the dialect's
    literal processors.
    """

    __visit_name__ = "socle_policy_sql"
    inherit_cache = True
    _traverse_internals = [("token", InternalTraversal.dp_string)]
    type = Boolean()
    _is_implicitly_boolean = True  # a condition: never rendered as `(…) = 1` where booleans are ints

    def __init__(self, token: str, condition: ColumnElement[bool], table: FromClause) -> None:
        self.token = token
        self._statement: Select[Any] = select(literal_column("1")).select_from(table).where(condition)
        self._sql: dict[str, str] = {}

    def sql(self, dialect: Dialect) -> str:
        text = self._sql.get(dialect.name)
        if text is None:
            compiled = str(self._statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            _select, where, condition = compiled.partition("\nWHERE ")
            if not where:  # SQLAlchemy folded the condition into nothing: it admits every row
                condition = str(true().compile(dialect=dialect))
            text = self._sql[dialect.name] = f"({condition})"
        return text


@compiles(PolicySQL)
def _compile_policy_sql(element: PolicySQL, compiler: SQLCompiler, **kw: Any) -> str:
    return element.sql(compiler.dialect)


def _names(table: FromClause) -> tuple[str, str] | None:
    """(table name, name in SQL) of a table or a named alias of one; None for anything else."""
    if isinstance(table, Table):
        return table.name, table.name
    if isinstance(table, Alias) and isinstance(table.element, Table) and not table.name.startswith("%("):
        return table.element.name, table.name
    return None


_RENDERED: dict[tuple[Any, tuple[str, str]], PolicySQL] = {}
_RENDERED_LOCK = threading.Lock()
_TOKENS = itertools.count()
RENDERED_SIZE = 2048  # (decision, table) pairs kept; past it the cache starts over


def _rendered(access: _Memo, table: FromClause, names: tuple[str, str]) -> PolicySQL:
    """The shared condition of an equal decision (the key is the whole decision, so a changed
    consent or relationship gives a different key: nothing stale is ever reused)."""
    key = (access, names)
    hit = _RENDERED.get(key)
    if hit is not None:
        return hit
    built = PolicySQL(f"{next(_TOKENS)}:{names[1]}", access._build(table), table)
    with _RENDERED_LOCK:
        if len(_RENDERED) >= RENDERED_SIZE:
            _RENDERED.clear()
        return _RENDERED.setdefault(key, built)


def _memo() -> Any:
    return field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class CitizenFilter(_Memo):
    """A patient (or a delegate acting for one): their compartment minus what is hidden from them."""

    patient: str
    hidden: frozenset[str]
    _memo: dict[int, tuple[FromClause, ColumnElement[bool]]] = _memo()

    def _build(self, table: FromClause) -> ColumnElement[bool]:
        own = and_(table.c.compartment == self.patient, not_(labelled(table, self.hidden)))
        public = and_(table.c.compartment.is_(None), table.c.resource_type.in_(sorted(PUBLIC_TYPES)))
        return or_(own, public)


@dataclass(frozen=True)
class ProfessionalFilter(_Memo):
    """A professional: compartments of the patients they may see, by profession, minus masked items.

    `full` patients are seen with every type (médecin traitant, break-glass); `matrix` patients with
    the types and document kinds of the profession's row. Masked items (MASQUE_PS label, or named by
    a patient's mask Consent) stay hidden unless this professional authored them.
    """

    full: frozenset[str]
    matrix: frozenset[str]
    types: frozenset[str] | None
    documents: frozenset[str] | None
    refs: frozenset[str]
    masked: frozenset[tuple[str, str]]
    _memo: dict[int, tuple[FromClause, ColumnElement[bool]]] = _memo()

    def _build(self, table: FromClause) -> ColumnElement[bool]:
        c = table.c
        groups: list[ColumnElement[bool]] = []
        if self.full:
            groups.append(c.compartment.in_(sorted(self.full)))
        if self.matrix:
            groups.append(and_(c.compartment.in_(sorted(self.matrix)), self._kind_allowed(table)))
        patient_part = and_(
            or_(*groups) if groups else false(),
            c.resource_type.not_in(sorted(PATIENT_PRIVATE_TYPES)),
            not_(and_(self._masked(table), not_(self._authored(table)))),
        )
        public = and_(c.compartment.is_(None), c.resource_type.not_in(sorted(PATIENT_PRIVATE_TYPES)))
        return or_(patient_part, public)

    def _kind_allowed(self, table: FromClause) -> ColumnElement[bool]:
        c = table.c
        allowed = true() if self.types is None else c.resource_type.in_(sorted(self.types))
        if self.documents is None or "resource_key" not in c:
            return allowed
        hashes = [value_hash("DocumentReference", "type", code) for code in sorted(self.documents)]
        tokens = POLICY_KINDS
        document_ok = exists(
            select(tokens.c.resource_key).where(
                tokens.c.resource_key == c.resource_key, tokens.c.value_hash.in_(hashes)
            )
        )
        return and_(allowed, or_(c.resource_type != "DocumentReference", document_ok))

    def _masked(self, table: FromClause) -> ColumnElement[bool]:
        c = table.c
        by_type: dict[str, list[str]] = {}
        for resource_type, id in sorted(self.masked):
            by_type.setdefault(resource_type, []).append(id)
        named = [and_(c.resource_type == t, c.id.in_(ids)) for t, ids in by_type.items()]
        return or_(labelled(table, [MASQUE_PS]), *named)

    def _authored(self, table: FromClause) -> ColumnElement[bool]:
        hashes = [
            system_value_hash(resource_type, param, *ref.split("/", 1))
            for resource_type, param in AUTHOR_PARAMS
            for ref in sorted(self.refs)
        ]
        if not hashes or "resource_key" not in table.c:
            return false()
        authors = POLICY_AUTHORS
        return exists(
            select(authors.c.resource_key).where(
                authors.c.resource_key == table.c.resource_key, authors.c.target_hash.in_(hashes)
            )
        )


@dataclass(frozen=True)
class Narrowed(_Memo):
    """SMART scopes narrowing another filter (never widening it).

    `user_types`: types readable through user/ or system/ scopes ("*" for all); `patient_types`:
    types readable through patient/ scopes, only in the launch patient's compartment.
    """

    inner: AccessFilter
    user_types: frozenset[str]
    patient_types: frozenset[str]
    patient: str | None
    _memo: dict[int, tuple[FromClause, ColumnElement[bool]]] = _memo()

    def _build(self, table: FromClause) -> ColumnElement[bool]:
        c = table.c
        options: list[ColumnElement[bool]] = []
        if "*" in self.user_types:
            options.append(true())
        elif self.user_types:
            options.append(c.resource_type.in_(sorted(self.user_types)))
        if self.patient is not None and self.patient_types:
            in_compartment = c.compartment == self.patient
            if "*" in self.patient_types:
                options.append(in_compartment)
            else:
                options.append(and_(in_compartment, c.resource_type.in_(sorted(self.patient_types))))
        return and_(self.inner.condition(table), or_(*options) if options else false())
