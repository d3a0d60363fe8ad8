"""$match as a service (blocking + model on stored identities) and duplicate detection."""

from __future__ import annotations

from sqlalchemy import Engine

from socle.referentials.identity import mpi
from socle.referentials.identity.traits import PartialDate, Traits
from socle.store.access import SYSTEM
from tests.referentials.identity._fixtures import store_patients

PEOPLE = {
    "lefevre": Traits(
        "Lefèvre", ("Marie-Hélène", "Anne"), PartialDate(1975, 3, 8), "female", "69381", used_name="Martin"
    ),
    "dupont": Traits("Dupont", ("Jean", "Paul"), PartialDate(1950, 3, 2), "male", "75114"),
    "dupont-homonym": Traits("Dupont", ("Jean", "Marc"), PartialDate(1950, 3, 2), "male", "13201"),
    "fontaine": Traits("de La Fontaine", ("Louis",), PartialDate(1990, 11, 23), "male", "44109"),
    "nguyen": Traits("Nguyen", ("Thi", "Lan"), PartialDate(1962), "female", "99243"),
    "other": Traits("Bernard", ("Luc",), PartialDate(1988, 6, 6), "male", "59350"),
}


def best(engine: Engine, query: Traits) -> list[tuple[str | None, str]]:
    from socle.referentials.identity.index import load_records

    with engine.connect() as conn:
        found = mpi.match(conn, SYSTEM, query)
        ids = {k: r.id for k, r in load_records(conn, [s.key for s in found], SYSTEM).items()}
    return [(ids[s.key], s.grade) for s in found]


def test_match_handles_french_identity_reality(engine: Engine) -> None:
    store_patients(engine, PEOPLE)
    # Exact strict traits: certain.
    assert best(engine, PEOPLE["lefevre"])[0] == ("lefevre", "certain")
    # Married name typed as the birth name, no accents, first first-name only.
    married = Traits("MARTIN", ("Marie-Helene",), PartialDate(1975, 3, 8), "female")
    assert best(engine, married)[0] == ("lefevre", "probable")
    # Day and month swapped, particle glued.
    assert (
        best(engine, Traits("Lafontaine", ("Louis",), PartialDate(1990, 11, 23), "male"))[0][0] == "fontaine"
    )
    # Unknown day and month on the stored side (born abroad) and the query.
    assert best(engine, Traits("NGUYEN", ("Thi",), PartialDate(1962), "female"))[0] == ("nguyen", "probable")
    # Homonyms with the same birth date and no birthplace: both probable, none certain.
    homonyms = best(engine, Traits("Dupont", ("Jean",), PartialDate(1950, 3, 2), "male"))
    assert sorted(homonyms) == [("dupont", "probable"), ("dupont-homonym", "probable")]
    # Nobody: nothing returned.
    assert best(engine, Traits("Zidane", ("Zinedine",), PartialDate(1972, 6, 23), "male")) == []


def test_only_certain_and_count(engine: Engine) -> None:
    store_patients(engine, PEOPLE)
    with engine.connect() as conn:
        assert (
            mpi.match(conn, SYSTEM, Traits("Dupont", ("Jean",), PartialDate(1950, 3, 2)), only_certain=True)
            == []
        )
        assert (
            len(mpi.match(conn, SYSTEM, Traits("Dupont", ("Jean",), PartialDate(1950, 3, 2)), count=1)) == 1
        )


def test_duplicates_are_found_and_homonyms_are_not_certain(engine: Engine) -> None:
    people = dict(PEOPLE)
    people["lefevre-dup"] = Traits("Lefevre", ("Marie-Helene",), PartialDate(1975, 8, 3), "female")
    store_patients(engine, people)
    with engine.connect() as conn:
        pairs = list(mpi.find_duplicates(conn, SYSTEM, min_grade="possible", slice_size=2))
    found = {frozenset((p.id_a, p.id_b)): p.grade for p in pairs}
    assert found[frozenset(("lefevre", "lefevre-dup"))] == "probable"
    assert found.get(frozenset(("dupont", "dupont-homonym"))) in (None, "possible")
    assert all(grade != "certain" for grade in found.values())
