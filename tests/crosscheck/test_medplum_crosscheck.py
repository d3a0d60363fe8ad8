"""Socle's search against an independent implementation: Medplum's in-memory repository.

The Synthea bundles (and `extra_resources.json`) go into Socle, Socle's export goes into Medplum's
`MemoryRepository` (`medplum_search.mjs`, pinned in package.json), and every query of `queries.txt`
runs on both. Result sets must be equal, page sizes must respect `_count`, and with `_sort` the
order must follow the key (R4 search.html#sort) and match Medplum's when the key is unique.

Medplum's matcher departs from R4 in known places. Each such query is listed in
KNOWN_MEDPLUM_DEVIATIONS with the R4 rule and the relation that must still hold (Socle ⊆ Medplum
for "subset"…): the test fails on any other disagreement. A disagreement where Socle is wrong is
never listed here: it stays failing until Socle is fixed. Queries Socle answers "not supported"
(400 not-supported, or parameters reported ignored in the Bundle's OperationOutcome) are counted
apart: while there are any, the test is an expected failure (xfail) naming them, never a pass.

Needs Node.js and `npm ci --prefix tests/crosscheck --no-audit --no-fund` (run by `make test`).
Set SOCLE_CROSSCHECK_REPORT=DIR to also get the full report as text and JSON in DIR.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.crosscheck.harness import load_into_socle, medplum_search, read_queries, socle_search
from tests.crosscheck.verdict import Deviation, Outcome, judge

# The R4 rules Medplum's in-memory matcher (@medplum/core 4.5.2, search/match.ts) departs from.
TOKEN_CASE = "R4 search.html#token: a code/identifier matches case-sensitively; Medplum lowercases both sides"
TOKEN_TEXT = (
    "R4 search.html#token :text is a string match on the text/display (Socle: starts with); "
    "Medplum compares whole display/text values as codes"
)
STRING_STARTS = (
    "R4 search.html#string: by default a value matches if it equals or starts with it; Medplum: contains"
)
STRING_EXACT = (
    "R4 search.html#string :exact matches the whole value, case and accents included; Medplum: contains"
)
ACCENTS = "R4 search.html#string: the match ignores case and accents; Medplum folds case but not accents"
NAME_PARTS = (
    "R4 search.html#string: name matches any part of a HumanName (family, given, prefix, suffix, text); "
    "Medplum matches its formatted whole name"
)
DATE_EQ = (
    "R4 search.html#prefix eq: the search value's range fully contains the target's; Medplum: ranges overlap"
)
DATE_NE = (
    "R4 search.html#prefix ne: the search range does not fully contain the target's; Medplum: no overlap"
)
DATE_AP = (
    "R4 search.html#prefix ap: approximately (10% of the gap to now recommended); Medplum: ranges overlap"
)
URI_EXACT = (
    "R4 search.html#uri: a uri matches exactly (case-sensitive); Medplum matches uri parameters by substring"
)
INSTANT_MS = (
    "R4 search.html#date: eq = the target instant lies in the searched second; Medplum truncates instants to "
    "milliseconds and tests overlap strictly, so it misses a lastUpdated in the second's first millisecond"
)
URI_ABOVE = (
    "R4 search.html#uri :above matches stored uris the value starts with; Medplum: stored uri contains value"
)

# Query (as written in queries.txt) → the relation that must still hold, and why Medplum differs.
# "subset": Socle ⊆ Medplum; "superset": Socle ⊇ Medplum (see verdict.TOLERATED). Never a Socle bug.
UCUM_CANONICAL = (
    "R4 search.html#quantity: a server may compare UCUM quantities in canonical units (Socle does: 1.8 m "
    "matches 179 cm, 30 pg is le 50 kg); Medplum compares only values stated in the same unit"
)

KNOWN_MEDPLUM_DEVIATIONS: dict[str, Deviation] = {
    "Observation?value-quantity=1.8|http://unitsofmeasure.org|m": Deviation("superset", UCUM_CANONICAL),
    "Observation?value-quantity=le50|http://unitsofmeasure.org|kg": Deviation("superset", UCUM_CANONICAL),
    "Observation?value-quantity=1.79|http://unitsofmeasure.org|m": Deviation("superset", UCUM_CANONICAL),
    "Observation?value-quantity=gt0.1|http://unitsofmeasure.org|t&code=29463-7": Deviation(
        "superset", UCUM_CANONICAL
    ),
    "Patient?identifier=XC-NOSYS-1": Deviation("subset", TOKEN_CASE),
    "Patient?gender=MALE": Deviation("subset", TOKEN_CASE),
    "Observation?code:text=body": Deviation("superset", TOKEN_TEXT),
    "Patient?family=er": Deviation("subset", STRING_STARTS),
    "Patient?given=an": Deviation("subset", STRING_STARTS),
    "Patient?address=Koch": Deviation("subset", STRING_STARTS),
    "Patient?address=rue de la": Deviation("subset", STRING_STARTS),
    "Organization?name=BOSTON": Deviation("subset", STRING_STARTS),
    "Patient?family:exact=hoeger": Deviation("subset", STRING_EXACT),
    "CodeSystem?name:exact=XcColours": Deviation("subset", STRING_EXACT),
    "Patient?name=Hélène Marie": Deviation("subset", NAME_PARTS),
    "Patient?name=helene": Deviation("superset", ACCENTS),
    "Patient?family:contains=lefe": Deviation("superset", ACCENTS),
    "Patient?given=sean": Deviation("superset", ACCENTS),
    "Patient?address-city=saint-etienne": Deviation("superset", ACCENTS),
    "Patient?birthdate=1990-05-10": Deviation("subset", DATE_EQ),
    "Observation?date=2015-03-10T12:00:00Z": Deviation("subset", DATE_EQ),
    "Observation?date=2015-03-11&code=29463-7": Deviation("subset", DATE_EQ),
    "Observation?date=2015-03-11T04:30:00Z": Deviation("subset", DATE_EQ),
    "Observation?date=2015-03-11T05:30:00+01:00": Deviation("subset", DATE_EQ),
    "Encounter?date=2007-06-04T06:00:00Z": Deviation("subset", DATE_EQ),
    "CarePlan?date=2013": Deviation("subset", DATE_EQ),
    "Observation?date=ne2015-03-11&code=29463-7&subject={ee9f8dd8}": Deviation("superset", DATE_NE),
    "Patient?birthdate=ap1986": Deviation("superset", DATE_AP),
    "Patient?_lastUpdated={lastUpdated:xc-oneil}": Deviation("superset", INSTANT_MS),
    "Procedure?date=ap2013-03-04": Deviation("superset", DATE_AP),
    "CodeSystem?url=http://example.org/fhir/CodeSystem/xc-colours": Deviation("subset", URI_EXACT),
    "CodeSystem?url:above=http://example.org/fhir/CodeSystem/xc-colours/extended/v2": Deviation(
        "superset", URI_ABOVE
    ),
}


def _report(backend: str, outcomes: list[Outcome]) -> str:
    counts = Counter(o.kind for o in outcomes)
    lines = [
        f"Medplum cross-check on {backend}: {len(outcomes)} queries, {counts['agree']} agree exactly, "
        f"{counts['deviation']} known Medplum deviations, {counts['disagree']} disagreements, "
        f"{counts['unsupported']} unsupported by Socle"
    ]
    for kind in ("disagree", "unsupported", "deviation"):
        for o in (o for o in outcomes if o.kind == kind):
            lines.append(f"  [{kind}] line {o.query.line}: {o.query.text}")
            sizes = o.socle.page_sizes
            lines.append(f"      Socle {len(o.socle.ids)} ids (pages {sizes}), Medplum {len(o.medplum_ids)}")
            lines += [f"      {tag}: {text}" for tag, text in o.problems.items()]
            if o.note:
                lines.append(f"      {o.note}")
    return "\n".join(lines)


def _save(backend: str, text: str, outcomes: list[Outcome], resources: list[dict[str, Any]]) -> None:
    directory = os.environ.get("SOCLE_CROSSCHECK_REPORT")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"crosscheck-{backend}.txt").write_text(text + "\n")
    rows = [
        {
            "line": o.query.line,
            "query": o.query.text,
            "resolved": o.query.params,
            "kind": o.kind,
            "problems": o.problems,
            "note": o.note,
            "socle": o.socle.ids,
            "medplum": o.medplum_ids,
        }
        for o in outcomes
    ]
    (path / f"crosscheck-{backend}.json").write_text(json.dumps(rows, indent=1))
    (path / f"resources-{backend}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in resources))


def test_search_agrees_with_medplum(client: TestClient, backend: str, tmp_path: Path) -> None:
    loaded = load_into_socle(client)
    queries = read_queries(loaded)
    assert len(queries) >= 100
    written = {q.text for q in queries}
    assert len(written) == len(queries), "a query is written twice in queries.txt"
    stale = sorted(set(KNOWN_MEDPLUM_DEVIATIONS) - written)
    assert not stale, f"allow-listed queries missing from queries.txt: {stale}"
    answers = medplum_search(loaded.resources, queries, tmp_path)
    outcomes = [
        judge(q, socle_search(client, q.resource_type, q.params), a, KNOWN_MEDPLUM_DEVIATIONS.get(q.text))
        for q, a in zip(queries, answers, strict=True)
    ]
    text = _report(backend, outcomes)
    print(text)
    _save(backend, text, outcomes, loaded.resources)
    kinds = Counter(o.kind for o in outcomes)
    if kinds["disagree"]:
        pytest.fail(text, pytrace=False)
    if kinds["unsupported"]:
        unsupported = [f"line {o.query.line}: {o.query.text}" for o in outcomes if o.kind == "unsupported"]
        pytest.xfail("\n".join([text.splitlines()[0], "Unsupported by Socle:", *unsupported]))
