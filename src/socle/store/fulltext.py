"""Full-text search for `_text` (the narrative) and `_content` (all the text of a resource).

R4 §3.1.1.4.8 (https://hl7.org/fhir/R4/search.html#text, #content) leaves the matching to the
server. Socle's query syntax, the same on both databases: words are ANDed, `OR` between terms,
`"quoted phrases"`, `-word` excludes; case and accents never matter (`hélène` finds `Helene`).

One row per resource in `idx_text` (keyed by resource_key, with the Patient compartment key as the
other index tables), written and deleted in the resource's own transaction by `write_text` /
`delete_text`, which `socle.store.indexes` calls.
- SQLite: `idx_text` keeps the texts; an external-content FTS5 table `idx_text_fts` (rowid =
  resource_key, tokenizer `unicode61 remove_diacritics 2`) indexes them, kept in step by triggers
  (migration 0003), so any delete of an `idx_text` row also leaves the FTS index. No stemming.
- PostgreSQL: `idx_text` keeps `to_tsvector('french', ...)` (French stemming: `patients` finds
  `patient`), each column with a GIN index. Accents are folded in Python (`normalize_string`)
  before indexing and querying rather than by the `unaccent` extension: that extension is a
  database-wide object needing CREATE privilege, absent from some managed and Citus setups.
The FTS5 table, its shadow tables and the GIN indexes are created by migration 0003 only, not on
the metadata: `include_name` keeps Alembic's autogenerate from proposing to drop them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    FromClause,
    String,
    Table,
    Text,
    delete,
    func,
    literal_column,
    select,
)
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

from socle.fhir.errors import Invalid
from socle.fhir.search_params import normalize_string
from socle.store.schema import ResourceKey, metadata

__all__ = [
    "PARAMS",
    "condition",
    "content_text",
    "delete_text",
    "idx_text",
    "include_name",
    "narrative_text",
    "parse_text_query",
    "write_text",
]

PARAMS: frozenset[str] = frozenset({"_text", "_content"})
_COLUMN = {"_text": "narrative", "_content": "content"}
# A tsvector is limited to 1 MB; beyond this many characters the end of a text is not indexed.
MAX_TEXT_LENGTH = 200_000
_LANGUAGE = "french"

idx_text = Table(
    "idx_text",
    metadata,
    # INTEGER PRIMARY KEY on SQLite: the rowid itself, which FTS5 (content_rowid) addresses.
    Column("resource_key", ResourceKey, primary_key=True, autoincrement=False),
    Column("compartment", String(64), nullable=True),
    Column("narrative", Text().with_variant(TSVECTOR(), "postgresql"), nullable=True),
    Column("content", Text().with_variant(TSVECTOR(), "postgresql"), nullable=True),
)
_fts = sql_table("idx_text_fts", sql_column("rowid"))
_UNDECLARED_INDEXES = frozenset({"ix_idx_text_narrative_gin", "ix_idx_text_content_gin"})


def include_name(name: str | None, type_: str, parent_names: MutableMapping[Any, str | None]) -> bool:
    """Alembic `include_name` hook: skip the full-text objects migration 0003 makes by hand."""
    if type_ == "table":
        return not (name or "").startswith("idx_text_fts")
    if type_ == "index":
        return name not in _UNDECLARED_INDEXES
    return True


# -- what is indexed ----------------------------------------------------------------------------

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
# Keys whose string values are not prose: identifiers, URLs, references, base64 (Attachment.data),
# and `div`, indexed through `narrative_text` instead of as markup.
_NOT_TEXT = frozenset(
    {"id", "resourceType", "reference", "system", "url", "fullUrl", "profile", "data", "div"}
    | {"versionId", "lastUpdated", "contentType", "language"}
)


def narrative_text(resource: Mapping[str, Any]) -> str:
    """`Resource.text.div` as plain text: tags removed, entities decoded (R4 narrative.html)."""
    text = resource.get("text")
    div = text.get("div") if isinstance(text, dict) else None
    if not isinstance(div, str):
        return ""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", div))).strip()


def content_text(resource: Mapping[str, Any], narrative: str | None = None) -> str:
    """Every string of the resource that is prose (not `_NOT_TEXT`, not a date), plus its narrative."""
    parts: list[str] = []
    append = parts.append
    skip = _NOT_TEXT
    stack: list[Any] = [resource]
    pop, push = stack.pop, stack.append
    # Walked on every write, hence exact type tests and the date test inline. Dates and times (a
    # fifth of Synthea's strings) are searched with `date` parameters, not words: left out.
    while stack:
        node = pop()
        if type(node) is list:
            for value in node:
                kind = type(value)
                if kind is str:
                    if not (len(value) >= 7 and value[4] == "-" and value[:4].isdigit()):
                        append(value)
                elif kind is dict or kind is list:
                    push(value)
        else:  # a dict (the root may be any Mapping)
            for key, value in node.items():
                kind = type(value)
                if kind is str:
                    if key not in skip and not (len(value) >= 7 and value[4] == "-" and value[:4].isdigit()):
                        append(value)
                elif (kind is dict or kind is list) and key not in skip:
                    push(value)
    narrative = narrative_text(resource) if narrative is None else narrative
    if narrative:
        append(narrative)
    return "\n".join(parts)


# -- writes --------------------------------------------------------------------------------------

# One statement per batch, the columns as arrays: a row-by-row executemany cost more in the driver
# (one pipelined statement per resource) than the stemming in the database.
_PG_INSERT = (
    "INSERT INTO idx_text (resource_key, compartment, narrative, content) "
    f"SELECT k, c, to_tsvector('{_LANGUAGE}', n), to_tsvector('{_LANGUAGE}', t) "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS u(k, c, n, t)"
)


def texts(resource: Mapping[str, Any]) -> tuple[str, str]:
    """(narrative, content) as indexed: an update that keeps both keeps its text row."""
    narrative = narrative_text(resource)
    return narrative, content_text(resource, narrative)


def write_text(conn: Connection, items: Sequence[tuple[int, str, str | None, Mapping[str, Any]]]) -> None:
    """Insert the text rows of (resource_key, resource_type, compartment, resource) items."""
    postgres = conn.dialect.name == "postgresql"
    rows = []
    for key, _rt, compartment, resource in items:
        narrative = narrative_text(resource)
        content = content_text(resource, narrative)
        if not content:
            continue
        if postgres:  # the same folding as the query side: the french config keeps accents otherwise
            narrative, content = normalize_string(narrative), normalize_string(content)
        rows.append(
            (key, compartment, narrative[:MAX_TEXT_LENGTH] or None, content[:MAX_TEXT_LENGTH] or None)
        )
    if not rows:
        return
    if postgres:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(_PG_INSERT, [list(column) for column in zip(*rows, strict=True)])
        cursor.close()
    else:
        conn.exec_driver_sql(
            "INSERT INTO idx_text (resource_key, compartment, narrative, content) VALUES (?, ?, ?, ?)", rows
        )


def delete_text(conn: Connection, resource_keys: Sequence[int]) -> None:
    """Remove the text rows of these resources (on SQLite the triggers update the FTS index)."""
    keys = list(resource_keys)
    for start in range(0, len(keys), 1000):
        conn.execute(delete(idx_text).where(idx_text.c.resource_key.in_(keys[start : start + 1000])))


# -- queries -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    text: str
    phrase: bool
    negated: bool


_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def parse_text_query(text: str) -> list[list[_Term]]:
    """The query as OR-ed groups of AND-ed terms; Invalid if a group has no positive term."""
    groups: list[list[_Term]] = [[]]
    for match in _TOKEN.finditer(text):
        minus, quoted, word = match.groups()
        if word == "OR":
            if groups[-1]:
                groups.append([])
            continue
        if word is not None:
            negated = word.startswith("-") and len(word) > 1
            term = _Term(word[1:] if negated else word, False, negated)
        else:
            term = _Term(quoted, True, bool(minus))
        if any(c.isalnum() for c in term.text):  # punctuation alone indexes nothing
            groups[-1].append(term)
    groups = [g for g in groups if g]
    if not groups:
        raise Invalid(f"The full-text query {text!r} has no word to search for")
    for group in groups:
        if all(t.negated for t in group):
            raise Invalid(f"The full-text query {text!r} needs a word that is not excluded in each part")
    return groups


def _fts5_query(column: str, groups: list[list[_Term]]) -> str:
    """FTS5 syntax: every term a quoted string (so no character is an operator), AND/NOT/OR."""

    def quote(term: _Term) -> str:
        return '"' + term.text.replace('"', '""') + '"'

    rendered = []
    for group in groups:
        positive = " AND ".join(quote(t) for t in group if not t.negated)
        negative = "".join(f" NOT {quote(t)}" for t in group if t.negated)
        rendered.append(f"({positive}{negative})")
    return f"{column} : ({' OR '.join(rendered)})"


def _websearch_query(groups: list[list[_Term]]) -> str:
    """The same query re-serialised for `websearch_to_tsquery`, accents folded as in the index."""

    def render(term: _Term) -> str:
        body = normalize_string(term.text).replace('"', " ")
        body = f'"{body}"' if term.phrase else body.lstrip("-")
        return f"-{body}" if term.negated else body

    return " or ".join(" ".join(render(t) for t in group) for group in groups)


def condition(kind: str, text: str | Iterable[str], table: FromClause) -> ColumnElement[bool]:
    """`table.resource_key IN (keys whose narrative or content matches)`; several texts are OR-ed.

    `table` is the `resource` table (or an alias of it) of the search being compiled. Both dialects'
    subqueries are built; the one of the database compiling the statement is rendered.
    """
    if kind not in _COLUMN:
        raise ValueError(f"not a full-text parameter: {kind}")
    texts = [text] if isinstance(text, str) else list(text)
    groups = [group for t in texts for group in parse_text_query(t)]
    column = _COLUMN[kind]
    key = table.c.resource_key
    fts_match = sql_column("idx_text_fts").op("MATCH")(_fts5_query(column, groups))
    tsquery = func.websearch_to_tsquery(literal_column(f"'{_LANGUAGE}'::regconfig"), _websearch_query(groups))
    return _PerDialect(
        sqlite=key.in_(select(_fts.c.rowid).where(fts_match)),
        postgresql=key.in_(select(idx_text.c.resource_key).where(idx_text.c[column].op("@@")(tsquery))),
    )


class _PerDialect(ColumnElement[bool]):
    """One of two conditions, chosen by the dialect that compiles the statement.

    The search compiler builds statements without an engine (`compile_search(query, access)`), and
    full-text search is the one condition whose SQL differs between the two databases.
    """

    __visit_name__ = "socle_per_dialect"
    inherit_cache = True
    _traverse_internals = [
        ("sqlite", InternalTraversal.dp_clauseelement),
        ("postgresql", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()

    def __init__(self, *, sqlite: ColumnElement[bool], postgresql: ColumnElement[bool]) -> None:
        self.sqlite = sqlite
        self.postgresql = postgresql


@compiles(_PerDialect)
def _compile_per_dialect(element: _PerDialect, compiler: SQLCompiler, **kw: Any) -> str:
    chosen = element.postgresql if compiler.dialect.name == "postgresql" else element.sqlite
    return compiler.process(chosen, **kw)
