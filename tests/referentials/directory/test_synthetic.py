from __future__ import annotations

from pathlib import Path

from socle.referentials.directory.extraction import is_activity_header, parse_activity
from socle.referentials.directory.finess_file import finess_layout, parse_establishment
from socle.referentials.directory.identifiers import luhn_ok
from socle.referentials.directory.synthetic import (
    general_practitioner,
    general_practitioners_in,
    gp_count,
    write_extraction,
)


def test_gp_pool_is_a_pure_function_of_its_index() -> None:
    first, again = general_practitioner(3), general_practitioner(3)
    assert first == again and luhn_ok(first.rpps) and first.idnat == "8" + first.rpps
    assert general_practitioner(4).rpps != first.rpps
    local = general_practitioners_in(first.commune.departement, professionals=80)
    assert first in local and all(g.commune.departement == first.commune.departement for g in local)


def test_files_parse_and_contain_the_gp_pool(tmp_path: Path) -> None:
    people, finess, lines = write_extraction(tmp_path, 200, seed=3, encoding="cp1252")
    raw = people.read_bytes().decode("cp1252").splitlines()
    assert is_activity_header(raw[0]) and len(raw) == lines + 1
    parsed = [parse_activity(line) for line in raw[1:]]  # every line is valid
    assert {a.idnat for a in parsed} >= {general_practitioner(i).idnat for i in range(gp_count(200))}
    assert len({a.idnat for a in parsed}) == 200 and lines > 200  # several lines for some people
    assert any(a.email.endswith(".mssante.fr") for a in parsed)
    assert any(a.finess_site for a in parsed) and any(a.siret for a in parsed)
    assert all(luhn_ok(a.identifier) for a in parsed if a.id_type == "8")
    text = finess.read_bytes().decode("latin-1").splitlines()
    layout = finess_layout(text[0])
    assert layout is not None
    establishments = [e for e in (parse_establishment(t, layout) for t in text[1:]) if e is not None]
    assert {a.finess_site for a in parsed if a.finess_site} <= {e.finess for e in establishments}
    assert any(t.startswith("geolocalisation;") for t in text)
    # deterministic
    again, _, _ = write_extraction(tmp_path / "b", 200, seed=3, encoding="cp1252")
    assert again.read_bytes() == people.read_bytes()
