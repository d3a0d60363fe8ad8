"""Per-request lookups: who a professional is, which patients they have a care relationship with,
and which patient choices (Consent) concern them. Computed on the request's connection, and cached
per process (`cached_relations`) under the database's policy stamp (`socle.store.policy_stamp`),
which every write of a Patient, CareTeam, Consent or PractitionerRole bumps in its own transaction:
a choice written by any process takes effect on the next request. A cached entry also expires when
a Consent it read starts or ends (a break-glass grant running out).

Care relationship (any of):
- médecin traitant: `Patient.generalPractitioner` references the Practitioner or one of their
  PractitionerRoles;
- treating team: an active (or status-less) CareTeam whose `participant.member` references them, in
  the patient's compartment (Encounter participation alone does NOT create a relationship: an
  encounter is a past event, a care team is the declared, revocable team);
- an access the patient granted (Consent permit naming them);
- a break-glass grant still running (Consent permit, purpose BTG, period not ended).
A block (Consent deny naming them, no data) removes the patient whatever else holds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import Connection, Engine, case, false, null, select

from socle.fhir.hashing import param_hash, system_value_hash
from socle.store import policy_stamp
from socle.store.indexes import idx_reference
from socle.store.schema import resource
from socle.trust.policy.consent import ConsentRule, next_change, parse_consent


@dataclass
class Relations:
    refs: frozenset[str]  # "Practitioner/x" and "PractitionerRole/…" of this professional
    gp: set[str] = field(default_factory=set)
    team: set[str] = field(default_factory=set)
    granted: set[str] = field(default_factory=set)
    emergency: dict[str, str] = field(default_factory=dict)  # patient → the break-glass reason
    blocked: set[str] = field(default_factory=set)
    masked: set[tuple[str, str]] = field(default_factory=set)
    # When a Consent read here starts or ends: the relations are only valid until then.
    changes: datetime | None = None

    def consent(self, body: dict[str, Any], now: datetime) -> ConsentRule | None:
        moment = next_change(body, now)
        if moment is not None and (self.changes is None or moment < self.changes):
            self.changes = moment
        return parse_consent(body, now)


def _rows(conn: Connection, resource_type: str, hashes: Sequence[int]) -> list[Any]:
    if not hashes:
        return []
    keys = select(idx_reference.c.resource_key).where(idx_reference.c.target_hash.in_(hashes))
    return list(
        conn.execute(
            select(resource.c.id, resource.c.compartment, resource.c.content).where(
                resource.c.resource_key.in_(keys),
                resource.c.resource_type == resource_type,
                resource.c.deleted == false(),
            )
        )
    )


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    data: dict[str, Any] = orjson.loads(value)
    return data


def _hashes(resource_type: str, param: str, refs: Iterable[str]) -> list[int]:
    return [system_value_hash(resource_type, param, *ref.split("/", 1)) for ref in sorted(refs)]


def practitioner_refs(conn: Connection, practitioner: str) -> frozenset[str]:
    roles = _rows(conn, "PractitionerRole", _hashes("PractitionerRole", "practitioner", [practitioner]))
    return frozenset({practitioner, *(f"PractitionerRole/{r[0]}" for r in roles)})


def consent_rules(conn: Connection, hashes: Sequence[int], now: datetime) -> list[ConsentRule]:
    rules = []
    for _id, _compartment, content in _rows(conn, "Consent", hashes):
        rule = parse_consent(_json(content), now)
        if rule is not None:
            rules.append(rule)
    return rules


def patient_consents(conn: Connection, patients: Iterable[str], now: datetime) -> list[ConsentRule]:
    """Every Consent in effect in these patients' compartments."""
    ids = sorted(set(patients))
    rules: list[ConsentRule] = []
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(resource.c.content).where(
                resource.c.resource_type == "Consent",
                resource.c.compartment.in_(ids[start : start + 500]),
                resource.c.deleted == false(),
            )
        )
        for (content,) in rows:
            rule = parse_consent(_json(content), now)
            if rule is not None:
                rules.append(rule)
    return rules


def mask_consents(
    conn: Connection, patients: Iterable[str], now: datetime, rel: Relations | None = None
) -> list[ConsentRule]:
    """The Consents of these patients that name data (masks): found through their `data` index rows."""
    ids = sorted(set(patients))
    data = param_hash("Consent", "data")
    rules: list[ConsentRule] = []
    for start in range(0, len(ids), 500):
        keys = select(
            idx_reference.c.resource_key
        ).where(
            idx_reference.c.param_hash == data,
            idx_reference.c.target_url.is_(None),  # served by the partial index on (param_hash, …)
            idx_reference.c.compartment.in_(ids[start : start + 500]),
        )
        rows: list[Any] = list(
            conn.execute(
                select(resource.c.content).where(
                    resource.c.resource_key.in_(keys),
                    resource.c.resource_type == "Consent",
                    resource.c.deleted == false(),
                )
            )
        )
        for (content,) in rows:
            body = _json(content)
            rule = rel.consent(body, now) if rel is not None else parse_consent(body, now)
            if rule is not None:
                rules.append(rule)
    return rules


def relations_of(conn: Connection, practitioner: str, now: datetime) -> Relations:
    refs = practitioner_refs(conn, practitioner)
    rel = Relations(refs)
    # patients naming them as GP, care teams and consents naming them: one statement
    named = (
        _hashes("Patient", "general-practitioner", refs)
        + _hashes("CareTeam", "participant", refs)
        + _hashes("Consent", "actor", refs)
    )
    keys = select(idx_reference.c.resource_key).where(idx_reference.c.target_hash.in_(named))
    rules: list[ConsentRule] = []
    content_unless_patient = case((resource.c.resource_type == "Patient", null()), else_=resource.c.content)
    named_rows: list[Any] = list(
        conn.execute(
            select(
                resource.c.resource_type, resource.c.id, resource.c.compartment, content_unless_patient
            ).where(
                resource.c.resource_key.in_(keys),
                resource.c.resource_type.in_(["Patient", "CareTeam", "Consent"]),
                resource.c.deleted == false(),
            )
        )
    )
    for resource_type, id, compartment, content in named_rows:
        if resource_type == "Patient":
            rel.gp.add(str(id))
            continue
        body = _json(content)
        if resource_type == "CareTeam":
            if compartment and body.get("status") in (None, "active", "proposed"):
                rel.team.add(compartment)
        else:
            rule = rel.consent(body, now)
            if rule is not None:
                rules.append(rule)
    for rule in rules:
        if rule.patient is None or not (rule.actors & refs):
            continue
        if rule.kind == "grant":
            rel.granted.add(rule.patient)
        elif rule.kind == "break-glass":
            rel.emergency[rule.patient] = rule.reason or rel.emergency.get(rule.patient) or ""
        elif rule.kind == "block":
            rel.blocked.add(rule.patient)
    related = (rel.gp | rel.team | rel.granted | rel.emergency.keys()) - rel.blocked
    for rule in mask_consents(conn, related, now, rel):
        if rule.kind == "mask" and (not rule.actors or rule.actors & refs):
            rel.masked |= rule.data
    return rel


@dataclass(frozen=True)
class _Entry:
    generation: int
    since: datetime  # the `now` it was computed for
    relations: Relations


_CACHE: WeakKeyDictionary[Engine, dict[str, _Entry]] = WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()
CACHE_SIZE = 10_000  # professionals per database; past it the cache starts over


def cached_relations(conn: Connection, practitioner: str, now: datetime) -> Relations:
    """`relations_of`, reused while the database's policy stamp is unchanged and no Consent it read
    has started or ended since. The stamp is read before the relations, so an entry is never older
    than its generation. Callers must not mutate the result (it is shared)."""
    generation = policy_stamp.generation(conn)
    if generation is None:
        return relations_of(conn, practitioner, now)
    with _CACHE_LOCK:
        entries = _CACHE.setdefault(conn.engine, {})
        entry = entries.get(practitioner)
    if entry is not None and entry.generation == generation and entry.since <= now:
        changes = entry.relations.changes
        if changes is None or now < changes:
            return entry.relations
    rel = relations_of(conn, practitioner, now)
    if not policy_stamp.bumped_here(conn):  # nothing uncommitted of this transaction's own
        with _CACHE_LOCK:
            if len(entries) >= CACHE_SIZE:
                entries.clear()
            entries[practitioner] = _Entry(generation, now, rel)
    return rel


def opposes_emergency(conn: Connection, patient: str, now: datetime) -> bool:
    return any(r.kind == "oppose-emergency" for r in patient_consents(conn, [patient], now))
