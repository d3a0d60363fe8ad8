from __future__ import annotations

import pytest

from socle.referentials.directory.extraction import LineError
from socle.referentials.directory.finess_file import (
    finess_layout,
    lambert93_to_wgs84,
    parse_establishment,
    parse_geolocation,
    wgs84_to_lambert93,
)

RAW = (
    "structureet;300017985;300780046;CH ALES;CENTRE HOSPITALIER D'ALES;;BP 139;811;AV;DR JEAN GOUBERT;;;"
    "007;30;GARD;30103 ALES CEDEX;0466783333;0466783332;355;Centre Hospitalier (C.H.);1102;CH;"
    "26300017600011;8610Z;03;ARS / DG EPS;1;Etablissement public;1900-01-01;1900-01-01;2024-01-01;"
)


def test_layouts() -> None:
    assert finess_layout("finess;etalab;95;2024-01-01") is not None
    assert finess_layout("finess;etalab;95;2024-01-01").raw  # type: ignore[union-attr]
    named = finess_layout("nofinesset;nofinessej;rs;cog;codepostal;categetab")
    assert named is not None and not named.raw and named.columns[3] == "cog"
    assert finess_layout("Type d'identifiant PP|Identifiant PP") is None


def test_raw_establishment() -> None:
    layout = finess_layout("finess;etalab;1;2024-01-01")
    assert layout is not None
    e = parse_establishment(RAW, layout)
    assert e is not None
    assert (e.finess, e.legal_finess, e.category) == ("300017985", "300780046", "355")
    assert (e.commune_code, e.postcode, e.city) == ("30007", "30103", "ALES CEDEX")
    assert e.name == "CENTRE HOSPITALIER D'ALES" and e.short_name == "CH ALES"
    assert e.address_lines == ("BP 139", "811 AV DR JEAN GOUBERT")
    assert e.warnings == ("SIRET 26300017600011: check digit (Luhn) does not match (SIRET ignored)",)
    assert parse_establishment("geolocalisation;300017985;1;2;x;y", layout) is None
    with pytest.raises(LineError, match="at least 22 fields"):
        parse_establishment("structureet;300017985;1", layout)
    with pytest.raises(LineError, match="FINESS"):
        parse_establishment(RAW.replace("300017985", "3000179"), layout)


def test_overseas_commune_codes() -> None:
    layout = finess_layout("finess;etalab;1;2024-01-01")
    assert layout is not None
    e = parse_establishment(
        RAW.replace(";007;30;GARD;", ";101;9A;GUADELOUPE;").replace("300017985", "9A0000123"), layout
    )
    assert e is not None and e.commune_code == "97101"


def test_named_columns() -> None:
    header = "nofinesset;nofinessej;rs;categetab;cog;codepostal;coordx;coordy"
    layout = finess_layout(header)
    assert layout is not None
    e = parse_establishment(
        '"300017985";"300780046";"CH ALES";"355";"30007";"30100";"780000.5";"6330000.1"', layout
    )
    assert e is not None and (e.commune_code, e.postcode, e.x) == ("30007", "30100", 780000.5)
    with pytest.raises(LineError, match="expected 8 fields"):
        parse_establishment("300017985;x", layout)


def test_geolocation_and_lambert93() -> None:
    assert parse_geolocation("geolocalisation;300017985;652301.6;6861302.7;1,IGN,LAMBERT_93;2024") == (
        "300017985",
        652301.6,
        6861302.7,
        "1,IGN,LAMBERT_93",
    )
    assert parse_geolocation("structureet;1;2;3") is None
    x, y = wgs84_to_lambert93(48.85, 2.35)
    lat, lon = lambert93_to_wgs84(x, y) or (0.0, 0.0)
    assert abs(lat - 48.85) < 1e-7 and abs(lon - 2.35) < 1e-7
    assert abs(x - 652301.6) < 1 and abs(y - 6861302.7) < 1  # Notre-Dame is about (652 300, 6 861 300)
    assert lambert93_to_wgs84(0, 0) is None  # outside metropolitan France
