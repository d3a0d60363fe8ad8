"""Literal reference syntax and target types."""

from __future__ import annotations

import pytest

from socle.fhir._reference_syntax import reference_problem

TYPES = frozenset({"Patient", "Group", "Organization"})


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/1",
        "Patient/a.b-C/_history/2",
        "http://example.org/fhir/Anything/1",
        "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
        "urn:oid:1.2.3",
        "#",
        "#c1",
        "Patient?identifier=http://x|1",
    ],
)
def test_valid(reference: str) -> None:
    assert reference_problem(reference, TYPES, frozenset({"Patient", "Group"})) is None


@pytest.mark.parametrize(
    ("reference", "words"),
    [
        ("Patient/a_b", "not a valid resource id"),
        ("Patient/1/_history/v_1", "not a valid version id"),
        ("Foo/1", "not a resource type"),
        ("Organization/1", "only allows Group|Patient"),
        ("Organization?name=x", "only allows Group|Patient"),
        ("Patient", "expected Type/id"),
        ("urn:isbn:1", "urn:uuid: or urn:oid:"),
        ("#a b", "contained reference"),
        ("http://a b/Patient/1", "absolute URL"),
    ],
)
def test_invalid(reference: str, words: str) -> None:
    problem = reference_problem(reference, TYPES, frozenset({"Patient", "Group"}))
    assert problem is not None and words in problem


def test_any_target() -> None:
    assert reference_problem("Organization/1", TYPES, None) is None
