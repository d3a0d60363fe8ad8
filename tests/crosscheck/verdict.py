"""Judge one query: Socle's answer against Medplum's, with the R4 rules for paging and sorting.

A disagreement is a set of problems, each tagged: `extra` (Socle returns ids Medplum does not),
`missing` (the reverse), `order-medplum` (sort key unique, Socle's order differs from Medplum's),
`order-r4` (Socle's order breaks the sort key itself, search.html#sort), `paging` (a page larger
than `_count`, an empty page before the last, an id on two pages: search.html#count), `total`
(Bundle.total is not the number of matches: bundle.html#searchset; with `_summary=count` only the
total is compared, against Medplum's count),
`error-socle` / `error-medplum` (one side rejects a query the other answers). A known Medplum
deviation names the relation that must still hold (Socle ⊆ Medplum, ⊇, same set…); the tags it
tolerates are listed in `TOLERATED`. `paging`, `order-r4`, `total` and `error-socle` never are:
they are judged against R4 alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tests.crosscheck.harness import Query, SocleAnswer

Relation = Literal["subset", "superset", "set"]
Kind = Literal["agree", "deviation", "unsupported", "disagree"]
TOLERATED: dict[Relation, frozenset[str]] = {
    "subset": frozenset({"missing", "order-medplum"}),  # Socle ⊆ Medplum
    "superset": frozenset({"extra", "order-medplum"}),  # Socle ⊇ Medplum
    "set": frozenset({"order-medplum"}),  # same set; order judged by R4 only
}
_DATE = re.compile(r"^\d{4}(-\d\d(-\d\d(T[\d:.]+(Z|[+-]\d\d:\d\d)?)?)?)?$")


@dataclass(frozen=True)
class Deviation:
    relation: Relation
    reason: str


@dataclass
class Outcome:
    query: Query
    kind: Kind
    problems: dict[str, str] = field(default_factory=dict)
    socle: SocleAnswer = field(default_factory=SocleAnswer)
    medplum_ids: list[str] = field(default_factory=list)
    note: str = ""


def judge(query: Query, socle: SocleAnswer, medplum: dict[str, Any], deviation: Deviation | None) -> Outcome:
    outcome = Outcome(query, "agree", socle=socle, medplum_ids=list(medplum.get("ids", [])))
    if socle.unsupported is not None:
        outcome.kind = "unsupported"
        outcome.note = socle.unsupported
        return outcome
    problems = outcome.problems
    if socle.error is not None or "error" in medplum:
        if socle.error is not None and "error" in medplum and socle.status == 400:
            outcome.note = f"both reject: {socle.error} / {medplum['error']}"
            return outcome
        if socle.error is not None:
            problems["error-socle"] = socle.error
        else:
            problems["error-medplum"] = str(medplum["error"])
    elif _param(query, "_summary") == "count":
        if socle.total != len(outcome.medplum_ids) or socle.ids:
            problems["total"] = f"_summary=count: total {socle.total}, {len(socle.ids)} entries"
    else:
        _compare_sets(socle.ids, outcome.medplum_ids, problems)
        _check_paging(query, socle, problems)
        _check_order(query, socle.ids, medplum, problems)
        if socle.total is not None and socle.total != len(socle.ids):
            problems["total"] = f"Bundle.total {socle.total} for {len(socle.ids)} matches"
    if not problems:
        outcome.note = "allow-listed, but agrees" if deviation else ""
        return outcome
    if deviation is not None and set(problems) <= TOLERATED[deviation.relation]:
        outcome.kind = "deviation"
        outcome.note = deviation.reason
    else:
        outcome.kind = "disagree"
    return outcome


def _compare_sets(socle: list[str], medplum: list[str], problems: dict[str, str]) -> None:
    extra = sorted(set(socle) - set(medplum))
    missing = sorted(set(medplum) - set(socle))
    if extra:
        problems["extra"] = f"{len(extra)} only in Socle, e.g. {extra[:3]}"
    if missing:
        problems["missing"] = f"{len(missing)} only in Medplum, e.g. {missing[:3]}"


def _param(query: Query, name: str) -> str | None:
    return next((value for key, value in query.params if key == name), None)


def _check_paging(query: Query, socle: SocleAnswer, problems: dict[str, str]) -> None:
    count = _param(query, "_count")
    sizes = socle.page_sizes
    if count is not None and any(size > int(count) for size in sizes):
        problems["paging"] = f"page sizes {sizes} exceed _count={count}"
    elif any(size == 0 for size in sizes[:-1]):
        problems["paging"] = f"empty page before the last: {sizes}"
    elif len(socle.ids) != len(set(socle.ids)):
        problems["paging"] = "an id appears on two pages"


def _instant(text: str, high: bool) -> datetime:
    """The first instant of a date/dateTime's precision range, or the first one after it."""
    padded = text + "-01-01T00:00:00"[len(text) - 4 :] if len(text) < 19 else text
    moment = datetime.fromisoformat(padded.replace("Z", "+00:00"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not high:
        return moment
    if len(text) == 4:
        return moment.replace(year=moment.year + 1)
    if len(text) == 7:
        return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)
    return moment + (timedelta(days=1) if len(text) == 10 else timedelta(seconds=1))


def _typed(value: Any, high: bool) -> Any:
    """A comparable key, or None. Dates and Periods are ranges: their low or their high end."""
    if isinstance(value, dict) and isinstance(value.get("value"), int | float):
        return float(value["value"])  # a Quantity: its value (units are the query's business)
    if isinstance(value, dict) and value and set(value) <= {"start", "end"}:
        bound = value.get("end" if high else "start")
        if bound is None:  # an open end is unknown/ongoing (datatypes.html#Period)
            return datetime.max.replace(tzinfo=UTC) if high else datetime.min.replace(tzinfo=UTC)
        return _typed(bound, high)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, int | float):
        return float(value)
    if _DATE.match(value):
        return _instant(value, high)
    return value.casefold()


def _keys(raw: dict[str, list[Any]], descending: bool, high: bool) -> dict[str, Any]:
    """Per id, the value that comes first in the sort order (R4 search.html#sort); complex or
    absent values (HumanName…) are left out: R4 leaves their place to the server."""
    keys: dict[str, Any] = {}
    for resource_id, values in raw.items():
        typed = [_typed(v, high) for v in values]
        if typed and all(t is not None for t in typed):
            keys[resource_id] = max(typed) if descending else min(typed)
    return keys if len({type(k) for k in keys.values()}) <= 1 else {}


def _misplaced(socle_ids: list[str], keys: dict[str, Any], descending: bool) -> str | None:
    ordered = [keys[i] for i in socle_ids if i in keys]
    for position, (a, b) in enumerate(zip(ordered, ordered[1:], strict=False)):
        if (a < b) if descending else (a > b):
            return f"key {b!r} after {a!r} at position {position + 1}"
    return None


def _check_order(
    query: Query, socle_ids: list[str], medplum: dict[str, Any], problems: dict[str, str]
) -> None:
    """Socle's order must follow the key; with unique, unambiguous keys it must also be Medplum's.

    R4 does not say where a range sorts (`1990` against `1990-05`, a Period): by its low or by its
    high end are both accepted, and Medplum's order is compared only when both give one order."""
    sort = _param(query, "_sort")
    if sort is None or "sortKeys" not in medplum:
        return
    descending = sort.startswith("-")
    raw = dict(zip(medplum["ids"], medplum["sortKeys"], strict=True))
    readings = [_keys(raw, descending, high) for high in (False, True)]
    errors = [_misplaced(socle_ids, keys, descending) for keys in readings]
    if all(errors):
        problems["order-r4"] = f"_sort={sort}: {errors[0]}"
        return
    orders = [sorted(keys, key=keys.__getitem__, reverse=descending) for keys in readings]
    single = all(len(values) == 1 for values in raw.values())
    unique = all(len(set(keys.values())) == len(keys) == len(raw) for keys in readings)
    if not (single and unique and orders[0] == orders[1] and set(socle_ids) == set(medplum["ids"])):
        return
    if socle_ids != medplum["ids"]:
        problems["order-medplum"] = f"_sort={sort}: unique keys, Socle's order differs from Medplum's"
