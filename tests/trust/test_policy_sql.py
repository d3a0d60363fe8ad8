"""The policy's condition rendered as SQL text (`PolicySQL`, both backends): the same rows as the
expression it is compiled from, on tables and named aliases alike, shared by equal decisions and
every alias of one name, and its inline values quoted by the dialect."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, FromClause, select

from socle.store.schema import resource, resource_history
from socle.trust.policy.filters import CitizenFilter, PolicySQL, ProfessionalFilter
from socle.trust.policy.labels import INVISIBLE_PATIENT, MASQUE_PS
from tests.trust.policy_world import endpoint, label, load, observation, patient


def _world() -> list[dict[str, Any]]:
    return [
        patient("p1", "female", 1, []),
        patient("p2", "male", 2, []),
        observation("o1", "p1"),
        observation("o2", "p1", [label(MASQUE_PS)]),
        observation("o3", "p1", [label(INVISIBLE_PATIENT)]),
        observation("o4", "p2"),
    ]


def _ids(engine: Engine, table: FromClause, access: Any) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.id).where(table.c.resource_type == "Observation", access.condition(table))
        )
        return {str(r[0]) for r in rows}


def _expression_ids(engine: Engine, table: FromClause, access: Any) -> set[str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(table.c.id).where(table.c.resource_type == "Observation", access._build(table))
        )
        return {str(r[0]) for r in rows}


def test_rendered_condition_admits_what_the_expression_admits(engine: Engine) -> None:
    load(endpoint(engine), _world())
    gp = ProfessionalFilter(
        frozenset({"p1"}), frozenset(), None, None, frozenset({"Practitioner/x"}), frozenset()
    )
    self_ = CitizenFilter("p1", frozenset({INVISIBLE_PATIENT}))
    for access, expected in ((gp, {"o1", "o3"}), (self_, {"o1", "o2"})):
        for table in (resource, resource.alias("newest"), resource_history, resource_history.alias("h")):
            assert _ids(engine, table, access) == expected == _expression_ids(engine, table, access)


def test_equal_decisions_and_aliases_of_one_name_share_one_rendering() -> None:
    def gp() -> ProfessionalFilter:
        return ProfessionalFilter(frozenset({"p1"}), frozenset(), None, None, frozenset(), frozenset())

    first, second = gp().condition(resource.alias("newest")), gp().condition(resource.alias("newest"))
    assert isinstance(first, PolicySQL) and first is second
    assert gp().condition(resource) is not first  # another name in SQL: its own rendering
    other = ProfessionalFilter(frozenset({"p2"}), frozenset(), None, None, frozenset(), frozenset())
    assert other.condition(resource.alias("newest")) is not first


def test_inline_values_are_quoted(engine: Engine) -> None:
    load(endpoint(engine), _world())
    quoted = CitizenFilter("p1' OR '1'='1", frozenset())
    assert _ids(engine, resource, quoted) == set()
