"""UCUM canonical forms: what converts, what does not (socle.fhir._ucum)."""

from __future__ import annotations

import pytest

from socle.fhir._ucum import canonical_unit, to_canonical


@pytest.mark.parametrize(
    ("value", "code", "same_as"),
    [
        (5.4, "g/L", (540, "mg/dL")),
        (1, "kg", (1000, "g")),
        (1, "[lb_av]", (453.59237, "g")),
        (16, "oz", None),  # not a UCUM code: `[oz_av]` is
        (37, "Cel", (98.6, "[degF]")),
        (0, "Cel", (273.15, "K")),
        (120, "mm[Hg]", (15.99864, "kPa")),
        (60, "/min", (1, "/s")),
        (72, "{beats}/min", (1.2, "s-1")),
        (5, "10*3/uL", (5, "10*9/L")),
        (1, "mL/min/{1.73_m2}", (60, "mL/h")),
        (25, "kg/m2", (2.5, "g/cm2")),
        (1, "[in_i]", (2.54, "cm")),
        (3, "[IU]/L", (3, "m[IU]/mL")),
        (50, "%", (0.5, "1")),
        (1, "(mg/dL)/h", (24, "mg/dL/d")),
    ],
)
def test_conversions(value: float, code: str, same_as: tuple[float, str] | None) -> None:
    converted = to_canonical(value, code)
    if same_as is None:
        assert converted is None
        return
    expected = to_canonical(*same_as)
    assert converted is not None and expected is not None
    assert converted[1] == expected[1]
    assert converted[0] == pytest.approx(expected[0], rel=1e-9)


def test_canonical_forms_are_base_units() -> None:
    assert to_canonical(5.4, "g/L") == (5400.0, "g.m-3")
    assert to_canonical(540, "mg/dL") == (5400.0, "g.m-3")  # rounded to 12 digits: equal floats
    assert to_canonical(1, "N") == (1000.0, "g.m.s-2")
    assert canonical_unit("mmol/L") is not None and canonical_unit("mg/dL") is not None
    assert canonical_unit("mmol/L").code != canonical_unit("mg/dL").code  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "code", ["", " ", "bogus", "mg.", "(mg", "mg)", "[pH]", "Cel/min", "Cel2", "dB", "m/{x", "kmin", "10*a"]
)
def test_codes_without_canonical_form(code: str) -> None:
    assert canonical_unit(code) is None
