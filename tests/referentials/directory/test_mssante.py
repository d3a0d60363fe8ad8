"""The MSSanté extraction: parsing, import onto Practitioner/Organization, idempotence, closing, search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from socle.referentials.directory import DirectoryImporter, mssante_addresses
from socle.referentials.directory.extraction import LineError, parse_activity
from socle.referentials.directory.mailboxes import MSSANTE_TAG
from socle.referentials.directory.mssante_file import MSSANTE_COLUMNS, is_mssante_header, parse_mailbox
from socle.referentials.directory.synthetic import MSSANTE_FILE, write_extraction
from socle.store.access import SYSTEM
from socle.store.repository import Store
from socle.store.schema import resource_history
from tests.referentials.directory._lines import RPPS, activity_line, write_file

OTHER_RPPS = "99700218896"
MSS_HEADER = "|".join(MSSANTE_COLUMNS)


def mailbox_line(kind: str = "PER", address: str = "", idnat: str = f"8{RPPS}", structure: str = "") -> str:
    f = [""] * len(MSSANTE_COLUMNS)
    f[0], f[1] = kind, address or "helene.lefevre@medecin.mssante.fr"
    if idnat:
        f[2], f[3], f[4] = idnat[0], idnat[1:], idnat
    f[6], f[9], f[10] = structure, "LEFÈVRE", "Hélène"
    f[30] = "France"
    return "|".join(f)


def _mss_file(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\n".join([MSS_HEADER, *lines]) + "\n").encode(encoding))
    return path


def _people(tmp_path: Path) -> Path:
    return write_file(
        tmp_path / "people.txt",
        [
            activity_line(siret="73282932000074"),
            activity_line(
                identifier=OTHER_RPPS,
                family="NOËL",
                given="Zoé",
                mode="S",
                finess="750000010",
                finess_ej="750000028",
                tech="F750000010",
                name="EHPAD LES TILLEULS",
                email="zoe.noel@infirmier.mssante.fr",  # also in the person file's e-mail column
            ),
        ],
    )


def _search(store: Store, rt: str, *criteria: tuple[str, str]) -> list[dict[str, Any]]:
    with store.read() as conn:
        page, _, unknown = store.search_page(
            conn, rt, list(criteria), SYSTEM, count=100, after=None, strict=True
        )
    assert unknown == []
    return [v.resource for v in page]


def _one(store: Store, rt: str, id_: str) -> dict[str, Any]:
    [found] = _search(store, rt, ("_id", id_))
    return found


def _versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(resource_history)).scalar_one())


# -- parsing -----------------------------------------------------------------------------------


def test_parse_personal_and_organisational_mailboxes() -> None:
    assert is_mssante_header(MSS_HEADER) and not is_mssante_header("Type d'identifiant PP|Identifiant PP")
    per = parse_mailbox(mailbox_line(address="Helene.Lefevre@Medecin.MSSante.fr"))
    assert (per.kind, per.address, per.idnat) == ("PER", "helene.lefevre@medecin.mssante.fr", f"8{RPPS}")
    org = parse_mailbox(mailbox_line("ORG", "secretariat@ch-ales.mssante.fr", "", "1300017985") + "|")
    assert org.kind == "ORG" and org.structure_keys() == ["finess-300017985", "tech-1300017985"]
    assert parse_mailbox(mailbox_line("ORG", "a@b.mssante.fr", "", "F750000010")).structure_keys() == [
        "finess-750000010",
        "tech-F750000010",
    ]
    assert parse_mailbox(mailbox_line("ORG", "a@b.mssante.fr", "", "373282932000074")).structure_keys()[
        0
    ] == ("siret-73282932000074")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("PER|a@b.mssante.fr|8", "expected 31 fields"),
        (mailbox_line("APP"), "unknown mailbox type"),
        (mailbox_line(address="not-an-address"), "not an e-mail address"),
        (mailbox_line(idnat="81234"), "Identification nationale PP"),
        (mailbox_line("ORG", "x@y.mssante.fr", "", ""), "without a structure"),
        (mailbox_line("PER", "x@y.mssante.fr", "", ""), "neither a national identifier nor a structure"),
    ],
)
def test_malformed_mailbox_lines_say_why(line: str, reason: str) -> None:
    with pytest.raises(LineError, match=reason):
        parse_mailbox(line)


# -- import ------------------------------------------------------------------------------------


def test_mailboxes_land_on_professionals_and_structures(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    mss = _mss_file(
        tmp_path / "mss.txt",
        [
            mailbox_line(),
            mailbox_line(address="zoe.noel@infirmier.mssante.fr", idnat=f"8{OTHER_RPPS}"),
            mailbox_line(address="zoe.noel@ehpad-tilleuls.mssante.fr", idnat=f"8{OTHER_RPPS}"),
            mailbox_line("ORG", "accueil@ehpad-tilleuls.mssante.fr", "", "1750000010"),
            "PER|broken",
            mailbox_line(address="nobody@medecin.mssante.fr", idnat="899700366240"),  # not in the directory
            mailbox_line("ORG", "x@unknown.mssante.fr", "", "1999999999"),
        ],
    )
    reports = DirectoryImporter(store).import_files([_people(tmp_path), mss])
    mss_report = next(r for r in reports if r.kind == "mssante")
    assert reports[0] is mss_report  # read first, whatever the order given
    assert (mss_report.lines, mss_report.accepted, mss_report.rejected) == (7, 4, 3)
    assert [n for n, _ in mss_report.errors] == [6, 7, 8]
    assert "expected 31 fields" in mss_report.errors[0][1]
    assert "ps-8" + "99700366240 is not in the directory" in mss_report.errors[1][1]
    people = next(r for r in reports if r.kind == "activity")
    assert not people.counts.updated  # written once, mailboxes in: no second version

    helene = _one(store, "Practitioner", f"ps-8{RPPS}")
    assert mssante_addresses(helene) == ["helene.lefevre@medecin.mssante.fr"]
    assert MSSANTE_TAG in helene["meta"]["tag"]
    mailbox = helene["telecom"][0]
    assert mailbox["system"] == "email" and mailbox["extension"][0]["valueCoding"]["code"] == "MSSANTE"
    zoe = _one(store, "Practitioner", f"ps-8{OTHER_RPPS}")
    # the address the person file also gives is not duplicated
    assert mssante_addresses(zoe) == ["zoe.noel@infirmier.mssante.fr", "zoe.noel@ehpad-tilleuls.mssante.fr"]
    ehpad = _one(store, "Organization", "finess-750000010")
    assert mssante_addresses(ehpad) == ["accueil@ehpad-tilleuls.mssante.fr"]

    found = _search(store, "Practitioner", ("mailbox-mss", "helene.lefevre@medecin.mssante.fr"))
    assert [p["id"] for p in found] == [f"ps-8{RPPS}"]
    assert [o["id"] for o in _search(store, "Organization", ("mailbox-mss", "accueil@"))] == [
        "finess-750000010"
    ]


def test_reimports_are_idempotent_and_files_do_not_undo_each_other(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    people = _people(tmp_path)
    mss = _mss_file(tmp_path / "mss.txt", [mailbox_line()])
    DirectoryImporter(store).import_files([people, mss])
    versions = _versions(engine)
    reports = DirectoryImporter(store).import_files([mss, people])
    assert all(not r.counts.created and not r.counts.updated for r in reports)
    # the person file alone keeps the mailboxes the MSSanté file gave
    [alone] = DirectoryImporter(store).import_files([people])
    assert not alone.counts.updated
    assert _versions(engine) == versions
    assert mssante_addresses(_one(store, "Practitioner", f"ps-8{RPPS}")) == [
        "helene.lefevre@medecin.mssante.fr"
    ]


def test_mailbox_file_alone_updates_a_stored_directory_and_closes_what_it_drops(
    engine: Engine, tmp_path: Path
) -> None:
    store = Store(engine)
    DirectoryImporter(store).import_files([_people(tmp_path)])
    first = _mss_file(tmp_path / "mss1.txt", [mailbox_line(), mailbox_line(address="hl@chu.mssante.fr")])
    [report] = DirectoryImporter(store).import_files([first])
    assert report.counts.updated == {"Practitioner": 1}
    helene_id = f"ps-8{RPPS}"
    assert mssante_addresses(_one(store, "Practitioner", helene_id)) == [
        "helene.lefevre@medecin.mssante.fr",
        "hl@chu.mssante.fr",
    ]
    # a partial file adds, it never closes
    partial = _mss_file(tmp_path / "mss2.txt", [mailbox_line(address="new@chu.mssante.fr")])
    DirectoryImporter(store, full=False).import_files([partial])
    assert len(mssante_addresses(_one(store, "Practitioner", helene_id))) == 3
    # the next full extraction no longer lists two of them: closed; an empty one closes all
    [report] = DirectoryImporter(store).import_files([_mss_file(tmp_path / "mss3.txt", [mailbox_line()])])
    assert report.counts.updated == {"Practitioner": 1}
    assert mssante_addresses(_one(store, "Practitioner", helene_id)) == ["helene.lefevre@medecin.mssante.fr"]
    other = _mss_file(
        tmp_path / "mss4.txt", [mailbox_line(address="zoe@x.mssante.fr", idnat=f"8{OTHER_RPPS}")]
    )
    DirectoryImporter(store).import_files([other])
    helene = _one(store, "Practitioner", helene_id)
    assert mssante_addresses(helene) == [] and "tag" not in helene["meta"]
    assert helene["active"] is True  # a closed mailbox is not a professional who left


def test_latin1_mailbox_file(engine: Engine, tmp_path: Path) -> None:
    store = Store(engine)
    DirectoryImporter(store).import_files([_people(tmp_path)])
    mss = _mss_file(tmp_path / "mss.txt", [mailbox_line()], encoding="cp1252")
    [report] = DirectoryImporter(store).import_files([mss])
    assert report.non_utf8_lines == 1  # the data line (LEFÈVRE); the header is not counted
    assert report.accepted == 1 and report.counts.updated == {"Practitioner": 1}


def test_synthetic_mailbox_file_matches_the_person_file(tmp_path: Path) -> None:
    people, _, _ = write_extraction(tmp_path, 300, seed=5)
    idnats = {parse_activity(line).idnat for line in people.read_text().splitlines()[1:]}
    lines = (tmp_path / MSSANTE_FILE).read_text().splitlines()
    assert lines[0] == MSS_HEADER
    parsed = [parse_mailbox(line) for line in lines[1:]]
    personal = [m for m in parsed if m.kind == "PER"]
    assert len(personal) > 50 and all(m.idnat in idnats for m in personal)
    assert len({m.address for m in parsed}) == len(parsed)
    assert any(m.kind == "ORG" for m in parsed)
