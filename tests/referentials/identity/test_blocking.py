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
    # The whole compound name and each of its parts have surname keys; the common sounds (MARTIN,
    # DUPONT) are refined by the sex (U: unknown) and the month of birth.
    assert {k for k in keys if k.startswith("NY|")} == {
        "NY|MRTNTP|1950|J",
        "NY|MRTN|1950|J|U|03",
        "NY|TPN|1950|J|U|03",
    }
    # The birth date is refined by the sex and the first-name initial, and a common first name by
    # its whole sound.
    assert {k for k in keys if k.startswith("D|")} == {"D|19500302|U|J|JN"}


def test_rare_names_keep_the_coarser_keys() -> None:
    keys = index_keys(record_from_traits(Traits("Zylberstein", ("Odilon",), PartialDate(1950, 3, 2), "male")))
    assert "D|19500302|M|O" in keys
    assert "NY|SLBRST|1950|O" in keys
    assert "NM|SLBRST|03-02|M" in keys
    assert "NG|SLBRST|OTLN|195" in keys


def test_a_common_surname_has_two_finer_day_of_year_keys() -> None:
    """A first-name error or a decade error alone keeps one of them."""
    stored = index_keys(record_from_traits(Traits("Martin", ("Marie",), PartialDate(1950, 3, 2), "female")))
    assert {k for k in stored if k.startswith("NM|")} == {"NM|MRTN|03-02|F|M", "NM|MRTN|03-02|F|195"}
    assert "NG|MRTN|MR|195|03" in stored  # common surname and first name: the month too
    wrong_first_letter = query_keys(
        record_from_traits(Traits("Martin", ("Amrie",), PartialDate(1950, 3, 2), "female"))
    )
    assert "NM|MRTN|03-02|F|195" in wrong_first_letter
    wrong_decade = query_keys(
        record_from_traits(Traits("Martin", ("Marie",), PartialDate(1970, 3, 2), "female"))
    )
    assert "NM|MRTN|03-02|F|M" in wrong_decade


def test_month_refined_keys_are_probed_for_every_month_the_query_may_mean() -> None:
    partial = query_keys(record_from_traits(Traits("Martin", ("Marie",), PartialDate(1950), "female")))
    assert {f"NY|MRTN|1950|M|F|{m:02d}" for m in range(1, 13)} | {"NY|MRTN|1950|M|F|-"} <= partial
    transposed = query_keys(
        record_from_traits(Traits("Martin", ("Marie",), PartialDate(1950, 3, 2), "female"))
    )
    assert {"NY|MRTN|1950|M|F|03", "NY|MRTN|1950|M|F|02", "NY|MRTN|1950|M|F|-"} <= transposed
    # A stored date without month is keyed with `-`.
    stored = index_keys(record_from_traits(Traits("Martin", ("Marie",), PartialDate(1950), "female")))
    assert "NY|MRTN|1950|M|F|-" in stored
    assert set(block_hashes(stored)) & set(block_hashes(transposed))


def test_every_key_combines_at_least_three_traits() -> None:
    """Blocks stay small as the population grows: no key is a birth date or a surname alone."""
    person = next(iter(generate_people(1, 3)))
    for key in index_keys(record_from_traits(person.traits)):
        kind, *parts = key.split("|")
        assert kind == "I" or len(parts) >= 3, key


def test_query_side_variants() -> None:
    keys = query_keys(record_from_traits(Traits("Dupont", ("Jean",), PartialDate(1950, 3, 2))))
    assert "D|19500203|M|J|JN" in keys  # day and month swapped
    assert {"D|19500302|M|J|JN", "D|19500302|F|J|JN", "D|19500302|U|J|JN"} <= keys  # sex unknown
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
