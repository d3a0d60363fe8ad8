"""The index tables serve every kind of predicate: no plan reads a whole index table.

The data set is small, so by cost alone PostgreSQL would rightly read whole tables or probe them
row by row: the test runs it with `enable_seqscan` and `enable_nestloop` off, so that a scan of an
index table without an index condition (a `Seq Scan`, or an index read from end to end) shows up
only when no index can answer the predicate. SQLite's `EXPLAIN QUERY PLAN` says `SCAN idx_...` for
a full read. Plans on ~100k rows were checked by hand (see the search report); this guards the shape.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from socle.fhir.query import parse_query
from socle.store.access import SYSTEM
from socle.store.search import compile_search
from tests.store.test_search_criteria import db  # noqa: F401  (the fixture)

QUERIES = [
    ("Observation", "subject:Patient.name=helene"),
    ("Observation", "subject.name=helene"),
    ("Encounter", "subject.general-practitioner.name=peter"),
    ("Patient", "_has:Observation:patient:code=2345-7"),
    ("Patient", "_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/dr-peter"),
    ("Patient", "identifier=urn:hosp|"),
    ("Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053"),
    ("Patient", "gender:not=male"),
    ("Patient", "gender:missing=true&birthdate:missing=false"),
    ("Patient", "family:exact=Dupont"),
    ("Observation", "value-quantity=0.973|http://unitsofmeasure.org|g/L"),
    ("Observation", "value-quantity=gt100||mg/dL"),
    ("Observation", "date=ge2020-01-01"),
    ("Observation", "component-code-value-quantity=http://loinc.org|8480-6$gt100"),
    ("Observation", "combo-code-value-concept=72166-2$449868002"),
    ("ValueSet", "url:above=http://acme.org/fhir/ValueSet/123/_history/1"),
    ("RiskAssessment", "probability=gt0.5"),
    # several criteria: one drives, the others are probes of each candidate (see PROBES below)
    ("Observation", "subject=Patient/p1&code=http://loinc.org|1234-5&date=ge2020-01-01"),
    ("Patient", "birthdate=1990-01-01&name=helene"),
    ("Observation", "code=http://loinc.org|1234-5&subject.name=helene&date=ge2020"),
    ("Patient", "gender=female&_has:Observation:patient:code=2345-7"),
]

# (type, query, the table the driving criterion reads, the tables read only as per-candidate probes)
PROBES = [
    ("Observation", "subject=Patient/p1&code=http://loinc.org|1234-5&date=ge2020-01-01", "idx_reference"),
    ("Observation", "date=ge2020-01-01&code=http://loinc.org|1234-5&subject=Patient/p1", "idx_reference"),
    ("Patient", "birthdate=1990-01-01&name=helene", "idx_string"),
    ("Observation", "code=http://loinc.org|1234-5&subject.name=helene&date=ge2020", "idx_string"),
    ("PractitionerRole", "active=true&identifier=urn:x|1&role=doctor", "idx_token"),
]


@pytest.mark.parametrize(("resource_type", "query"), QUERIES)
def test_no_full_read_of_an_index_table(db: Engine, resource_type: str, query: str) -> None:  # noqa: F811
    statement = compile_search(parse_query(resource_type, query, strict=True), SYSTEM).limit(21)
    with db.connect() as conn:
        sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))
            conn.execute(text("SET enable_nestloop = off"))
            plan = [str(row[0]) for row in conn.execute(text(f"EXPLAIN {sql}"))]
            full = _full_reads(plan)
        else:
            plan = [str(row[3]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
            full = [line for line in plan if line.startswith("SCAN idx_")]
    assert plan and not full, "\n".join(plan)


def _full_reads(plan: list[str]) -> list[str]:
    """PostgreSQL plan nodes reading an index table without an index condition."""
    found = []
    for n, line in enumerate(plan):
        if " on idx_" not in line or "Scan" not in line:
            continue
        depth = len(line) - len(line.lstrip())
        details = []
        for below in plan[n + 1 :]:
            if len(below) - len(below.lstrip()) <= depth or below.lstrip().startswith("->"):
                break
            details.append(below)
        if "Seq Scan" in line or not any("Index Cond" in d or "Recheck Cond" in d for d in details):
            found.append(line)
    return found


@pytest.mark.parametrize(("resource_type", "query", "driver"), PROBES)
def test_one_criterion_drives_the_others_probe(
    db: Engine,  # noqa: F811
    resource_type: str,
    query: str,
    driver: str,
) -> None:
    """The most selective criterion gives the candidates; every other one is a correlated probe of a
    candidate's own index rows (resource_key=?), never a list of every resource with a common code
    or date (which grows with the table: the 100k/10k scaling problem)."""
    statement = compile_search(parse_query(resource_type, query, strict=True), SYSTEM).limit(21)
    with db.connect() as conn:
        sql = str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        # The statement's shape, on both: one driving IN (or, for one code, the driver's index rows
        # joined in key order: store.search._stream_from), a correlated EXISTS per other criterion.
        streamed = f"FROM {driver} AS driving JOIN resource" in sql
        assert sql.count("resource.resource_key IN (SELECT") == (0 if streamed else 1), sql
        assert sql.count("WHERE idx_") >= query.count("&"), sql
        if conn.dialect.name != "sqlite":
            return  # PostgreSQL plans by cost (its plans are checked for full reads above)
        rows = [(int(r[1]), str(r[3])) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"))]
    plan = [line for _, line in rows]
    text_plan = "\n".join(plan)
    if streamed:
        assert plan[0].startswith("SEARCH driving USING COVERING INDEX"), text_plan
        assert "USE TEMP B-TREE" not in text_plan, text_plan  # read in key order: no sort
        assert [line for line in plan if line.startswith("SEARCH idx_") and "resource_key=?" in line]
        return
    # One driving set at the top of the plan (a chain's own inner lists sit below it).
    lists = [n for n, (parent, line) in enumerate(rows) if parent == 0 and line.startswith("LIST SUBQUERY")]
    assert len(lists) == 1, text_plan
    driving = plan[lists[0] + 1 :]
    assert any(line.startswith(f"SEARCH {driver} ") for line in driving), text_plan
    probes = [line for line in plan if line.startswith("SEARCH idx_") and "resource_key=?" in line]
    others = [line for line in plan if line.startswith("SEARCH idx_") and line not in probes]
    assert probes, text_plan
    assert all(line.startswith(f"SEARCH {driver} ") or "idx_reference" in line for line in others), text_plan
