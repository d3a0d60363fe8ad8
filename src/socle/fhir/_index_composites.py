"""Index values of composite search parameters: one tuple per element occurrence (R4 search.html#composite).

`Observation?component-code-value-quantity=http://loinc.org|8480-6$gt100` must match a systolic
component above 100, not an Observation where one component is systolic and *another* is above 100.
So the components are read together from each element the composite's expression yields (the
Observation itself, or each `component`) and stored as one row per combination of their values:

- components searched by equality (token, reference, uri) become *key parts*, tagged so that
  their boundaries cannot be confused once hashed: a token `("T", code)`, a reference
  `("R", type, id)` or `("U", url)`, a uri `("U", uri)`. The store hashes (type, param, *parts)
  into one indexed `key_hash`: the `code$...` search form. A token's system is kept apart, as the
  hash of `("S", system, code)` for each of the first two key components (`part1`, `part2`), and
  is checked after the key when the search gives a system (`system|code`, `|code`). So a
  component with one coding makes one row, whichever forms the searches use;
- ordered components fill typed columns: quantity and number `value` (a second number `value2`),
  date `low`/`high`, string `text` (normalised), with the quantity's `units`/`system` (the store
  adds the UCUM canonical value in the same row, as for plain quantity parameters).

A composite whose component has no value in an element yields nothing for that element.
Combinations are capped (`MAX_ROWS` per element) so that a pathological resource cannot explode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from socle.fhir._index_values import ADDERS, CompositeRow, IndexValues

__all__ = ["KEY_TYPES", "MAX_ROWS", "ComponentReader", "CompositeSpec", "add_composites"]

KEY_TYPES = frozenset({"token", "reference", "uri"})
MAX_ROWS = 64
MAX_KEY_PARTS = 2  # key components whose system is kept (`part1`, `part2`); R4 has no composite with more

# (search type, expression, extractor, whether the expression reads %resource rather than the element)
ComponentReader = tuple[str, str, Callable[[Mapping[str, Any]], list[Any]], bool]
# A composite parameter: its name and its components in definition order.
CompositeSpec = tuple[str, tuple[ComponentReader, ...]]
# value, value2, low, high, text, units, system
_Ordered = tuple[float | None, float | None, int | None, int | None, str | None, str | None, str | None]
_EMPTY: _Ordered = (None, None, None, None, None, None, None)
_Cache = dict[tuple[str, str], IndexValues | None]


_Key = tuple[tuple[str, ...], tuple[tuple[str, ...] | None, ...]]  # (key parts, system parts)


def _key_forms(kind: str, values: IndexValues) -> list[tuple[tuple[str, ...], tuple[str, ...] | None]]:
    """(key part, system part or None) of each value of one key component."""
    if kind == "token":
        return sorted({(("T", code), ("S", system, code)) for _name, system, code in values.tokens})
    if kind == "reference":
        return sorted(
            {
                (("U", url) if url is not None else ("R", target_type or "", target_id or ""), None)
                for _name, target_type, target_id, url in values.references
            },
            key=str,
        )
    return sorted({(("U", uri), None) for _name, uri in values.uris}, key=str)


def _ordered_options(kind: str, values: IndexValues, row: _Ordered) -> list[_Ordered]:
    value, value2, low, high, text, units, system = row
    if kind == "quantity":
        return [
            (number, value2, low, high, text, code or None, system_ or None)
            for _name, number, system_, code in values.quantities
        ]
    if kind == "number":
        if value is None:
            return [(n, None, low, high, text, units, system) for _name, n in values.numbers]
        return [(value, n, low, high, text, units, system) for _name, n in values.numbers]
    if kind == "date":
        return [(value, value2, lo, hi, text, units, system) for _name, lo, hi in values.dates]
    if kind == "string":
        return [
            (value, value2, low, high, folded, units, system)
            for name, folded, _exact in values.strings
            if not name
        ]
    return []


def add_composites(
    out: IndexValues, _name: str, item: tuple[Any, Mapping[str, Any]], *, specs: Sequence[CompositeSpec]
) -> None:
    """Add the rows of one element (`item` is (element, resource)) for every composite in `specs`.

    The composites of a type that share an expression (`Observation`: code-value-quantity,
    code-value-concept, ...) are read together: each component expression runs once per element,
    and a composite stops at its first component without a value (usually the `value[x]` it is
    not), so an Observation costs about one composite, not six.
    """
    element, resource = item
    cache: _Cache = {}
    for name, components in specs:
        found = []
        for reader in components:
            values = _component(reader, element, resource, cache)
            if values is None:
                break
            found.append(values)
        else:
            _add_rows(out, name, components, found)


def _component(
    reader: ComponentReader, element: Any, resource: Mapping[str, Any], cache: _Cache
) -> IndexValues | None:
    kind, expression, extract, on_resource = reader
    key = (kind, expression)
    if key in cache:
        return cache[key]
    raw = extract(resource if on_resource else element)
    found = None
    if raw:
        found = IndexValues()
        add = ADDERS[kind]
        for value in raw:
            add(found, "", value)
    cache[key] = found
    return found


def _add_rows(
    out: IndexValues, name: str, components: Sequence[ComponentReader], found: Sequence[IndexValues]
) -> None:
    keys: list[_Key] = [((), ())]
    ordered: list[_Ordered] = [_EMPTY]
    for (kind, *_), values in zip(components, found, strict=True):
        if kind in KEY_TYPES:
            forms = _key_forms(kind, values)
            keys = [(key + part, systems + (system,)) for key, systems in keys for part, system in forms]
            keys = keys[:MAX_ROWS]
            if not keys:
                return
        else:
            ordered = [option for row in ordered for option in _ordered_options(kind, values, row)][:MAX_ROWS]
            if not ordered:
                return
    budget = MAX_ROWS
    for value, value2, low, high, text, units, system in ordered:
        for key, systems in keys[: max(budget, 0)]:
            part1, part2 = (*systems[:MAX_KEY_PARTS], None, None)[:2]
            row: CompositeRow = (name, key, part1, part2, value, value2, low, high, text, units, system)
            out.composites.add(row)
        budget -= len(keys)
