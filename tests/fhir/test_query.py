from __future__ import annotations

from decimal import Decimal

import pytest

from socle.fhir.errors import Invalid
from socle.fhir.query import (
    Chain,
    Clause,
    CompositeValue,
    DateValue,
    Has,
    IdentifierTypeValue,
    MissingValue,
    NumberValue,
    QuantityValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
    parse_query,
)
from socle.fhir.search_params import date_range


def test_example_query_of_the_brief() -> None:
    query = parse_query("Patient", "identifier=http://a|b&birthdate=ge2000-01&name:exact=Dupont&_id=1,2")
    assert query.resource_type == "Patient"
    assert [(c.name, c.modifier, c.values) for c in query.clauses] == [
        ("identifier", None, (TokenValue("http://a", "b"),)),
        ("birthdate", None, (DateValue("ge", *date_range("2000-01")),)),
        ("name", "exact", (StringValue("Dupont"),)),
        ("_id", None, (TokenValue(None, "1"), TokenValue(None, "2"))),
    ]
    assert query.clauses[0].param.type == "token"
    assert query.unknown == ()


def test_token_forms_and_escapes() -> None:
    values = parse_query("Observation", r"code=a,|b,s|,s|c\|d,x\,y").clauses[0].values
    assert values == (
        TokenValue(None, "a"),
        TokenValue("", "b"),
        TokenValue("s", None),
        TokenValue("s", "c|d"),
        TokenValue(None, "x,y"),
    )


def test_percent_decoding_keeps_plus() -> None:
    query = parse_query("Patient", "birthdate=ge2020-01-01T10:00+01:00&family=Dup%C3%A9")
    assert query.clauses[0].values == (DateValue("ge", *date_range("2020-01-01T10:00+01:00")),)
    assert query.clauses[1].values == (StringValue("Dupé"),)


def test_repeated_parameters_are_anded() -> None:
    query = parse_query("Patient", [("birthdate", "ge2000"), ("birthdate", "lt2010")])
    assert [c.values[0].prefix for c in query.clauses] == ["ge", "lt"]  # type: ignore[union-attr]


def test_numbers_and_quantities_have_implicit_precision() -> None:
    number = parse_query("RiskAssessment", "probability=gt0.8").clauses[0].values[0]
    assert number == NumberValue("gt", Decimal("0.8"), 0.75, 0.85)
    quantity = (
        parse_query("Observation", "value-quantity=5.4|http://unitsofmeasure.org|mg").clauses[0].values[0]
    )
    assert quantity == QuantityValue("eq", Decimal("5.4"), 5.35, 5.45, "http://unitsofmeasure.org", "mg")
    no_system = parse_query("Observation", "value-quantity=le100||kg").clauses[0].values[0]
    assert no_system == QuantityValue("le", Decimal("100"), 99.5, 100.5, None, "kg")
    with pytest.raises(Invalid):
        parse_query("Observation", "value-quantity=5|mg")
    with pytest.raises(Invalid):
        parse_query("RiskAssessment", "probability=abc")


def test_references() -> None:
    def values(query: str) -> tuple[object, ...]:
        return parse_query("Observation", query).clauses[0].values

    assert values("subject=Patient/1") == (ReferenceValue("Patient", "1", None),)
    assert values("subject=1") == (ReferenceValue(None, "1", None),)
    assert values("subject:Patient=1") == (ReferenceValue("Patient", "1", None),)
    assert values("specimen=1") == (ReferenceValue("Specimen", "1", None),)  # single target
    url = "https://h.example/fhir/Patient/1"
    assert values(f"subject={url}") == (ReferenceValue("Patient", "1", url),)
    assert values("subject:identifier=urn:oid:1.2|99") == (TokenValue("urn:oid:1.2", "99"),)
    with pytest.raises(Invalid):
        values("subject:Group=Patient/1")


def test_uri_missing_and_token_text() -> None:
    assert parse_query("ValueSet", "url=http://x/vs").clauses[0].values == (UriValue("http://x/vs"),)
    assert parse_query("Patient", "gender:missing=true").clauses[0].values == (MissingValue(True),)
    assert parse_query("Observation", "code:text=Body").clauses[0].values == (StringValue("Body"),)
    with pytest.raises(Invalid):
        parse_query("Patient", "gender:missing=maybe")


def test_unknown_parameters_lenient_and_strict() -> None:
    query = parse_query(
        "Patient", "foo=1&organization.nope=x&_has:Observation:subject:nope=1&gender=male&_count=5"
    )
    assert query.unknown == ("foo", "organization.nope", "_has:Observation:subject:nope")
    assert [c.name for c in query.clauses] == ["gender"]
    assert query.controls == (("_count", "5"),)
    with pytest.raises(Invalid) as error:
        parse_query("Patient", "foo=1&bar=2&gender=male", strict=True)
    assert "foo" in error.value.diagnostics and "bar" in error.value.diagnostics
    assert len(error.value.issues) == 2


def test_invalid_values_and_modifiers() -> None:
    with pytest.raises(Invalid):
        parse_query("Patient", "birthdate=ge20xx")
    with pytest.raises(Invalid):
        parse_query("Patient", "name:below=x")
    with pytest.raises(Invalid):
        parse_query("NotAType", "x=1")


def test_empty_values_are_ignored() -> None:
    assert parse_query("Patient", "name=&gender=").clauses == ()


def test_chains_are_typed_per_target_type() -> None:
    (chain,) = parse_query("Observation", "subject.name=peter").clauses
    assert isinstance(chain, Chain)
    assert chain.param.name == "subject" and chain.type_modifier is None
    # subject may be a Group, Device, Patient or Location: `name` exists on Patient and Location
    assert sorted(c.resource_type for c in chain.criteria) == ["Location", "Patient"]
    assert all(isinstance(c, Clause) and c.values == (StringValue("peter"),) for c in chain.criteria)
    assert chain.text == "subject.name"

    (typed,) = parse_query("Encounter", "subject:Patient.general-practitioner.name:exact=x").clauses
    assert isinstance(typed, Chain) and typed.type_modifier == "Patient"
    (inner,) = typed.criteria
    assert isinstance(inner, Chain) and inner.resource_type == "Patient"
    assert sorted(c.resource_type for c in inner.criteria) == ["Organization", "Practitioner"]
    assert typed.text == "subject:Patient.general-practitioner.name:exact"


def test_reverse_chains_nest() -> None:
    (has,) = parse_query(
        "Patient", "_has:Observation:patient:_has:AuditEvent:entity:agent=Practitioner/1"
    ).clauses
    assert isinstance(has, Has) and has.resource_type == "Patient"
    assert (has.param.resource_type, has.param.name) == ("Observation", "patient")
    inner = has.criterion
    assert isinstance(inner, Has) and inner.resource_type == "Observation"
    assert (inner.param.resource_type, inner.param.name) == ("AuditEvent", "entity")
    assert isinstance(inner.criterion, Clause)
    assert inner.criterion.values == (ReferenceValue("Practitioner", "1", None),)
    assert has.text == "_has:Observation:patient:_has:AuditEvent:entity:agent"
    with pytest.raises(Invalid):
        parse_query("Patient", "_has:Observation:code:status=final")  # not a reference
    with pytest.raises(Invalid):
        parse_query("Patient", "_has:Observation:specimen:status=final")  # cannot point to a Patient
    with pytest.raises(Invalid):
        parse_query("Patient", "_has:Observation:patient")
    with pytest.raises(Invalid):
        parse_query("Observation", "subject:Practitioner.name=x")


def test_chain_depth_is_limited() -> None:
    parse_query("Observation", "patient.link.link.link.name=x")
    with pytest.raises(Invalid):
        parse_query("Observation", "patient.link.link.link.link.link.name=x")


def test_composite_values_are_read_per_component() -> None:
    (clause,) = parse_query(
        "Observation", r"code-value-quantity=http://loinc.org|8480-6$gt100||mm[Hg]"
    ).clauses
    assert isinstance(clause, Clause)
    assert clause.values == (
        CompositeValue(
            (
                TokenValue("http://loinc.org", "8480-6"),
                QuantityValue("gt", Decimal(100), 99.5, 100.5, None, "mm[Hg]"),
            )
        ),
    )
    (concept,) = parse_query("Observation", r"code-value-concept=a$b,c\$d$e").clauses
    assert concept.values == (  # type: ignore[union-attr]
        CompositeValue((TokenValue(None, "a"), TokenValue(None, "b"))),
        CompositeValue((TokenValue(None, "c$d"), TokenValue(None, "e"))),
    )
    with pytest.raises(Invalid):
        parse_query("Observation", "code-value-quantity=8480-6")
    with pytest.raises(Invalid):
        parse_query("Observation", "code-value-quantity=a$b$c")
    with pytest.raises(Invalid):
        parse_query("Observation", "code-value-date=a$notadate")


def test_of_type_and_modifier_checks() -> None:
    (clause,) = parse_query("Patient", "identifier:of-type=http://x|MR|123").clauses
    assert clause.values == (IdentifierTypeValue("http://x", "MR", "123"),)  # type: ignore[union-attr]
    for bad in ("identifier:of-type=MR|123", "identifier:of-type=x||1", "birthdate:exact=2000", "name:not=x"):
        with pytest.raises(Invalid):
            parse_query("Patient", bad)
