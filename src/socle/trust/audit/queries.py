"""Reading AuditEvents back: by id, or searched (patient, date, agent, entity, action, outcome,
subtype, _id), newest first, paged by `seq`, always under the request's access filter.

The audit table has the policy's columns (`resource_type`, `compartment`, `security`), so
`access.condition(audit_event)` is the same filter every other read path carries: a patient whose
policy admits only their own compartment lists only the events about them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from socle.fhir._query_values import DateValue, read_value, split_values
from socle.fhir.errors import Invalid
from socle.fhir.search_params import registry
from socle.store._search_ranges import date_condition
from socle.store.access import AccessFilter
from socle.store.audit_tables import audit_event

# Parameter names → how they are matched. `who` is accepted as an alias of `agent`.
SEARCH_PARAMS = ("_id", "patient", "agent", "entity", "action", "outcome", "subtype", "date")
_ALIASES = {"who": "agent"}


@dataclass
class AuditSearch:
    conditions: list[ColumnElement[bool]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (name, why)


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    id: str
    recorded: int
    content: bytes


def get(conn: Connection, id: str, access: AccessFilter) -> StoredEvent | None:
    e = audit_event
    row = conn.execute(
        select(e.c.seq, e.c.id, e.c.recorded, e.c.content).where(e.c.id == id, access.condition(e))
    ).first()
    return None if row is None else StoredEvent(row[0], row[1], row[2], bytes(row[3]))


def _reference_id(text: str, type_: str | None) -> str:
    """`Patient/1`, `http://host/fhir/Patient/1` or `1` → the reference text used in the columns."""
    text = text.strip()
    parts = text.rstrip("/").split("/")
    if type_ is not None:
        if len(parts) >= 2 and parts[-2] == type_:
            return parts[-1]
        if len(parts) == 1:
            return text
        raise Invalid(f"{text!r} is not a reference to a {type_}")
    return "/".join(parts[-2:]) if len(parts) >= 2 and "://" in text else text


def parse(params: Sequence[tuple[str, str]]) -> AuditSearch:
    """FHIR search parameters → SQL conditions on `audit_event`; unknown ones are listed as ignored."""
    search = AuditSearch()
    e = audit_event
    for raw_name, value in params:
        name = _ALIASES.get(raw_name, raw_name)
        values = [v for v in split_values(value)]
        if name not in SEARCH_PARAMS or ":" in raw_name:
            search.ignored.append(
                (raw_name, f"Unknown or unsupported search parameter {raw_name!r} for AuditEvent")
            )
            continue
        if not values:
            continue
        cond: ColumnElement[bool]
        if name == "_id":
            cond = e.c.id.in_(values)
        elif name == "patient":
            cond = e.c.compartment.in_([_reference_id(v, "Patient") for v in values])
        elif name == "agent":
            cond = e.c.agent.in_([_reference_id(v, None) for v in values])
        elif name == "entity":
            cond = or_(*(e.c.entity.contains(f" {_reference_id(v, None)} ", autoescape=True) for v in values))
        elif name in ("action", "outcome", "subtype"):
            column = {"action": e.c.action, "outcome": e.c.outcome, "subtype": e.c.subtype}[name]
            cond = column.in_([v.split("|")[-1] for v in values])
        else:  # date: AuditEvent.recorded, an instant: the range [recorded, recorded + 1µs)
            param = registry().params("AuditEvent")["date"]
            ranges = []
            for v in values:
                parsed = read_value(param, None, v, registry())
                assert isinstance(parsed, DateValue)
                ranges.append(date_condition(parsed, e.c.recorded, e.c.recorded + 1))
            cond = or_(*ranges)
        search.conditions.append(cond)
    return search


def page(
    conn: Connection,
    search: AuditSearch,
    access: AccessFilter,
    *,
    count: int,
    before: int | None = None,
    ascending: bool = False,
) -> tuple[list[StoredEvent], int | None]:
    """One page newest first (oldest first if `ascending`), and the cursor (a seq) of the next one."""
    e = audit_event
    where = [access.condition(e), *search.conditions]
    if before is not None:
        where.append(e.c.seq > before if ascending else e.c.seq < before)
    order = e.c.seq.asc() if ascending else e.c.seq.desc()
    rows = conn.execute(
        select(e.c.seq, e.c.id, e.c.recorded, e.c.content)
        .where(and_(*where))
        .order_by(order)
        .limit(count + 1)
    ).all()
    events = [StoredEvent(r[0], r[1], r[2], bytes(r[3])) for r in rows[:count]]
    return events, (events[-1].seq if len(rows) > count and events else None)


def total(conn: Connection, search: AuditSearch, access: AccessFilter) -> int:
    e = audit_event
    where = and_(access.condition(e), *search.conditions)
    return int(conn.execute(select(func.count()).select_from(e).where(where)).scalar_one())
