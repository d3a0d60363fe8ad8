"""`_text` and `_content` full-text search (socle.store.fulltext), on SQLite (FTS5) and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from socle.fhir.errors import Invalid
from socle.store.access import SYSTEM
from socle.store.fulltext import content_text, idx_text, narrative_text, parse_text_query
from socle.store.repository import Store


def patient(id: str, div: str | None, family: str, *, given: str = "", note: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": id,
        "name": [{"family": family, "given": [given]}],
    }
    if div is not None:
        body["text"] = {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{div}</div>',
        }
    if note:
        body["extension"] = [{"url": "http://example.org/note", "valueString": note}]
    return body


PATIENTS = [
    patient("helene", "Les <b>patients</b> de Hélène &amp; Cie", "Dupont", given="Élodie"),
    patient("martin", "Suivi cardiologique", "Martin", note="insuffisance cardiaque"),
    patient("plain", None, "Durand", given="Jean-Luc"),
]


@pytest.fixture
def store(engine: Engine) -> Store:
    store = Store(engine)
    with store.write() as conn:
        for body in PATIENTS:
            store.update(conn, dict(body))
    return store


def ids(store: Store, name: str, value: str) -> list[str]:
    with store.read() as conn:
        page, _, unknown = store.search_page(
            conn, "Patient", [(name, value)], SYSTEM, count=10, after=None, strict=True
        )
    assert unknown == []
    return sorted(v.id for v in page)


def text_rows(store: Store) -> int:
    with store.read() as conn:
        return int(conn.scalar(select(func.count()).select_from(idx_text)) or 0)


def test_narrative_is_the_div_without_markup() -> None:
    assert narrative_text(PATIENTS[0]) == "Les patients de Hélène & Cie"
    assert narrative_text(PATIENTS[2]) == ""


def test_content_is_every_string_but_identifiers_and_urls() -> None:
    text = content_text(PATIENTS[1])
    assert "Martin" in text and "insuffisance cardiaque" in text and "Suivi cardiologique" in text
    assert "http://example.org/note" not in text and "Patient" not in text
    assert "<div" not in content_text(PATIENTS[0])
    document = {
        "resourceType": "DocumentReference",
        "id": "doc-id-1",
        "description": "Compte rendu",
        "content": [{"attachment": {"contentType": "text/plain", "data": "SGVsbG8=", "title": "CR"}}],
        "subject": {"reference": "Patient/p1", "display": "Hélène Dupont"},
    }
    assert content_text(document).split("\n") == ["Compte rendu", "Hélène Dupont", "CR"]


@pytest.mark.parametrize(
    ("query", "groups"),
    [
        ("heart failure", [["heart", "failure"]]),
        ('"heart failure" OR cardiac', [["heart failure"], ["cardiac"]]),
        ("heart -failure", [["heart", "-failure"]]),
        ("a , b", [["a", "b"]]),
    ],
)
def test_query_syntax(query: str, groups: list[list[str]]) -> None:
    parsed = parse_text_query(query)
    assert [[("-" if t.negated else "") + t.text for t in group] for group in parsed] == groups


@pytest.mark.parametrize("query", ["", "  ", "!!", "-heart", "OR"])
def test_query_without_a_positive_word_is_invalid(query: str) -> None:
    with pytest.raises(Invalid):
        parse_text_query(query)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("_text", "helene", ["helene"]),  # accents folded both ways
        ("_text", "HÉLÈNE", ["helene"]),
        ("_text", "cardiologique", ["martin"]),
        ("_text", "dupont", []),  # only in name: not narrative
        ("_content", "dupont", ["helene"]),
        ("_content", "elodie", ["helene"]),
        ("_content", "jean-luc", ["plain"]),
        ("_content", "insuffisance", ["martin"]),  # an extension's string
        ("_content", "hélène", ["helene"]),  # the narrative is content too
        ("_content", "dupont martin", []),  # words are ANDed
        ("_content", "dupont OR martin", ["helene", "martin"]),
        ("_content", "dupont,durand", ["helene", "plain"]),  # comma: OR of values
        ("_content", '"insuffisance cardiaque"', ["martin"]),
        ("_content", '"cardiaque insuffisance"', []),  # a phrase keeps its order
        ("_content", "cardiologique -insuffisance", []),
        ("_content", "example", []),  # the extension URL is not content
        ("_content", "zzz", []),
    ],
)
def test_search(store: Store, name: str, value: str, expected: list[str]) -> None:
    assert ids(store, name, value) == expected


def test_stemming_is_french_on_postgresql_only(store: Store, backend: str) -> None:
    # PostgreSQL's french configuration stems `patient`/`patients`; SQLite's FTS5 has no French stemmer.
    assert ids(store, "_text", "patients") == ["helene"]
    assert ids(store, "_text", "patient") == (["helene"] if backend == "postgresql" else [])
    assert ids(store, "_content", "cardiologiques") == (["martin"] if backend == "postgresql" else [])


def test_update_and_delete_keep_the_index_in_step(store: Store) -> None:
    assert text_rows(store) == 3
    with store.write() as conn:
        store.update(conn, patient("martin", "Suivi pneumologique", "Martin"))
    assert ids(store, "_text", "cardiologique") == []
    assert ids(store, "_text", "pneumologique") == ["martin"]
    assert ids(store, "_content", "insuffisance") == []
    assert text_rows(store) == 3
    with store.write() as conn:
        store.delete(conn, "Patient", "martin")
    assert ids(store, "_text", "pneumologique") == []
    assert text_rows(store) == 2


def test_a_rolled_back_write_leaves_no_text(store: Store) -> None:
    with pytest.raises(RuntimeError), store.write() as conn:
        store.create(conn, patient("ghost", "Fantôme", "Casper"))
        raise RuntimeError
    assert ids(store, "_content", "fantome") == []
    assert text_rows(store) == 3


def test_access_filter_and_type_still_apply(store: Store) -> None:
    with store.write() as conn:
        store.create(conn, {"resourceType": "Practitioner", "name": [{"family": "Dupont"}]})
    assert ids(store, "_content", "dupont") == ["helene"]  # Patient search: the Practitioner is not one
