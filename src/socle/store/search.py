"""Compile a typed FHIR search query into ONE SQLAlchemy SELECT over the index tables.

Each criterion of the query (AND) becomes a condition on the `resource` row: `resource_key IN
(SELECT resource_key FROM idx_<type> WHERE ...)` for a parameter (`_search_values`,
`_search_ranges`), its values (OR) one disjunction inside. `_id` and `_lastUpdated` read the
`resource` columns, `_text`/`_content` the full-text table (`socle.store.fulltext`).

Two shapes let a page of a large cohort stop after `_count + 1` rows instead of building the whole
driving set first (bench/README.md, search): a driving token criterion with one code reads its
index rows in key order, joined to `resource`, each resource at its first matching row
(`Condition?code=X`); and a query that `socle.store.selectivity` marks `probe_in_key_order` (a
`_has` whose criterion matches a large share of the type) has no driving set at all: the type's
resources are probed one by one in key order.

Chains and `_has` (R4 search.html#chaining, #has) are subqueries that join `idx_reference` to
another, aliased, `resource` row through the partial index `(param_hash, target_type, target_id)
WHERE target_url IS NULL`: only local references are followed (an absolute URL names a resource on
another server). The aliased row must be live and admitted by the access filter, which is ANDed
into every subquery that reads `resource`, so a chain cannot reveal a resource the policy hides:

    Observation?subject:Patient.name=peter
      resource.resource_key IN (SELECT ref.resource_key FROM idx_reference ref
        JOIN resource tgt ON tgt.resource_type = ref.target_type AND tgt.id = ref.target_id
        WHERE ref.param_hash = h(Observation, subject) AND ref.target_type = 'Patient'
          AND ref.target_url IS NULL AND NOT tgt.deleted AND <access(tgt)>
          AND tgt.resource_key IN (<name=peter on Patient>))
    Patient?_has:Observation:patient:code=1234-5
      resource.id IN (SELECT ref.target_id FROM idx_reference ref
        JOIN resource src ON src.resource_key = ref.resource_key
        WHERE ref.param_hash = h(Observation, patient) AND ref.target_type = 'Patient'
          AND ref.target_url IS NULL AND NOT src.deleted AND <access(src)>
          AND src.resource_key IN (<code=1234-5 on Observation>))

Supported, per search type (search.html#modifiers, #prefix):
- string: starts-with on the case/accent-folded text, `:exact`, `:contains`, `:missing`;
- token: `code`, `system|code`, `|code`, `system|`; `:not` (includes resources without a value),
  `:text` (display / text, starts-with), `:of-type` (Identifier type|value), `:missing`;
- reference: `Type/id`, `id`, absolute URL, `canonical|version`; `:[type]`, `:identifier`,
  `:missing`; chains (`.`, any depth up to query.MAX_DEPTH) and `_has` (nestable);
- uri: equality, `:above`, `:below`, `:missing`;
- date, number, quantity: prefixes `eq ne gt lt ge le sa eb ap`, `:missing`; quantities with
  `number|system|code` or `number||code`, UCUM ones in canonical units;
- composite: every R4 composite whose components resolve, `:missing` (one token system kept per key
  component, for the first two: enough for all R4 definitions);
- `_id` (`:not`, `:missing`), `_lastUpdated` (prefixes) on resource columns; `_tag`, `_security`
  (token), `_profile`, `_source` (uri) as indexed parameters; `_text`/`_content` in fulltext.
Not supported (NotSupported, 400 / a warning in lenient mode): token `:above`/`:below` (they
need a terminology server), reference `:above`/`:below`, special
parameters other than `near` (`_filter`, `_query`, `_list`: the parser reports them as unknown).
`near` (Location) reads `idx_position` (`socle.store.positions`); `:in`/`:not-in` are expanded
into token clauses by the search API before compiling (`socle.store.value_sets`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Connection,
    FromClause,
    Select,
    and_,
    exists,
    false,
    literal,
    not_,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import util as sql_util
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import Join

from socle.fhir.errors import Invalid, NotSupported
from socle.fhir.hashing import param_hash
from socle.fhir.query import (
    Chain,
    Clause,
    Criterion,
    DateValue,
    Has,
    MissingValue,
    SearchQuery,
    StringValue,
    TokenValue,
    parse_query,
)
from socle.fhir.search_params import registry
from socle.store import fulltext
from socle.store._search_ranges import composite, date, date_condition, number, quantity
from socle.store._search_values import (
    Built,
    Condition,
    Key,
    ProbeOnly,
    Rows,
    as_condition,
    missing,
    reference,
    row_exists,
    string,
    token,
    typed,
    uri,
)
from socle.store.access import AccessFilter, AllowAll
from socle.store.indexes import idx_reference
from socle.store.positions import idx_position, near_condition
from socle.store.schema import resource

__all__ = [
    "clause_rows",
    "compile_search",
    "criterion_condition",
    "criterion_rank",
    "driving_criterion",
    "find_keys",
    "supported_search_params",
]


def compile_search(
    query: SearchQuery,
    access: AccessFilter,
    scope: Select[Any] | CompoundSelect[Any] | None = None,
    *,
    key_order: bool = False,
    bounded: bool = False,
) -> Select[int, str]:
    """Keys and ids of the current, non-deleted resources of the query's type matching every criterion.

    `scope`, keys the matches must be among (a patient compartment), drives the query when given;
    otherwise the most selective criterion does (`driving_criterion`) and the others are probes.
    With `query.probe_in_key_order` (a criterion matching a large share of the type) no criterion
    drives a page read in key order (`key_order`): the type's resources are probed one by one, so
    that it stops after its `_count + 1` matches instead of building the whole driving set. A
    driving criterion whose index gives its rows in key order (one code) is joined rather than
    IN-listed (`_stream_from`): a page or a bounded count then stops early. A count stopped at a
    bound (`bounded`) reads a driving `_has` as the distinct resources its sources reference
    (`_referenced_from`), and one criterion under a filter admitting every row from that
    criterion's index alone (`_index_alone`).
    """
    if bounded and scope is None and isinstance(access, AllowAll):
        alone = _index_alone(query)
        if alone is not None:
            return alone
    probing = scope is None and key_order and query.probe_in_key_order
    # A page probed in key order walks `ix_resource_type_key` (the type's resources in key order):
    # both databases take it for `resource_type = ? ORDER BY resource_key`.
    stmt = select(resource.c.resource_key, resource.c.id).where(
        resource.c.resource_type == query.resource_type,
        resource.c.deleted == false(),
        access.condition(resource),
    )
    driver = None if scope is not None or probing else driving_criterion(query.clauses)
    if scope is not None:
        stmt = stmt.where(resource.c.resource_key.in_(scope))
    # The driving criterion's index rows, built once for every shape below.
    driving = query.clauses[driver] if driver is not None else None
    rows = _clause(driving, resource) if isinstance(driving, Clause) else None
    stream = (
        rows if isinstance(driving, Clause) and isinstance(rows, Rows) and _streams(driving, rows) else None
    )
    order: ColumnElement[int] = resource.c.resource_key
    if stream is not None:
        stmt, order = _stream_from(stream, stmt)
    # A statement stopped after a few rows tests each candidate; a semi-join would first build the
    # whole set of another criterion (PostgreSQL, bounded count of role+specialty: see row_exists).
    correlated = probing or bounded
    joined = False
    if stream is None and bounded and isinstance(driving, Has):
        referenced = _referenced_from(driving, stmt, access)
        if referenced is not None:
            stmt, joined = referenced, True
    for n, criterion in enumerate(query.clauses):
        if n == driver and (stream is not None or joined):
            continue  # the join above
        if n == driver and rows is not None:
            if key_order and isinstance(rows, Rows):
                stmt = stmt.where(resource.c.resource_key.in_(_sorted_keys(rows)))
            else:
                stmt = stmt.where(as_condition(rows, resource.c.resource_key, drive=True))
            continue
        condition = criterion_condition(criterion, resource, access, drive=n == driver, correlated=correlated)
        stmt = stmt.where(condition)
    return stmt.order_by(order)


def _index_alone(query: SearchQuery) -> Select[int, str] | None:
    """The distinct keys that the criteria's index rows give, without `resource`, when they are
    its matches: every index predicate names the resource type through its hash, and a resource has
    index rows only while it is live (`Store.delete` removes them). Under an access filter that
    admits every row, a bounded count then reads the index alone: at a million directory lines,
    `Practitioner?name=martin` counted its first 1,001 matches in 0.2 ms of CPU instead of 3–7 ms
    looking up each resource row (and tens of ms of wall time reading them from disk). The id is
    not read (NULL): only a count uses this shape.

    With several such criteria the most selective one's rows drive and each other one tests the
    key on its own index rows, one key at a time (`row_exists`). At 100k directory lines, the
    bounded count of `PractitionerRole?role=10&specialty=SM54` took 22.9 ms (a resource lookup and
    two probes per match) and 1.6 ms this way."""
    built = [_clause(c, resource) if isinstance(c, Clause) else None for c in query.clauses]
    rows = [b for b in built if isinstance(b, Rows)]
    driver = driving_criterion(query.clauses)
    if not rows or len(rows) != len(built) or driver is None:
        return None
    driving = rows[driver].table.alias("driving")  # the probes may read the same table
    key = driving.c.resource_key
    stmt = select(key.label("resource_key"), null().label("id")).where(
        sql_util.ClauseAdapter(driving).traverse(rows[driver].where)
    )
    for n, other in enumerate(rows):
        if n != driver:
            stmt = stmt.where(other.probe(key, correlated=True))
    return stmt.distinct()


def _sorted_keys(rows: Rows) -> Select[Any]:
    """The driving keys of a page read in key order: on PostgreSQL distinct and sorted.

    PostgreSQL then walks them in order, looking up each `resource` row until the page is full.
    Given the bare `key IN (SELECT ...)` it estimated a name prefix's range at one row, hashed
    the matches and looked up every match's `resource` row before sorting for the top 20: at 100k
    directory lines, `Practitioner?name=le` 9,451 buffers and 39 ms, sorted keys 270 and 3 ms.
    PostgreSQL only: SQLite's IN list is a b-tree in key order already, and the DISTINCT or ORDER
    BY would build another one."""
    return (
        rows.keys()
        .prefix_with("DISTINCT", dialect="postgresql")
        .suffix_with("ORDER BY 1", dialect="postgresql")
    )


def _streams(criterion: Clause, rows: Rows) -> bool:
    """Whether a driving criterion's index gives its rows in key order (one code, no modifier)."""
    return criterion.modifier is None and criterion.param.type == "token" and rows.key_ordered


def _stream_from(rows: Rows, stmt: Select[Any]) -> tuple[Select[Any], ColumnElement[int]]:
    """`stmt` reading the index rows first, in key order, joined to their `resource` row: a page
    stops after `_count + 1` of them, where `key IN (SELECT ...)` builds the whole set first. Each
    resource is kept at its first matching row (a value twice in one resource gives two rows).
    Returns the statement and its key column. The index table is aliased: a `_sort` subquery on
    the same table must not correlate to it."""
    driving, earlier = rows.table.alias("driving"), rows.table.alias("earlier")
    where = sql_util.ClauseAdapter(driving).traverse(rows.where)
    again = sql_util.ClauseAdapter(earlier).traverse(rows.where)
    key = driving.c.resource_key
    first = not_(row_exists(earlier, earlier.c.resource_key == key, earlier.c.seq < driving.c.seq, again))
    # `key + 0`: the key order must come from the index rows. Joined on the bare key, PostgreSQL
    # may take it from `resource`'s primary key instead, walking every resource of the other types
    # from the first one (and semi-joining the probes in that order): 0.7-1.4 s for a page of
    # `PractitionerRole?role=X&specialty=Y` behind a million-line FINESS import, 30-40 ms this way.
    joined = driving.join(resource, resource.c.resource_key == key + 0)
    stmt = stmt.with_only_columns(key.label("resource_key"), resource.c.id).select_from(joined)
    return stmt.where(where, first), key


def _referenced_from(has: Has, stmt: Select[Any], access: AccessFilter) -> Select[Any] | None:
    """`stmt` (over the searched type's `resource` rows) reading the resources that a driving `_has`
    names from the distinct ids its sources reference, for a bounded count: `(SELECT DISTINCT
    target_id FROM <criterion rows> JOIN idx_reference ...) CROSS JOIN resource`. SQLite reads the
    subquery as a co-routine, one new id at a time, so the count stops after `up_to + 1` resources
    however many sources there are (a plain join, or `id IN (...)`, materializes every id first;
    probing the type in key order cost several probes a match). PostgreSQL hashes the ids from two
    index-only scans (every local reference of the parameter: still a cost that grows with the
    data), then looks up `up_to + 1` resources. The sources are read only under a filter
    that may hide some: a resource has index rows only while it is live (`_index_alone`). None when
    the criterion has no index rows of its own (a chain, a nested `_has`, `:missing`...)."""
    if not isinstance(has.criterion, Clause):
        return None
    built = _clause(has.criterion, resource)
    if not isinstance(built, Rows):
        return None
    # The tables themselves: a subquery in FROM never correlates to the outer query, and an alias
    # costs a copy of every column (and of the criterion) for each count. Unless the criterion
    # reads the reference rows too (`_has:Condition:patient:subject=...`).
    source, name, ref = has.param.resource_type, has.param.name, idx_reference
    crit: FromClause = built.table
    criterion = built.where
    if crit is ref:
        crit = ref.alias("criterion")
        criterion = sql_util.ClauseAdapter(crit).traverse(criterion)
    # The criterion row's own reference rows, by primary key (`probe`).
    where = [criterion, _local_references(source, name, has.resource_type, probe=True)]
    sources: FromClause = crit
    if not isinstance(access, AllowAll):
        src = resource.alias("source")
        sources = crit.join(src, src.c.resource_key == crit.c.resource_key)
        where += [src.c.resource_type == source, src.c.deleted == false(), access.condition(src)]
    joined = sources.join(ref, ref.c.resource_key == crit.c.resource_key)
    ids = select(ref.c.target_id).select_from(joined).where(*where).distinct().subquery("referenced")
    return stmt.select_from(_CrossJoin(ids, resource)).where(resource.c.id == ids.c.target_id)


class _CrossJoin(Join):
    """`left CROSS JOIN right`, the condition in WHERE: SQLite keeps `left` the outer loop and
    reads a subquery there as a co-routine (sqlite.org/optoverview.html#crossjoin); PostgreSQL
    plans it as any inner join."""

    inherit_cache = True

    def __init__(self, left: FromClause, right: FromClause) -> None:
        super().__init__(left, right, true())


@compiles(_CrossJoin)
def _compile_cross_join(element: _CrossJoin, compiler: SQLCompiler, **kw: Any) -> str:
    kw["asfrom"] = True
    return f"{compiler.process(element.left, **kw)} CROSS JOIN {compiler.process(element.right, **kw)}"


def driving_criterion(criteria: Sequence[Criterion]) -> int | None:
    """Which criterion (index) should produce the candidate keys: the one expected to match fewest.

    A cheap static estimate, by what a criterion names (a reference to one resource, an identifier,
    a chain to such, ... down to a date range or a low-cardinality code): statistics would need a
    round trip per search. None when no criterion can drive: `_id` (the unique (type, id) index on
    `resource` drives then) or only anti-joins and `resource` columns.
    """
    ranks = [criterion_rank(c) for c in criteria]
    if any(isinstance(c, Clause) and c.name == "_id" and c.modifier is None for c in criteria):
        return None
    candidates = [(rank, n) for n, rank in enumerate(ranks) if rank is not None]
    return min(candidates)[1] if candidates else None


# Token parameters with few distinct values: each value matches a large share of the type.
_COARSE_TOKENS = frozenset(
    {"gender", "status", "active", "clinical-status", "verification-status", "intent", "priority"}
    | {"category", "class", "deceased", "_security", "_tag", "language", "kind", "mode"}
)


def criterion_rank(criterion: Criterion) -> int | None:
    """Expected selectivity, lower is fewer matches; None: never drives (anti-joins, row columns)."""
    if isinstance(criterion, Chain):
        return 2
    if isinstance(criterion, Has):
        return 3
    param, modifier = criterion.param, criterion.modifier
    if modifier in ("missing", "not", "not-in") or param.name in ("_id", "_lastUpdated"):
        return None
    if param.name in fulltext.PARAMS:
        return 4
    kind = param.type
    if kind == "reference":
        return 1
    if kind == "token":
        if modifier == "text":
            return 4
        if modifier == "of-type" or param.name.endswith("identifier"):
            return 1
        return 5 if param.name in _COARSE_TOKENS else 3
    if kind == "uri":
        return 1 if modifier is None else 4
    if kind == "string":
        if modifier == "exact":
            return 2
        if modifier == "contains":
            return 6
        shortest = min((len(v.text) for v in criterion.values if isinstance(v, StringValue)), default=0)
        return 3 if shortest > 2 else 5
    if kind == "composite":
        return 3
    if kind == "special":  # near: a bounding box
        return 2
    if kind in ("quantity", "number"):
        return 4
    return 5  # date, special


def find_keys(
    conn: Connection, resource_type: str, query_string: str, access: AccessFilter, limit: int
) -> list[tuple[int, str]]:
    """Matches of a conditional create/update/delete or conditional reference (R4 http.html#cond).

    Strict: an unknown parameter is an error rather than ignored, and a query with no criteria is
    refused, since matching "everything" would make a conditional delete or update destructive.
    """
    query = parse_query(resource_type, query_string, strict=True)
    if not query.clauses:
        raise Invalid(f"A conditional operation on {resource_type} needs search criteria")
    rows = conn.execute(compile_search(query, access).limit(limit)).all()
    return [(int(key), str(id_)) for key, id_ in rows]


def supported_search_params(resource_type: str) -> list[tuple[str, str, str]]:
    """(name, definition URL, type) of the parameters this module can search on (CapabilityStatement)."""
    return sorted(
        (p.name, p.url, p.type)
        for p in registry().params(resource_type).values()
        if (p.type in _BUILDERS or (p.type, p.name) == ("special", "near")) and p.expression is not None
    )


def criterion_condition(
    criterion: Criterion,
    res: FromClause,
    access: AccessFilter,
    *,
    drive: bool = False,
    correlated: bool = False,
) -> Condition:
    """The condition `criterion` puts on `res`, a `resource` row (the table or an alias of it).

    `drive`: the criterion produces the candidates (`key IN (SELECT ...)`, read from its index);
    otherwise it tests each candidate (a correlated EXISTS keyed by the candidate's resource key).
    `correlated`: a probe must stay a per-candidate test (see `row_exists`).
    """
    if isinstance(criterion, Chain):
        return _chain(criterion, res, access, drive)
    if isinstance(criterion, Has):
        return _has(criterion, res, access, drive, correlated=correlated)
    return as_condition(_clause(criterion, res), res.c.resource_key, drive=drive, correlated=correlated)


def clause_rows(clause: Clause) -> Built:
    """What `clause` asks of the `resource` table's rows (index rows, or a ready condition)."""
    return _clause(clause, resource)


def _clause(clause: Clause, res: FromClause) -> Built:
    param, rt, key = clause.param, clause.resource_type, res.c.resource_key
    if param.name == "_id":
        return _id(clause, res)
    if param.name == "_lastUpdated":
        if clause.modifier == "missing":  # every resource has one
            return or_(*(false() if v.missing else true() for v in typed(clause, MissingValue)))
        column = res.c.updated_at
        return or_(*(date_condition(v, column, column + 1) for v in typed(clause, DateValue)))
    if param.name in fulltext.PARAMS:  # _text, _content
        if clause.modifier is not None:
            raise NotSupported(f"{clause.text} is not supported")
        return fulltext.condition(param.name, [v.text for v in typed(clause, StringValue)], res)
    if param.type == "special":
        if param.name != "near" or clause.modifier is not None:
            raise NotSupported(f"{clause.text} is not supported")
        return Rows(idx_position, near_condition([v.text for v in typed(clause, StringValue)]))
    if clause.modifier == "missing":
        return missing(rt, clause, key)
    build = _BUILDERS.get(param.type)
    if build is None:
        raise NotSupported(f"Search on {param.name} ({param.type} parameter) is not supported")
    return build(rt, clause, key)


def _id(clause: Clause, res: FromClause) -> Condition:
    if clause.modifier == "missing":
        return or_(*(false() if v.missing else true() for v in typed(clause, MissingValue)))
    if clause.modifier not in (None, "not"):
        raise NotSupported(f"{clause.text} is not supported")
    ids = [v.code for v in typed(clause, TokenValue) if v.code is not None]
    condition = res.c.id.in_(ids)
    return not_(condition) if clause.modifier == "not" else condition


def _local_references(param_rt: str, param_name: str, target_type: str, *, probe: bool = False) -> Condition:
    """Rows of `idx_reference` for one parameter pointing at a local resource of `target_type`.

    `probe`: the rows of one known resource are read by primary key, not by the parameter's index."""
    ref = idx_reference
    column: ColumnElement[int] = ProbeOnly(ref.c.param_hash) if probe else ref.c.param_hash
    return and_(
        column == param_hash(param_rt, param_name),
        ref.c.target_type == target_type,
        ref.c.target_url.is_(None),
    )


def _chain(chain: Chain, res: FromClause, access: AccessFilter, drive: bool) -> Condition:
    """`param.criterion`: a reference of `res` points to a live, admitted resource meeting it.

    Driving: the keys of the resources holding such a reference, from the targets meeting the
    criterion (which drives the inner query). Probing: does this resource hold one, read from its
    own reference rows (primary key), each target then tested by its criterion.
    """
    ref = idx_reference
    branches: list[Select[Any]] = []
    probes: list[Condition] = []
    for criterion in chain.criteria:
        target = criterion.resource_type
        tgt = resource.alias()
        local = _local_references(chain.resource_type, chain.param.name, target, probe=not drive)
        where = and_(
            local,
            tgt.c.resource_type == target,
            tgt.c.deleted == false(),
            access.condition(tgt),
            criterion_condition(criterion, tgt, access, drive=drive),
        )
        join = and_(tgt.c.resource_type == ref.c.target_type, tgt.c.id == ref.c.target_id)
        if drive:
            branches.append(select(ref.c.resource_key).join(tgt, join).where(where))
        else:
            own = ref.c.resource_key == res.c.resource_key
            probes.append(exists(select(literal(1)).select_from(ref.join(tgt, join)).where(own, where)))
    if not drive:
        return or_(*probes)
    # One IN over a UNION ALL, not an OR of INs: the planner can then semi-join instead of
    # filtering every row of the searched type through hashed subplans.
    return res.c.resource_key.in_(branches[0] if len(branches) == 1 else union_all(*branches))


def _has(
    has: Has, res: FromClause, access: AccessFilter, drive: bool, *, correlated: bool = False
) -> Condition:
    """`_has:Type:param:criterion`: a live, admitted resource of Type meeting the criterion
    references `res` (whose type the caller fixed) through `param`.

    Driving: the ids those resources reference (their criterion drives). Probing: the references
    to this resource, through the local-reference index `(param_hash, target_type, target_id)`;
    `correlated`: kept a per-candidate test on PostgreSQL (see `row_exists`).
    """
    ref = idx_reference
    source = has.param.resource_type
    src = resource.alias()
    where = and_(
        _local_references(source, has.param.name, has.resource_type),
        src.c.resource_type == source,
        src.c.deleted == false(),
        access.condition(src),
        criterion_condition(has.criterion, src, access, drive=drive),
    )
    join = src.c.resource_key == ref.c.resource_key
    if not drive:
        return row_exists(ref.join(src, join), ref.c.target_id == res.c.id, where, correlated=correlated)
    return res.c.id.in_(select(ref.c.target_id).join(src, join).where(where))


_BUILDERS: dict[str, Callable[[str, Clause, Key], Built]] = {
    "token": token,
    "string": string,
    "date": date,
    "number": number,
    "quantity": quantity,
    "reference": reference,
    "uri": uri,
    "composite": composite,
}
