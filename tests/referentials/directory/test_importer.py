"""The import on both databases: mapping, bad lines, encodings, idempotence, end-dating, FINESS."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from socle.referentials.directory import DirectoryImporter, mssante_addresses
from socle.referentials.directory.codes import FINESS_SYSTEM, RPPS_SYSTEM
from socle.store.access import SYSTEM
from socle.store.repository import Store
from socle.store.schema import resource_history
from tests.referentials.directory._lines import RPPS, activity_line, write_file

OTHER_RPPS = "99700218896"
FINESS_FILE = (
    "finess;etalab;2;2024-01-01\n"
    "structureet;300017985;300780046;CH ALES;CENTRE HOSPITALIER D'ALES;;;811;AV;DR JEAN GOUBERT;"
    ";;007;30;GARD;"
    "30100 ALES;0466783333;;355;Centre Hospitalier (C.H.);1102;CH;;8610Z;03;ARS;1;Public;1900-01-01;"
    "1900-01-01;"
    "2024-01-01;\n"
    "structureet;750000010;750000028;EHPAD LES TILLEULS;EHPAD LES TILLEULS;;;3;R;DES LILAS;;;115;75;PARIS;"
    "75015 PARIS;0140000000;;500;Etablissement d'hébergement pour personnes âgées dépendantes;4401;EHPAD;;"
    "8710A;40;ARS;;;2000-01-01;2000-01-01;2024-01-01;\n"
    "geolocalisation;300017985;780000.0;6330000.0;1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,LAMBERT_93;2024-01-01\n"
)


def _search(store: Store, rt: str, *criteria: tuple[str, str]) -> list[dict[str, Any]]:
    with store.read() as conn:
        page, _, unknown = store.search_page(
            conn, rt, list(criteria), SYSTEM, count=100, after=None, strict=True
        )
    assert unknown == []
    return [v.resource for v in page]


def _versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(resource_history)).scalar_one())


def _people(tmp_path: Path, name: str = "people.txt", encoding: str = "utf-8") -> Path:
    return write_file(
        tmp_path / name,
        [
            activity_line(email="helene.lefevre@medecin.mssante.fr", siret="73282932000074"),
            activity_line(skill="SM57", skill_label="Allergologie", siret="73282932000074"),  # same role
            activity_line(
                mode="S",
                finess="750000010",
                finess_ej="750000028",
                tech="F750000010",
                sector="SA01",
                skill="",
                name="EHPAD LES TILLEULS",
                postcode="75015",
                commune="75115",
            ),
            "8|123|8123|bad|line",  # wrong field count
            activity_line(identifier="1234"),  # bad RPPS
            activity_line(
                identifier=OTHER_RPPS,
                family="NOËL",
                given="Zoé",
                civility="MME",
                profession="60",
                profession_label="Infirmier",
                skill="",
                postcode="69003",
                commune="69383",
                city="Lyon 3e Arrondissement",
                tech="C0000000002",
                email="zoe.noel@exemple.fr",
            ),
        ],
        encoding=encoding,
    )


def test_import_maps_people_roles_and_sites(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    [report] = DirectoryImporter(store).import_files([_people(tmp_path)])
    assert (report.kind, report.lines, report.accepted, report.rejected) == ("activity", 6, 4, 2)
    assert [n for n, _ in report.errors] == [5, 6]  # line numbers as an editor shows them (header = 1)
    assert "expected 52 fields" in report.errors[0][1] and "RPPS '1234'" in report.errors[1][1]
    assert report.counts.created == {
        "Practitioner": 2,
        "PractitionerRole": 3,
        "Organization": 4,
        "Location": 3,
    }

    [helene] = _search(store, "Practitioner", ("identifier", f"{RPPS_SYSTEM}|{RPPS}"))
    assert helene["id"] == f"ps-8{RPPS}"
    assert helene["name"] == [
        {"use": "usual", "family": "LEFÈVRE", "given": ["Hélène"], "prefix": ["MME"], "suffix": ["DR"]}
    ]
    assert mssante_addresses(helene) == ["helene.lefevre@medecin.mssante.fr"]
    codes = {c["code"] for q in helene["qualification"] for c in q["code"]["coding"]}
    assert codes == {"10", "SM54", "SM57"}

    roles = _search(store, "PractitionerRole", ("practitioner", helene["id"]))
    liberal = next(r for r in roles if r["organization"]["reference"] == "Organization/siret-73282932000074")
    assert {c["code"] for s in liberal["specialty"] for c in s["coding"]} == {"SM54", "SM57"}
    salaried = next(r for r in roles if r is not liberal)
    assert salaried["location"] == [{"reference": "Location/finess-750000010"}]
    [ehpad] = _search(store, "Organization", ("identifier", f"{FINESS_SYSTEM}|750000010"))
    assert ehpad["partOf"] == {"reference": "Organization/finess-750000028"}
    # the plain e-mail stays a contact of the role, not an MSSanté mailbox
    [zoe_role] = _search(store, "PractitionerRole", ("practitioner", f"ps-8{OTHER_RPPS}"))
    assert mssante_addresses(zoe_role) == [] and zoe_role["telecom"][-1]["value"] == "zoe.noel@exemple.fr"


def test_directory_searches(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    DirectoryImporter(store).import_files([_people(tmp_path)])
    ids = lambda rt, *c: sorted(r["id"] for r in _search(store, rt, *c))  # noqa: E731
    helene, zoe = f"ps-8{RPPS}", f"ps-8{OTHER_RPPS}"
    assert ids("Practitioner", ("name", "lefevre")) == [helene]  # accent-insensitive
    assert ids("Practitioner", ("family", "noel")) == [zoe]
    assert ids("Practitioner", ("given", "ZOE")) == [zoe]
    assert ids("Practitioner", ("qualification-code", "SM57")) == [helene]
    assert ids("Practitioner", ("email", "helene.lefevre@medecin.mssante.fr")) == [helene]
    g15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
    assert len(ids("PractitionerRole", ("role", f"{g15}|10"))) == 2
    assert len(ids("PractitionerRole", ("role", "60"))) == 1
    assert len(ids("PractitionerRole", ("specialty", "SM54"))) == 1
    assert ids("PractitionerRole", ("organization", "Organization/finess-750000010")) != []
    assert ids("Location", ("address-postalcode", "69003")) == ["tech-C0000000002"]
    assert ids("Location", ("address-insee", "69383")) == ["tech-C0000000002"]
    assert ids("Organization", ("address-city", "lyon")) == ["tech-C0000000002"]


def test_chained_search_on_practitioner_identifier(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    DirectoryImporter(store).import_files([_people(tmp_path)])
    roles = _search(store, "PractitionerRole", ("practitioner.identifier", f"{RPPS_SYSTEM}|{RPPS}"))
    assert len(roles) == 2 and {r["practitioner"]["reference"] for r in roles} == {f"Practitioner/ps-8{RPPS}"}
    at_ehpad = _search(store, "PractitionerRole", ("organization.identifier", f"{FINESS_SYSTEM}|750000010"))
    assert [r["practitioner"]["reference"] for r in at_ehpad] == [f"Practitioner/ps-8{RPPS}"]
    in_lyon = _search(store, "PractitionerRole", ("location.address-postalcode", "69003"))
    assert [r["practitioner"]["reference"] for r in in_lyon] == [f"Practitioner/ps-8{OTHER_RPPS}"]


def test_reimport_is_idempotent(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    path = _people(tmp_path)
    DirectoryImporter(store).import_files([path])
    versions = _versions(engine)
    [again] = DirectoryImporter(store).import_files([path])
    assert not again.counts.created and not again.counts.updated and not again.end_dated
    assert sum(again.counts.unchanged.values()) == 12
    assert _versions(engine) == versions  # no new version of anything


def test_latin1_file_imports_the_same_names(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    [report] = DirectoryImporter(store).import_files([_people(tmp_path, encoding="cp1252")])
    assert report.non_utf8_lines == 5 and report.accepted == 4  # the ASCII bad line decodes as UTF-8
    assert [p["name"][0]["family"] for p in _search(store, "Practitioner", ("given", "zoé"))] == ["NOËL"]
    # the same content in UTF-8 with a BOM is then unchanged: encodings do not create versions
    utf8 = write_file(
        tmp_path / "bom.txt", _people(tmp_path, "p2.txt").read_text().splitlines()[1:], bom=True
    )
    [again] = DirectoryImporter(store).import_files([utf8])
    assert again.non_utf8_lines == 0 and not again.counts.updated and not again.counts.created


def test_people_who_left_are_end_dated_not_deleted(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    DirectoryImporter(store).import_files([_people(tmp_path)])
    only_helene = write_file(tmp_path / "next.txt", [activity_line(siret="73282932000074")])
    partial = DirectoryImporter(store, full=False).import_files([only_helene])
    assert partial[0].end_dated == {}
    [report] = DirectoryImporter(store, today=date(2026, 2, 1)).import_files([only_helene])
    assert report.end_dated == {"Practitioner": 1, "PractitionerRole": 2}
    [zoe] = _search(store, "Practitioner", ("identifier", f"{RPPS_SYSTEM}|{OTHER_RPPS}"))
    assert zoe["active"] is False
    ended = _search(store, "PractitionerRole", ("active", "false"))
    assert len(ended) == 2 and {r["period"]["end"] for r in ended} == {"2026-02-01"}
    # Hélène's liberal role (savoir-faire SM54 only now) is updated, still active
    [active] = _search(store, "PractitionerRole", ("active", "true"))
    assert [c["code"] for s in active["specialty"] for c in s["coding"]] == ["SM54"]
    # coming back reactivates
    DirectoryImporter(store).import_files([_people(tmp_path)])
    [zoe] = _search(store, "Practitioner", ("identifier", f"{RPPS_SYSTEM}|{OTHER_RPPS}"))
    assert zoe["active"] is True


def test_person_listed_in_two_places_keeps_all_lines(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    path = write_file(
        tmp_path / "split.txt",
        [
            activity_line(),
            activity_line(identifier=OTHER_RPPS, family="NOËL", tech="C0000000002"),
            activity_line(skill="SM57", skill_label="Allergologie"),
        ],
    )
    DirectoryImporter(store, batch_lines=1).import_files([path])
    [helene] = _search(store, "Practitioner", ("identifier", f"{RPPS_SYSTEM}|{RPPS}"))
    assert {c["code"] for q in helene["qualification"] for c in q["code"]["coding"]} == {"10", "SM54", "SM57"}


def test_finess_file_structures_and_ownership(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    people = _people(tmp_path)
    finess = tmp_path / "etalab.csv"
    finess.write_bytes(FINESS_FILE.encode("latin-1"))
    DirectoryImporter(store).import_files([people])
    [report] = DirectoryImporter(store).import_files([finess])
    assert (report.kind, report.accepted, report.rejected) == ("finess", 2, 0)
    [ch] = _search(store, "Organization", ("identifier", f"{FINESS_SYSTEM}|300017985"))
    assert ch["partOf"]["reference"] == "Organization/finess-300780046"
    assert ch["name"] == "CENTRE HOSPITALIER D'ALES" and ch["address"][0]["city"] == "ALES"
    [ch_place] = _search(store, "Location", ("_id", "finess-300017985"))
    assert 43 < ch_place["position"]["latitude"] < 45 and 3 < ch_place["position"]["longitude"] < 5
    esms = _search(store, "Organization", ("type", "ESMS"))
    assert [o["id"] for o in esms] == ["finess-750000010"]  # the EHPAD, médico-social
    assert esms[0]["name"] == "EHPAD LES TILLEULS"
    [service] = _search(store, "HealthcareService", ("service-category", "ESMS"))
    assert service["providedBy"]["reference"] == "Organization/finess-750000010"
    [hospital] = _search(store, "HealthcareService", ("service-category", "355"))
    assert hospital["location"] == [{"reference": "Location/finess-300017985"}]
    [legal] = _search(store, "Organization", ("_id", "finess-300780046"))
    assert legal["identifier"][0]["type"]["coding"][0]["code"] == "FINEJ"
    # the person file no longer overwrites a structure the FINESS file owns
    [again] = DirectoryImporter(store, full=False).import_files([people])
    assert "Organization" not in again.counts.updated
    [ehpad] = _search(store, "Organization", ("_id", "finess-750000010"))
    assert ehpad["meta"]["source"].endswith("finess")
    # an establishment absent from the next full FINESS file becomes inactive
    finess.write_bytes("\n".join(FINESS_FILE.splitlines()[:2]).encode("latin-1"))
    [last] = DirectoryImporter(store).import_files([finess])
    assert last.end_dated == {"Organization": 1}
    [gone] = _search(store, "Organization", ("_id", "finess-750000010"))
    assert gone["active"] is False
    assert _search(store, "HealthcareService", ("_id", "finess-750000010"))[0]["active"] is False


def test_unknown_file_is_reported(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a;b;c\n1;2;3\n")
    [report] = DirectoryImporter(Store(engine)).import_files([path, tmp_path / "missing.txt"])[:1]
    assert report.failure is not None and "not a known extraction" in report.failure


def test_a_mostly_unreadable_file_does_not_end_date_everyone(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    DirectoryImporter(store).import_files([_people(tmp_path)])
    broken = write_file(tmp_path / "broken.txt", ["1|2|3", "4|5|6", activity_line()])
    [report] = DirectoryImporter(store).import_files([broken])
    assert report.end_dated == {} and "end-dating skipped" in report.notes[0]
    assert len(_search(store, "Practitioner", ("active", "true"))) == 2


def test_finess_files_are_imported_first(engine: Engine, tmp_path: Path) -> None:
    finess = tmp_path / "etalab.csv"
    finess.write_bytes(FINESS_FILE.encode("latin-1"))
    reports = DirectoryImporter(Store(engine)).import_files([_people(tmp_path), finess])
    assert [r.kind for r in reports] == ["finess", "activity"]
    # the legal entities the FINESS file lists are "seen": a full FINESS import never end-dates them
    assert reports[0].end_dated == {}
    [legal] = _search(Store(engine), "Organization", ("_id", "finess-300780046"))
    assert legal["active"] is True
    # the EHPAD the person file names already exists, owned by FINESS: nothing rewritten
    assert not reports[1].counts.updated and reports[1].counts.unchanged["Organization"] == 1


def test_bulk_import_refreshes_planner_statistics(engine: Engine, tmp_path: Path) -> None:
    from sqlalchemy import text

    from socle.referentials.directory.synthetic import write_extraction

    people, _, _ = write_extraction(tmp_path, 400, seed=5)
    with engine.connect() as conn:
        started = conn.execute(text("SELECT CURRENT_TIMESTAMP")).scalar_one()
    [report] = DirectoryImporter(Store(engine)).import_files([people])
    assert sum(report.counts.created.values()) >= 1000
    if engine.dialect.name == "postgresql":  # the planner must not keep believing the tables are empty
        for table in ("idx_token", "idx_position"):  # idx_position: `$near` reads it
            with engine.connect() as conn:
                analyzed, vacuumed = conn.execute(
                    text(
                        "SELECT last_analyze, last_vacuum FROM pg_stat_user_tables WHERE relname = :t "
                        "AND schemaname = current_schema()"
                    ),
                    {"t": table},
                ).one()
            assert analyzed is not None and analyzed >= started, table
            # vacuumed too: index-only scans of the new rows need the visibility map
            assert vacuumed is not None and vacuumed >= started, table
    else:
        with engine.connect() as conn:
            tables = set(conn.execute(text("SELECT tbl FROM sqlite_stat1")).scalars())
        assert {"resource", "idx_token", "idx_string", "idx_position"} <= tables
