"""The run-time pieces of compiled FHIRPath: what the closures built by `fhirpath` call on JSON.

Collections are Python lists of parsed JSON values (dicts, lists, str, int, float, bool), as in
FHIRPath N1 §4 (http://hl7.org/fhirpath/N1/#path-selection); empty means absent. Kept apart from the
compiler so that the hot code is small and readable on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from socle.fhir.references import parse_reference

__all__ = [
    "FUNCTIONS",
    "LOGIC",
    "Fn",
    "ResolvedReference",
    "const",
    "equal",
    "identity",
    "is_type",
    "navigate",
]

# A compiled node: (focus collection, root resource) -> result collection.
Fn = Callable[[list[Any], Any], list[Any]]


@dataclass(frozen=True, slots=True)
class ResolvedReference:
    """What `resolve()` yields without a database: the target's type (and id) read from the reference."""

    type: str | None
    id: str | None


def identity(items: list[Any], root: Any) -> list[Any]:
    return items


def const(value: Any) -> Fn:
    return lambda items, root: [value]


def navigate(base: Fn, keys: tuple[str, ...]) -> Fn:
    """Member access: flatten arrays, skip absent keys and JSON nulls (R4 json.html#arrays)."""

    def fn(items: list[Any], root: Any) -> list[Any]:
        out: list[Any] = []
        for item in base(items, root):
            if type(item) is dict:
                for key in keys:
                    value = item.get(key)
                    if value is None:
                        continue
                    if type(value) is list:
                        out.extend([v for v in value if v is not None])
                    else:
                        out.append(value)
        return out

    return fn


def resolve_one(value: Any, root: Any) -> ResolvedReference | None:
    """FHIR's `resolve()` (R4 fhirpath.html#functions), reduced to the target's type and id."""
    text = value.get("reference") if type(value) is dict else value
    if type(text) is str:
        if text.startswith("#") and type(root) is dict:  # contained: look at the resource it names
            for contained in root.get("contained", ()):
                if type(contained) is dict and contained.get("id") == text[1:]:
                    return ResolvedReference(contained.get("resourceType"), text[1:])
            return None
        target = parse_reference(text)
        if target.resource_type is not None:
            return ResolvedReference(target.resource_type, target.id)
    if type(value) is dict and type(value.get("type")) is str:
        return ResolvedReference(value["type"], None)
    return None


def is_type(value: Any, type_name: str) -> bool:
    """`is T` on a resource or a resolved reference; other values are only typed at compile time."""
    if isinstance(value, ResolvedReference):
        actual = value.type
    elif type(value) is dict:
        actual = value.get("resourceType")
    else:
        return False
    return actual == type_name or (actual is not None and type_name in ("Resource", "DomainResource"))


def truth(result: list[Any]) -> bool | None:
    """Singleton evaluation of collections as booleans (FHIRPath N1 §4.5)."""
    if not result:
        return None
    if len(result) == 1 and type(result[0]) is bool:
        return result[0]
    return True


def equal(left: list[Any], right: list[Any]) -> bool:
    """`=` on collections: same length, items pairwise equal (FHIRPath N1 §6.1.1)."""
    if len(left) != len(right):
        return False
    for a, b in zip(left, right, strict=True):
        # `True == 1` in Python but not in FHIRPath; ints and floats do compare.
        if (type(a) is bool) != (type(b) is bool) or a != b:
            return False
    return True


# Three-valued logic (FHIRPath N1 §6.5): None is the empty collection.
def _and(a: bool | None, b: bool | None) -> list[Any]:
    if a is False or b is False:
        return [False]
    return [True] if a and b else []


def _or(a: bool | None, b: bool | None) -> list[Any]:
    if a is True or b is True:
        return [True]
    return [False] if a is False and b is False else []


def _xor(a: bool | None, b: bool | None) -> list[Any]:
    return [] if a is None or b is None else [a != b]


def _implies(a: bool | None, b: bool | None) -> list[Any]:
    if a is False or b is True:
        return [True]
    return [False] if a is True and b is False else []


LOGIC: dict[str, Callable[[bool | None, bool | None], list[Any]]] = {
    "and": _and,
    "or": _or,
    "xor": _xor,
    "implies": _implies,
}


def _not(values: list[Any], root: Any) -> list[Any]:
    value = truth(values)
    return [] if value is None else [not value]


def _resolve(values: list[Any], root: Any) -> list[Any]:
    return [t for x in values if (t := resolve_one(x, root)) is not None]


# Functions without arguments (FHIRPath N1 §5.1, §5.3, FHIR's resolve()), with the type of their
# result: "boolean", "integer", "input" (a subset of the input) or "" (unknown).
FUNCTIONS: dict[str, tuple[Fn, str]] = {
    "exists": (lambda v, r: [bool(v)], "boolean"),
    "empty": (lambda v, r: [not v], "boolean"),
    "not": (_not, "boolean"),
    "hasValue": (lambda v, r: [len(v) == 1 and type(v[0]) is not dict], "boolean"),
    "count": (lambda v, r: [len(v)], "integer"),
    "first": (lambda v, r: v[:1], "input"),
    "last": (lambda v, r: v[-1:], "input"),
    "tail": (lambda v, r: v[1:], "input"),
    "single": (lambda v, r: v if len(v) == 1 else [], "input"),
    "getValue": (lambda v, r: [x for x in v if type(x) is not dict], "input"),
    "resolve": (_resolve, ""),
}
