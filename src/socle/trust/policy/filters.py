"""The access filters the policy hands to the store: SQL conditions over a resource-shaped table.

Each filter is built once per request and is immutable; its `condition(table)` is ANDed by the store
into every SELECT on `resource` or `resource_history` (or an alias of them), so every read path
(read, vread, search with chains/_has/_include/_revinclude, history, compartment search,
$everything, batch entries, operations) returns only admitted rows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, FromClause, and_, exists, false, not_, or_, select, true

from socle.fhir.hashing import system_value_hash, value_hash
from socle.store.access import AccessFilter
from socle.store.indexes import idx_reference, idx_token
from socle.store.schema import resource, resource_history
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
    """A filter's condition per table object, built once per request (statements reuse them)."""

    _memo: dict[int, tuple[FromClause, ColumnElement[bool]]]

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        if table is resource or table is resource_history:  # shared: reuse across equal decisions
            return _shared_condition(self, table.name)
        hit = self._memo.get(id(table))
        if hit is None or hit[0] is not table:
            hit = (table, self._build(table))
            self._memo[id(table)] = hit
        return hit[1]

    def _build(self, table: FromClause) -> ColumnElement[bool]:
        raise NotImplementedError


@functools.lru_cache(maxsize=512)
def _shared_condition(access: _Memo, table_name: str) -> ColumnElement[bool]:
    """The condition of an equal decision on the store's own tables (expressions are immutable, so
    sharing them across requests is safe; the key is the whole decision, so a changed consent or
    relationship gives a different key: nothing stale is ever reused)."""
    return access._build(resource if table_name == "resource" else resource_history)


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
        tokens = idx_token.alias("policy_kinds")  # never correlated with an idx_token of the query
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
        authors = idx_reference.alias("policy_authors")  # never correlated with the query's own
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
