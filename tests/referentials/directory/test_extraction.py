from __future__ import annotations

import pytest

from socle.referentials.directory.extraction import (
    ACTIVITY_COLUMNS,
    LineError,
    is_activity_header,
    parse_activity,
)
from tests.referentials.directory._lines import HEADER, RPPS, activity_line


def test_header_has_the_52_public_columns() -> None:
    assert len(ACTIVITY_COLUMNS) == 52
    assert is_activity_header(HEADER)
    assert not is_activity_header("nofinesset;nofinessej")


def test_parse_a_line() -> None:
    a = parse_activity(activity_line(siret="73282932000074", email="helene.lefevre@medecin.mssante.fr"))
    assert (a.id_type, a.identifier, a.idnat) == ("8", RPPS, "8" + RPPS)
    assert (a.family, a.given, a.civility_code, a.exercise_title_code) == ("LEFÈVRE", "Hélène", "MME", "DR")
    assert (a.profession_code, a.skill_code, a.mode_code) == ("10", "SM54", "L")
    assert (a.postcode, a.commune_code, a.siret, a.siren) == ("75015", "75115", "73282932000074", "732829320")
    assert a.address_lines == ("12 RUE DE LA PAIX",)
    assert a.structure_key == "siret-73282932000074"  # FINESS first, then SIRET, then technical id
    assert a.warnings == ()


def test_structure_key_order() -> None:
    assert parse_activity(activity_line(finess="300017985")).structure_key == "finess-300017985"
    assert parse_activity(activity_line()).structure_key == "tech-C0000000001"
    assert parse_activity(activity_line(tech="")).structure_key == ""


def test_trailing_pipe_is_optional_but_field_count_is_not() -> None:
    line = activity_line()
    assert parse_activity(line[:-1]).identifier == RPPS
    with pytest.raises(LineError, match="expected 52 fields.*got 51"):
        parse_activity(line.rsplit("|", 3)[0] + "|")  # 50 columns + trailing pipe
    with pytest.raises(LineError, match="got 1"):
        parse_activity("garbage")


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"identifier": "123"}, "RPPS '123': expected 11 digits"),
        ({"id_type": "3"}, "unknown 'Type d'identifiant PP' '3'"),
        ({"id_type": ""}, "empty 'Type d'identifiant PP'"),
        ({"idnat": "899999999999"}, "does not match its type"),
        ({"family": ""}, "empty 'Nom d'exercice'"),
        ({"profession": ""}, "empty 'Code profession'"),
        ({"finess": "12345"}, "FINESS '12345'"),
        ({"siret": "73282932000075"}, "SIRET 73282932000075: check digit"),
    ],
)
def test_malformed_lines_say_why(values: dict[str, str], reason: str) -> None:
    with pytest.raises(LineError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_activity(activity_line(**values))


def test_adeli_line_and_rpps_key_warning() -> None:
    adeli = parse_activity(activity_line(id_type="0", identifier="751234567", profession="91", skill=""))
    assert adeli.idnat == "0751234567" and adeli.skill_code == ""
    fictitious = parse_activity(activity_line(identifier="10003461033"))
    assert fictitious.warnings == ("RPPS 10003461033: check digit (Luhn) does not match",)
