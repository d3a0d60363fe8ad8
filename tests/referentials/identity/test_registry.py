"""The INSi-like registry: 00 one identity, 01 none, 02 several (refused), partial dates, Vitale."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import Engine, select

from socle.referentials.identity.population import generate_people
from socle.referentials.identity.registry import load_registry, lookup_traits, lookup_vitale, record_lookup
from socle.referentials.identity.registry_schema import ins_lookup_log
from socle.referentials.identity.traits import PartialDate


def test_lookup_outcomes(engine: Engine) -> None:
    people = list(generate_people(300, 21))
    with engine.begin() as conn:
        assert load_registry(conn, people) == 300
        target = people[0].traits
        assert target.birth_name and target.birth_date and target.sex
        # 00: the traits as typed at a desk (case, accents) find the identity and its INS.
        found = lookup_traits(
            conn,
            birth_name=target.birth_name.lower(),
            given_names=target.given_names[:1],
            sex=target.sex,
            birth_date=target.birth_date,
        )
        assert found.outcome == "00" and found.entry is not None and found.entry.matricule == target.ins
        assert found.entry.birth_name == found.entry.birth_name.upper()  # INSi style
        patient = found.entry.patient()
        assert patient["identifier"][0]["value"] == target.ins
        # 01: wrong sex, wrong birthplace, another first name.
        other_sex = "male" if target.sex == "female" else "female"
        none = lookup_traits(
            conn,
            birth_name=target.birth_name,
            given_names=target.given_names[:1],
            sex=other_sex,
            birth_date=target.birth_date,
        )
        assert none.outcome == "01" and none.entry is None
        assert (
            lookup_traits(
                conn,
                birth_name=target.birth_name,
                given_names=("Zébulon",),
                sex=target.sex,
                birth_date=target.birth_date,
            ).outcome
            == "01"
        )
        # Partial date: the year alone still finds the person.
        year_only = lookup_traits(
            conn,
            birth_name=target.birth_name,
            given_names=target.given_names[:1],
            sex=target.sex,
            birth_date=PartialDate(target.birth_date.year),
        )
        assert year_only.outcome == "00"


def test_several_identities_are_refused(engine: Engine) -> None:
    people = list(generate_people(50, 22))
    a = people[0]
    twin_like = replace(a, traits=replace(a.traits, ins="1" + a.traits.ins[1:-2] + "00", birthplace="99350"))
    with engine.begin() as conn:
        load_registry(conn, [a, twin_like])
        t = a.traits
        assert t.birth_name and t.birth_date and t.sex
        several = lookup_traits(
            conn, birth_name=t.birth_name, given_names=t.given_names[:1], sex=t.sex, birth_date=t.birth_date
        )
        assert several.outcome == "02" and several.matches == 2 and several.entry is None
        # The birthplace settles it, as INSi advises.
        assert (
            lookup_traits(
                conn,
                birth_name=t.birth_name,
                given_names=t.given_names[:1],
                sex=t.sex,
                birth_date=t.birth_date,
                birthplace=t.birthplace,
            ).outcome
            == "00"
        )


def test_vitale_card_finds_the_beneficiary_and_twins_need_the_first_name(engine: Engine) -> None:
    people = list(generate_people(4000, 23))
    twin = next(p for p in people if "twin" in p.tags)
    sibling = people[twin.index - 1]
    with engine.begin() as conn:
        load_registry(conn, people)
        assert twin.traits.birth_date
        both = lookup_vitale(conn, vitale_nir=twin.vitale_nir, birth_date=twin.traits.birth_date)
        assert both.outcome == "02"
        one = lookup_vitale(
            conn,
            vitale_nir=twin.vitale_nir,
            birth_date=twin.traits.birth_date,
            given_names=twin.traits.given_names[:1],
        )
        assert one.outcome == "00" and one.entry is not None and one.entry.matricule == twin.traits.ins
        assert one.entry.matricule != sibling.traits.ins


def test_calls_are_recorded(engine: Engine) -> None:
    with engine.begin() as conn:
        first = record_lookup(
            conn, principal="dr-x", mode="traits", criteria={"family": "A"}, outcome="01", matches=0
        )
        second = record_lookup(
            conn, principal="dr-x", mode="vitale", criteria={}, outcome="invalid", matches=0, detail="bad NIR"
        )
        rows = conn.execute(select(ins_lookup_log).order_by(ins_lookup_log.c.lookup_id)).all()
    assert second > first
    assert [(r.principal, r.mode, r.outcome, r.criteria) for r in rows] == [
        ("dr-x", "traits", "01", {"family": "A"}),
        ("dr-x", "vitale", "invalid", {}),
    ]
