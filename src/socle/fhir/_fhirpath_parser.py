"""Tokenizer and parser for the FHIRPath subset found in search-parameter expressions.

The grammar follows FHIRPath N1 (http://hl7.org/fhirpath/N1/#grammar) for the constructs the R4
SearchParameter expressions use: paths, function calls, indexers, literals, `%variables`, `$this`,
and the binary operators with their spec precedence. Arithmetic, `in`/`contains` and date/quantity
literals are parsed but left to the fallback engine by the compiler, which raises on them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Binary",
    "Call",
    "Expr",
    "FhirPathSyntaxError",
    "Ident",
    "Index",
    "Literal",
    "Member",
    "TypeOp",
    "Var",
    "parse",
]


class FhirPathSyntaxError(ValueError):
    """The expression is not well-formed FHIRPath."""


@dataclass(frozen=True)
class Literal:
    value: str | int | float | bool


@dataclass(frozen=True)
class Ident:
    """A bare identifier: a member of the focus, or a type name at the root of a path."""

    name: str


@dataclass(frozen=True)
class Var:
    """`%resource`, `%context`, `$this` and friends."""

    name: str


@dataclass(frozen=True)
class Member:
    base: Expr
    name: str


@dataclass(frozen=True)
class Call:
    """A function call; `base` is None when it applies to the focus (`where(...)` inside a where)."""

    base: Expr | None
    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Index:
    base: Expr
    index: Expr


@dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class TypeOp:
    """`x is T` / `x as T`: the right side is a type specifier, not an expression."""

    op: str
    operand: Expr
    type_name: str


Expr = Literal | Ident | Var | Member | Call | Index | Binary | TypeOp

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:[^'\\]|\\.)*')
    | (?P<num>\d+(?:\.\d+)?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|`[^`]+`)
    | (?P<var>[%$][A-Za-z_][A-Za-z0-9_\-]*|%'[^']*'|%`[^`]+`)
    | (?P<op><=|>=|!=|!~|[.()\[\],|=<>~+\-*/&])
    )""",
    re.VERBOSE,
)

_ESCAPES = {"'": "'", '"': '"', "`": "`", "\\": "\\", "/": "/", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

# Binary operators by precedence, loosest first (FHIRPath N1 §"Operator precedence").
_LEVELS: tuple[frozenset[str], ...] = (
    frozenset({"implies"}),
    frozenset({"or", "xor"}),
    frozenset({"and"}),
    frozenset({"in", "contains"}),
    frozenset({"=", "~", "!=", "!~"}),
    frozenset({"<=", "<", ">", ">="}),
    frozenset({"|"}),
    frozenset({"is", "as"}),
    frozenset({"+", "-", "&"}),
    frozenset({"*", "/", "div", "mod"}),
)
_WORD_OPS = frozenset({"implies", "or", "xor", "and", "in", "contains", "is", "as", "div", "mod"})


def _unescape(body: str) -> str:
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", _unescape_one, body)


def _unescape_one(match: re.Match[str]) -> str:
    seq = match.group(1)
    if seq.startswith("u") and len(seq) == 5:
        return chr(int(seq[1:], 16))
    return _ESCAPES.get(seq, seq)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FhirPathSyntaxError(f"unexpected character at {pos} in {text!r}")
        pos = match.end()
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise FhirPathSyntaxError(f"unexpected end of {self.text!r}")
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        kind, got = self.take()
        if got != value:
            raise FhirPathSyntaxError(f"expected {value!r}, got {got!r} in {self.text!r}")

    def at_op(self, ops: frozenset[str]) -> str | None:
        token = self.peek()
        if token is None:
            return None
        kind, value = token
        if (kind == "op" or (kind == "ident" and value in _WORD_OPS)) and value in ops:
            return value
        return None

    def parse_all(self) -> Expr:
        expr = self.parse_level(0)
        if self.peek() is not None:
            raise FhirPathSyntaxError(f"unexpected {self.peek()!r} in {self.text!r}")
        return expr

    def parse_level(self, level: int) -> Expr:
        if level == len(_LEVELS):
            return self.parse_unary()
        left = self.parse_level(level + 1)
        while (op := self.at_op(_LEVELS[level])) is not None:
            self.take()
            if op in ("is", "as"):
                left = TypeOp(op, left, self.parse_type_specifier())
            else:
                left = Binary(op, left, self.parse_level(level + 1))
        return left

    def parse_type_specifier(self) -> str:
        kind, name = self.take()
        if kind != "ident":
            raise FhirPathSyntaxError(f"expected a type name, got {name!r} in {self.text!r}")
        while self.peek() == ("op", ".") and self.pos + 1 < len(self.tokens):
            self.take()
            name = self.take()[1]  # `FHIR.Patient` / `System.String`: keep the last part
        return name.strip("`")

    def parse_unary(self) -> Expr:
        if self.peek() in (("op", "-"), ("op", "+")):
            sign = self.take()[1]
            operand = self.parse_unary()
            if sign == "-" and isinstance(operand, Literal) and isinstance(operand.value, int | float):
                return Literal(-operand.value)
            return operand if sign == "+" else Binary("-", Literal(0), operand)
        return self.parse_postfix(self.parse_term())

    def parse_term(self) -> Expr:
        kind, value = self.take()
        if kind == "str":
            return Literal(_unescape(value[1:-1]))
        if kind == "num":
            return Literal(float(value) if "." in value else int(value))
        if kind == "var":
            return Var(value.replace("'", "").replace("`", ""))
        if kind == "op" and value == "(":
            inner = self.parse_level(0)
            self.expect(")")
            return inner
        if kind == "ident":
            if value in ("true", "false"):
                return Literal(value == "true")
            name = value.strip("`")
            if self.peek() == ("op", "("):
                return Call(None, name, self.parse_args())
            return Ident(name)
        raise FhirPathSyntaxError(f"unexpected {value!r} in {self.text!r}")

    def parse_args(self) -> tuple[Expr, ...]:
        self.expect("(")
        args: list[Expr] = []
        if self.peek() == ("op", ")"):
            self.take()
            return ()
        while True:
            args.append(self.parse_level(0))
            separator = self.take()[1]
            if separator == ")":
                return tuple(args)
            if separator != ",":
                raise FhirPathSyntaxError(f"expected ',' or ')', got {separator!r} in {self.text!r}")

    def parse_postfix(self, expr: Expr) -> Expr:
        while True:
            token = self.peek()
            if token == ("op", "."):
                self.take()
                kind, value = self.take()
                if kind != "ident":
                    raise FhirPathSyntaxError(f"expected a name after '.', got {value!r} in {self.text!r}")
                name = value.strip("`")
                expr = (
                    Call(expr, name, self.parse_args()) if self.peek() == ("op", "(") else Member(expr, name)
                )
            elif token == ("op", "["):
                self.take()
                index = self.parse_level(0)
                self.expect("]")
                expr = Index(expr, index)
            else:
                return expr


def parse(text: str) -> Expr:
    """Parse one FHIRPath expression into its syntax tree (raises FhirPathSyntaxError)."""
    return _Parser(text).parse_all()
