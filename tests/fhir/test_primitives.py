"""Primitive checkers, compiled from the regexes of the package's StructureDefinitions."""

from __future__ import annotations

import time

import pytest

from socle.fhir._primitives import Primitive
from socle.fhir.structure import compiled_schema


def primitive(name: str) -> Primitive:
    """The checker the validator uses for `name`, found through an element of that type."""
    extension = compiled_schema().types["Extension"]
    element = extension.elements["value" + name[0].upper() + name[1:]]
    assert element.primitive is not None
    return element.primitive


@pytest.mark.parametrize(
    ("name", "valid", "invalid"),
    [
        ("boolean", [True, False], ["true", 1, None]),
        ("integer", [0, -5, 2**31 - 1], [2**31, 1.0, "1", True]),
        ("positiveInt", [1], [0, -1]),
        ("unsignedInt", [0, 7], [-1]),
        ("decimal", [0, 1.5, -1e10], ["1.5", True]),
        ("date", ["2020", "2020-02", "2020-02-29"], ["2021-02-29", "2020-2", "20200101", ""]),
        (
            "dateTime",
            ["2020-01-02T03:04:05Z", "2020-01-02T03:04:05.123+01:00"],
            ["2020-01-02T03:04:05", "2020-01-31T24:00:00Z"],
        ),
        ("instant", ["2020-01-02T03:04:05Z"], ["2020-01-02", "2020-04-31T03:04:05Z"]),
        ("time", ["23:59:59", "00:00:00.5"], ["24:00:00", "12:00"]),
        ("code", ["final", "a b"], [" final", "a  b", "final ", ""]),
        ("id", ["a-1.B"], ["a_1", "x" * 65]),
        ("string", ["a", " ", "Jean\u00a0Martin", "line\nbreak\ttab"], ["", "bell\x07", "form\x0cfeed"]),
        ("markdown", ["# title\n\n*x*"], [""]),
        ("uri", ["http://x", "urn:a:b", "relative/path"], ["a b", ""]),
        ("oid", ["urn:oid:1.2.250.1"], ["1.2.250", "urn:oid:1.02"]),
        (
            "uuid",
            ["urn:uuid:c757873d-ec9a-4326-a141-556f43239520"],
            ["urn:uuid:C757873D-EC9A-4326-A141-556F43239520"],
        ),
        ("base64Binary", ["SGVsbG8=", "SGVs\nbG8="], ["SGVsbG8", "SGV*bG8="]),
    ],
)
def test_primitive_values(name: str, valid: list[object], invalid: list[object]) -> None:
    check = primitive(name).check
    assert [v for v in valid if check(v) is not None] == []
    assert [v for v in invalid if check(v) is None] == []


def test_base64_regex_does_not_backtrack_exponentially() -> None:
    # The published regex `(\s*([0-9a-zA-Z\+/=]){4}\s*)+` takes exponential time on this value.
    value = "QUJD\n" * 200 + "!"
    start = time.perf_counter()
    assert primitive("base64Binary").check(value) is not None
    assert time.perf_counter() - start < 0.5
