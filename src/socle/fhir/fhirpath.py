"""Compile the FHIRPath of search parameters into plain Python callables over resource JSON.

Search-parameter expressions (R4 §3.1.1.4, https://hl7.org/fhir/R4/searchparameter.html) are a
small slice of FHIRPath (http://hl7.org/fhirpath/N1/): paths, `|` unions, `where(...)` filters,
`as`/`ofType`/`is`, `extension(url)`, `resolve()`. Every resource written is run through all of its
type's parameters, so a generic interpreter is too slow; instead each expression is compiled once
into nested closures working directly on the parsed JSON (dicts and lists).

Choice elements are resolved at compile time from the element model of the official
StructureDefinitions (`structure.compiled_schema`, https://hl7.org/fhir/R4/formats.html#choice):
`Observation.value as Quantity` reads `valueQuantity`, `Observation.effective`
yields whichever `effective<Type>` exists. When a `resource_type` is given, union branches rooted
at another type (`Condition.code | Observation.code`) are dropped at compile time.

Expressions outside the subset raise `FhirPathUnsupported`; `compile_expression` then falls back to
the `fhirpathpy` interpreter when it is installed (custom SearchParameters only: every R4 core
expression compiles natively, see tests/fhir/test_fhirpath.py).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from socle.fhir._fhirpath_parser import (
    Binary,
    Call,
    Expr,
    FhirPathSyntaxError,
    Ident,
    Index,
    Literal,
    Member,
    TypeOp,
    Var,
    parse,
)
from socle.fhir._fhirpath_runtime import (
    FUNCTIONS,
    LOGIC,
    Fn,
    ResolvedReference,
    const,
    equal,
    identity,
    is_type,
    navigate,
    resolve_one,
    truth,
)
from socle.fhir.package import package_resources
from socle.fhir.structure import Model, compiled_schema

__all__ = [
    "Extractor",
    "FhirPathSyntaxError",
    "FhirPathUnsupported",
    "ResolvedReference",
    "compile_expression",
    "compile_native",
    "compile_with_roots",
]

Extractor = Callable[[Mapping[str, Any]], list[Any]]
# A static type: the FHIR type name and, for complex types and backbone elements, its element model.
_Type = tuple[str, Model | None]
_Types = tuple[_Type, ...] | None  # the possible types of a node's result; None when unknown


class FhirPathUnsupported(ValueError):
    """Valid FHIRPath that the native compiler does not handle."""


@dataclass(frozen=True)
class _Node:
    fn: Fn | None  # None: statically empty
    types: _Types
    # The top-level keys of the root resource without which this node yields nothing (None: not
    # known, e.g. `exists()` answers on nothing). Extraction skips a parameter whose keys are absent.
    roots: frozenset[str] | None = None
    at_root: bool = False  # the node is the root resource itself

    def then(self, fn: Fn, types: _Types) -> _Node:
        """A node that yields nothing when this one yields nothing: it keeps the root keys."""
        return _Node(fn, types, self.roots)


_EMPTY = _Node(None, None, frozenset())
_ABSTRACT = ("Resource", "DomainResource")
_BOOLEAN: _Types = (("boolean", None),)
_INTEGER: _Types = (("integer", None),)


def _same_type(a: str, b: str) -> bool:
    """FHIRPath type names compare loosely on the first letter: `as(DateTime)` means `dateTime`."""
    return a[:1].lower() == b[:1].lower() and a[1:] == b[1:]


def _is_resource_type(name: str) -> bool:
    schema = compiled_schema()
    return name in schema.resources or name in schema.abstract


@functools.cache
def _type_suffixes() -> tuple[str, ...]:
    """`Quantity`, `String`, ...: the suffixes a choice key may carry, for parents of unknown type."""
    names = {sd["type"] for sd in package_resources("StructureDefinition") if sd["kind"] != "logical"}
    return tuple(sorted(n[0].upper() + n[1:] for n in names if n[:1].isalpha()))


_VARIABLES = {
    "%ucum": "http://unitsofmeasure.org",
    "%sct": "http://snomed.info/sct",
    "%loinc": "http://loinc.org",
}


class _Compiler:
    def __init__(self, text: str, resource_type: str | None) -> None:
        self.text = text
        model = compiled_schema().resources.get(resource_type or "")
        self.root_types: _Types = ((resource_type, model),) if resource_type and model else None

    def compile(self, expr: Expr, focus: _Node) -> _Node:
        if isinstance(expr, Literal):
            return _Node(const(expr.value), None)
        if isinstance(expr, Ident):
            if expr.name[:1].isupper() and _is_resource_type(expr.name):
                return self.type_root(expr.name, focus)
            return self.member(focus, expr.name)
        if isinstance(expr, Var):
            return self.variable(expr.name, focus)
        if isinstance(expr, Member):
            return self.member(self.compile(expr.base, focus), expr.name)
        if isinstance(expr, Index):
            return self.index(expr, focus)
        if isinstance(expr, Call):
            return self.call(expr, focus)
        if isinstance(expr, TypeOp):
            if expr.op == "as":
                return self.cast(expr.operand, expr.type_name, focus)
            return self.type_test(self.compile(expr.operand, focus), expr.type_name)
        return self.binary(expr, focus)

    def unsupported(self, what: str) -> FhirPathUnsupported:
        return FhirPathUnsupported(f"{what} in {self.text!r}")

    def type_root(self, name: str, focus: _Node) -> _Node:
        """`Observation.code`: the leading type name filters the focus to resources of that type."""
        if focus.fn is None:
            return _EMPTY
        if focus.types is not None and all(_is_resource_type(t) for t, _ in focus.types):
            if name in _ABSTRACT:
                return focus
            return focus if any(t == name for t, _ in focus.types) else _EMPTY
        base = focus.fn
        if name in _ABSTRACT:
            return _Node(base, None)
        model = compiled_schema().resources.get(name)

        def fn(items: list[Any], root: Any) -> list[Any]:
            return [r for r in base(items, root) if type(r) is dict and r.get("resourceType") == name]

        return _Node(fn, ((name, model),) if model else None)

    def variable(self, name: str, focus: _Node) -> _Node:
        if name == "$this":
            return focus
        if name in ("%resource", "%rootResource", "%context"):
            return _Node(lambda items, root: [root], self.root_types)
        if name in _VARIABLES:
            return _Node(const(_VARIABLES[name]), (("uri", None),))
        raise self.unsupported(f"variable {name}")

    def children(self, base: _Node, name: str, only: str | None) -> tuple[list[tuple[str, _Type]], bool]:
        """The JSON keys `name` may use under `base` (with their types), and whether the model knew them.

        `only` keeps the keys of that type: `value` + `Quantity` gives `valueQuantity`.
        """
        found: dict[str, _Type] = {}
        known = base.types is not None
        for _, model in base.types or ():
            if model is None:
                known = False
                continue
            for element in model.elements.values():
                if element.name == name or element.choice == name:
                    if only is None or _same_type(element.type_name, only):
                        found[element.name] = (element.type_name, element.model)
        if not known:
            suffixes = _type_suffixes() if only is None else (only[0].upper() + only[1:],)
            for key in (name, *(name + suffix for suffix in suffixes)):
                found.setdefault(key, ("", None))
        return list(found.items()), known

    def member(self, base: _Node, name: str, only: str | None = None) -> _Node:
        if base.fn is None:
            return _EMPTY
        kids, known = self.children(base, name, only)
        if not kids:
            if only is None:  # a misspelt path in a custom SearchParameter: say so at registration
                parents = ", ".join(t for t, _ in base.types or ())
                raise FhirPathSyntaxError(f"{parents} has no element {name!r} in {self.text!r}")
            return _EMPTY
        types = tuple(dict.fromkeys(t for _, t in kids)) if known else None
        keys = tuple(key for key, _ in kids)
        return _Node(navigate(base.fn, keys), types, frozenset(keys) if base.at_root else base.roots)

    def cast(self, operand: Expr, type_name: str, focus: _Node) -> _Node:
        """`x as T` / `x.as(T)` / `x.ofType(T)`: on a choice element, read the `<name><T>` key."""
        if isinstance(operand, Member):
            return self.member(self.compile(operand.base, focus), operand.name, only=type_name)
        if isinstance(operand, Ident) and not operand.name[:1].isupper():
            return self.member(focus, operand.name, only=type_name)
        node = self.compile(operand, focus)
        if node.fn is None:
            return _EMPTY
        if node.types is not None and all(_same_type(t, type_name) for t, _ in node.types):
            return node
        if node.types is not None and not any(_same_type(t, type_name) for t, _ in node.types):
            return _EMPTY
        base = node.fn
        return node.then(lambda items, root: [v for v in base(items, root) if is_type(v, type_name)], None)

    def type_test(self, node: _Node, type_name: str) -> _Node:
        if node.fn is None:
            return _EMPTY
        base = node.fn

        def fn(items: list[Any], root: Any) -> list[Any]:
            values = base(items, root)
            return [is_type(values[0], type_name)] if len(values) == 1 else []

        return node.then(fn, _BOOLEAN)

    def index(self, expr: Index, focus: _Node) -> _Node:
        base = self.compile(expr.base, focus)
        if not isinstance(expr.index, Literal) or type(expr.index.value) is not int:
            raise self.unsupported("computed indexer")
        if base.fn is None:
            return _EMPTY
        i, fn = expr.index.value, base.fn
        return base.then(lambda items, root: fn(items, root)[i : i + 1], base.types)

    def call(self, expr: Call, focus: _Node) -> _Node:
        name, args = expr.name, expr.args
        if name in ("as", "ofType"):
            if len(args) != 1 or not isinstance(args[0], Ident):
                raise self.unsupported(f"{name}() without a type name")
            return self.cast(expr.base if expr.base is not None else Var("$this"), args[0].name, focus)
        base = self.compile(expr.base, focus) if expr.base is not None else focus
        if name == "is" and len(args) == 1 and isinstance(args[0], Ident):
            return self.type_test(base, args[0].name)
        if name == "where" and len(args) == 1:
            return self.where(base, args[0])
        if name == "exists" and len(args) == 1:
            return self.collection_fn(self.where(base, args[0]), "exists")
        if name == "extension" and len(args) == 1 and isinstance(args[0], Literal):
            return self.extension(base, str(args[0].value))
        if name == "hasExtension" and len(args) == 1 and isinstance(args[0], Literal):
            return self.collection_fn(self.extension(base, str(args[0].value)), "exists")
        if args:
            raise self.unsupported(f"function {name}() with arguments")
        return self.collection_fn(base, name)

    def collection_fn(self, base: _Node, name: str) -> _Node:
        """Functions without arguments (`_fhirpath_runtime.FUNCTIONS`)."""
        if name not in FUNCTIONS:
            raise self.unsupported(f"function {name}()")
        op, result = FUNCTIONS[name]
        types = {"boolean": _BOOLEAN, "integer": _INTEGER, "input": base.types}.get(result)
        source = base.fn
        if source is None:
            if result in ("boolean", "integer"):  # exists(), count() of nothing still answer
                return _Node(lambda items, root: op([], root), types)
            return _EMPTY
        roots = base.roots if result == "input" else None  # exists(), count(), not() answer on nothing
        return _Node(lambda items, root: op(source(items, root), root), types, roots)

    def extension(self, base: _Node, url: str) -> _Node:
        """FHIR's `extension(url)` (R4 §2.6.2.1 fhirpath.html#functions): extensions with that url."""
        if base.fn is None:
            return _EMPTY
        source = navigate(base.fn, ("extension",))

        def fn(items: list[Any], root: Any) -> list[Any]:
            return [e for e in source(items, root) if type(e) is dict and e.get("url") == url]

        roots = frozenset(("extension",)) if base.at_root else base.roots
        return _Node(fn, (("Extension", compiled_schema().types["Extension"]),), roots)

    def where(self, base: _Node, criteria: Expr) -> _Node:
        if base.fn is None:
            return _EMPTY
        source = base.fn
        # Fast paths for the two shapes the core parameters use; the generic form handles the rest.
        if (
            isinstance(criteria, TypeOp)
            and criteria.op == "is"
            and isinstance(criteria.operand, Call)
            and criteria.operand.base is None
            and criteria.operand.name == "resolve"
            and not criteria.operand.args
        ):
            target = criteria.type_name

            def by_target(items: list[Any], root: Any) -> list[Any]:
                out = []
                for v in source(items, root):
                    resolved = resolve_one(v, root)
                    if resolved is not None and resolved.type == target:
                        out.append(v)
                return out

            return base.then(by_target, base.types)
        if (
            isinstance(criteria, Binary)
            and criteria.op == "="
            and isinstance(criteria.left, Ident)
            and isinstance(criteria.right, Literal)
            and type(criteria.right.value) is str
            and not criteria.left.name[:1].isupper()
        ):
            key, value = criteria.left.name, criteria.right.value
            return base.then(
                lambda items, root: [
                    v for v in source(items, root) if type(v) is dict and v.get(key) == value
                ],
                base.types,
            )
        test = self.compile(criteria, _Node(identity, base.types)).fn
        if test is None:
            return _EMPTY
        check = test
        return base.then(
            lambda items, root: [v for v in source(items, root) if check([v], root) == [True]], base.types
        )

    def binary(self, expr: Binary, focus: _Node) -> _Node:
        left, right = self.compile(expr.left, focus), self.compile(expr.right, focus)
        lf, rf = left.fn, right.fn
        if expr.op == "|":
            if lf is None or rf is None:
                return right if lf is None else left
            types = None if left.types is None or right.types is None else left.types + right.types
            roots = None if left.roots is None or right.roots is None else left.roots | right.roots
            return _Node(lambda items, root: lf(items, root) + rf(items, root), types, roots)
        lfn, rfn = lf or (lambda i, r: []), rf or (lambda i, r: [])
        if expr.op in ("=", "!="):
            negate = expr.op == "!="

            def eq(items: list[Any], root: Any) -> list[Any]:
                a, b = lfn(items, root), rfn(items, root)
                return [equal(a, b) != negate] if a and b else []

            return _Node(eq, _BOOLEAN)
        if expr.op in ("and", "or", "xor", "implies"):
            logic = LOGIC[expr.op]
            return _Node(
                lambda items, root: logic(truth(lfn(items, root)), truth(rfn(items, root))), _BOOLEAN
            )
        raise self.unsupported(f"operator {expr.op!r}")


def compile_native(expression: str, resource_type: str | None = None) -> Extractor:
    """Compile with the native subset only (raises FhirPathUnsupported or FhirPathSyntaxError).

    With `resource_type`, the callable must only be given resources of that type: branches rooted
    at other types are pruned and the root type is not re-checked at run time.
    """
    return _compile_node(expression, resource_type)[0]


def _compile_node(expression: str, resource_type: str | None) -> tuple[Extractor, frozenset[str] | None]:
    compiler = _Compiler(expression, resource_type)
    node = compiler.compile(parse(expression), _Node(identity, compiler.root_types, at_root=True))
    fn = node.fn
    if fn is None:
        return (lambda resource: []), frozenset()
    compiled = fn
    return (lambda resource: compiled([resource], resource)), node.roots


def compile_with_roots(expression: str, resource_type: str) -> tuple[Extractor, frozenset[str] | None]:
    """`compile_expression`, plus the top-level keys of a `resource_type` resource without which the
    expression yields nothing (None when not known): the caller may skip resources lacking them all.
    """
    try:
        return _compile_node(expression, resource_type)
    except FhirPathUnsupported:
        return compile_expression(expression, resource_type), None


def compile_expression(expression: str, resource_type: str | None = None) -> Extractor:
    """Compile natively, or with fhirpathpy (when installed) for expressions outside the subset."""
    try:
        return compile_native(expression, resource_type)
    except FhirPathUnsupported:
        if importlib.util.find_spec("fhirpathpy") is None:
            raise
    engine: Any = importlib.import_module("fhirpathpy")
    models: Any = importlib.import_module("fhirpathpy.models")
    generic = engine.compile(expression, models.models["r4"])
    return lambda resource: list(generic(resource))
