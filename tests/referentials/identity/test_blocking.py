"""Blocking keys: any single realistic error keeps at least one key shared with the stored identity."""

from __future__ import annotations

import random

from socle.referentials.identity.blocking import block_hashes, index_keys, query_keys
from socle.referentials.identity.comparison import record_from_traits
from socle.referentials.identity.corruption import ERRORS, _apply
from socle.referentials.identity.population import generate_people
from socle.referentials.identity.traits import PartialDate, Traits


def test_keys_of_a_full_identity() -> None:
    keys = index_keys(
        record_from_traits(Traits("Martin-Dupont", ("Jean",), PartialDate(1950, 3, 2), ins="x"))
    )
    kinds = {k.split("|")[0] for k in keys}
    assert kinds == {"D", "NY", "NG", "NM", "GM", "P", "I"}
    # The whole compound name and each of its parts have surname keys.
    assert {k for k in keys if k.startswith("NY|")} == {
        "NY|MRTNTP|1950|J",
        "NY|MRTN|1950|J",
        "NY|TPN|1950|J",
    }  # 6-letter keys, with the first-name initial
    # The birth date is refined by the sex (U: unknown) and the first-name initial.
    assert {k for k in keys if k.startswith("D|")} == {"D|19500302|U|J"}


def test_every_key_combines_at_least_three_traits() -> None:
    """Blocks stay small as the population grows: no key is a birth date or a surname alone."""
    person = next(iter(generate_people(1, 3)))
    for key in index_keys(record_from_traits(person.traits)):
        kind, *parts = key.split("|")
        assert kind == "I" or len(parts) >= 3, key


def test_query_side_variants() -> None:
    keys = query_keys(record_from_traits(Traits("Dupont", ("Jean",), PartialDate(1950, 3, 2))))
    assert "D|19500203|M|J" in keys  # day and month swapped
    assert {"D|19500302|M|J", "D|19500302|F|J", "D|19500302|U|J"} <= keys  # sex unknown: every sex
    assert "NG|JN|TPN|195" in keys  # surname and first name exchanged
    no_given = query_keys(record_from_traits(Traits("Dupont", (), PartialDate(1950, 3, 2), "female")))
    assert {f"D|19500302|F|{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"} <= no_given


def test_every_single_error_keeps_a_shared_key() -> None:
    rng = random.Random(4)
    people = list(generate_people(400, 11))
    for error in ERRORS:
        for person in people:
            changed = _apply(error, person.traits, rng)
            if changed is None:
                continue
            stored = set(block_hashes(index_keys(record_from_traits(person.traits))))
            query = set(block_hashes(query_keys(record_from_traits(changed))))
            assert stored & query, (error, person.traits, changed)


def test_empty_identity_has_no_keys() -> None:
    assert block_hashes(query_keys(record_from_traits(Traits()))) == []
