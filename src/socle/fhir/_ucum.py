"""A small, table-driven UCUM reader: a unit code to its canonical form (base units and a factor).

Quantity search compares values "in canonical units" when the system is UCUM (R4
search.html#quantity): `5.4 g/L` must match `540 mg/dL`. This module reads the UCUM grammar
(https://ucum.org/ucum, §2-§7: prefixes, `.` and `/`, integer exponents, `10*n`, `{annotations}`,
parentheses) over a table of the atoms clinical data uses, taken from ucum-essence.xml. A code is
reduced to a factor and a product of base units (m, s, g, rad, K, C, cd, and arbitrary units kept as
their own dimension), written canonically as e.g. `g.m-3`.

What converts: metric prefixes on metric atoms (`mg`, `dL`, `kPa`, `uL`, `mm[Hg]`), volumes (`L`),
time (`s min h d wk mo a`), mass (`g t [lb_av] [oz_av] [gr]`), length (`m [in_i] [ft_i] [yd_i]`),
pressure (`Pa bar m[Hg] m[H2O] [in_i'Hg] atm`), energy (`J cal [Cal]`), `N W Hz`, amounts (`mol
eq osm kat U`: UCUM makes the mole a pure number), `%` `[ppm]` `[ppb]` `[ppth]` `10*n`, arbitrary
units (`[IU]`, `[iU]`, `[arb'U]`: only to themselves, with prefixes), and the affine temperatures
`Cel` and `[degF]` (to K, only as a whole unit: `Cel/min` is refused). Not converted (no canonical
form: searched by their code only): anything outside the table, logarithmic units (`[pH]`, `dB`),
and mass ↔ amount (`mg/dL` ↔ `mmol/L` needs a molar mass, which UCUM does not provide).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["UCUM", "Canonical", "canonical_unit", "to_canonical"]

UCUM = "http://unitsofmeasure.org"

# Base dimensions as sorted ((base, exponent), ...) tuples; () is a pure number.
_Dims = tuple[tuple[str, int], ...]

_PREFIXES: dict[str, float] = {
    "Y": 1e24, "Z": 1e21, "E": 1e18, "P": 1e15, "T": 1e12, "G": 1e9, "M": 1e6, "k": 1e3, "h": 1e2,
    "da": 1e1, "d": 1e-1, "c": 1e-2, "m": 1e-3, "u": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15,
    "a": 1e-18, "z": 1e-21, "y": 1e-24,
}  # fmt: skip

_AVOGADRO = 6.0221367e23  # UCUM's value for `mol`


@dataclass(frozen=True)
class _Atom:
    factor: float
    dims: _Dims
    metric: bool
    offset: float = 0.0  # affine units (Cel, [degF]): canonical = (value + offset) * factor


def _d(*pairs: tuple[str, int]) -> _Dims:
    return tuple(sorted(pairs))


_M, _S, _G, _K = ("m", 1), ("s", 1), ("g", 1), ("K", 1)
_PA = _d(("g", 1), ("m", -1), ("s", -2))
_JOULE = _d(("g", 1), ("m", 2), ("s", -2))
_ATOMS: dict[str, _Atom] = {
    "m": _Atom(1, _d(_M), True),
    "s": _Atom(1, _d(_S), True),
    "g": _Atom(1, _d(_G), True),
    "rad": _Atom(1, _d(("rad", 1)), True),
    "K": _Atom(1, _d(_K), True),
    "C": _Atom(1, _d(("C", 1)), True),
    "cd": _Atom(1, _d(("cd", 1)), True),
    "10*": _Atom(10, (), False),
    "10^": _Atom(10, (), False),
    "%": _Atom(1e-2, (), False),
    "[ppth]": _Atom(1e-3, (), False),
    "[ppm]": _Atom(1e-6, (), False),
    "[ppb]": _Atom(1e-9, (), False),
    "[pi]": _Atom(3.141592653589793, (), False),
    "mol": _Atom(_AVOGADRO, (), True),
    "eq": _Atom(_AVOGADRO, (), True),
    "osm": _Atom(_AVOGADRO, (), True),
    "kat": _Atom(_AVOGADRO, _d(("s", -1)), True),
    "U": _Atom(_AVOGADRO * 1e-6 / 60, _d(("s", -1)), True),
    "sr": _Atom(1, _d(("rad", 2)), True),
    "deg": _Atom(3.141592653589793 / 180, _d(("rad", 1)), False),
    "Hz": _Atom(1, _d(("s", -1)), True),
    "N": _Atom(1e3, _d(("g", 1), ("m", 1), ("s", -2)), True),
    "Pa": _Atom(1e3, _PA, True),
    "bar": _Atom(1e8, _PA, True),
    "atm": _Atom(101325e3, _PA, False),
    "m[Hg]": _Atom(133.322e6, _PA, True),
    "m[H2O]": _Atom(9.80665e6, _PA, True),
    "[in_i'Hg]": _Atom(133.322e6 * 0.0254, _PA, False),
    "J": _Atom(1e3, _JOULE, True),
    "W": _Atom(1e3, _d(("g", 1), ("m", 2), ("s", -3)), True),
    "cal": _Atom(4.184e3, _JOULE, True),
    "[Cal]": _Atom(4.184e6, _JOULE, False),
    "A": _Atom(1, _d(("C", 1), ("s", -1)), True),
    "V": _Atom(1e3, _d(("C", -1), ("g", 1), ("m", 2), ("s", -2)), True),
    "L": _Atom(1e-3, _d(("m", 3)), True),
    "l": _Atom(1e-3, _d(("m", 3)), True),
    "t": _Atom(1e6, _d(_G), True),
    "min": _Atom(60, _d(_S), False),
    "h": _Atom(3600, _d(_S), False),
    "d": _Atom(86400, _d(_S), False),
    "wk": _Atom(604800, _d(_S), False),
    "mo": _Atom(2629800, _d(_S), False),  # mean Julian month, 30.4375 d
    "a": _Atom(31557600, _d(_S), False),  # mean Julian year, 365.25 d
    "[in_i]": _Atom(0.0254, _d(_M), False),
    "[ft_i]": _Atom(0.3048, _d(_M), False),
    "[yd_i]": _Atom(0.9144, _d(_M), False),
    "[mi_i]": _Atom(1609.344, _d(_M), False),
    "[lb_av]": _Atom(453.59237, _d(_G), False),
    "[oz_av]": _Atom(28.349523125, _d(_G), False),
    "[gr]": _Atom(0.06479891, _d(_G), False),
    "[stone_av]": _Atom(6350.29318, _d(_G), False),
    "[IU]": _Atom(1, _d(("[iU]", 1)), True),
    "[iU]": _Atom(1, _d(("[iU]", 1)), True),
    "[arb'U]": _Atom(1, _d(("[arb'U]", 1)), False),
    "Cel": _Atom(1, _d(_K), True, offset=273.15),
    "[degF]": _Atom(5 / 9, _d(_K), False, offset=459.67),
}
# A component: an annotation alone, or an atom (possibly prefixed) with an optional exponent and
# annotation, or a bare integer factor. Parentheses are handled by the recursive reader.
_COMPONENT = re.compile(r"(?P<atom>.*?)(?P<exp>[+-]?\d+)?(?P<note>\{[^{}]*\})?", re.DOTALL)


class _Unknown(ValueError):
    """The code is not valid UCUM, or uses atoms outside the table."""


@dataclass(frozen=True)
class Canonical:
    """`value_in_code * factor (+ offset first) = value_in_canonical`, in the units `code`."""

    factor: float
    offset: float
    code: str


def _format(dims: _Dims) -> str:
    if not dims:
        return "1"
    return ".".join(base if exp == 1 else f"{base}{exp}" for base, exp in dims)


def _combine(a: dict[str, int], dims: _Dims, power: int) -> None:
    for base, exp in dims:
        total = a.get(base, 0) + exp * power
        if total:
            a[base] = total
        else:
            a.pop(base, None)


def _atom(text: str) -> _Atom:
    atom = _ATOMS.get(text)
    if atom is not None:
        return atom
    for size in (2, 1):
        prefix = _PREFIXES.get(text[:size])
        atom = _ATOMS.get(text[size:])
        if prefix is not None and atom is not None and atom.metric:
            return _Atom(prefix * atom.factor, atom.dims, False, atom.offset)
    raise _Unknown(text)


class _Reader:
    """Recursive reader of UCUM terms: `term := component (("." | "/") component)*`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.affine: _Atom | None = None  # an affine atom, allowed only as the whole unit

    def term(self) -> tuple[float, dict[str, int]]:
        factor, dims = 1.0, dict[str, int]()
        sign = 1
        if self.text.startswith("/", self.pos):
            sign, self.pos = -1, self.pos + 1
        while True:
            f, d = self.component()
            factor = factor * f if sign > 0 else factor / f
            _combine(dims, tuple(d.items()), sign)
            if self.pos >= len(self.text) or self.text[self.pos] == ")":
                return factor, dims
            sign = 1 if self.text[self.pos] == "." else -1
            if self.text[self.pos] not in "./":
                raise _Unknown(self.text)
            self.pos += 1

    def component(self) -> tuple[float, dict[str, int]]:
        if self.text.startswith("(", self.pos):
            self.pos += 1
            result = self.term()
            if not self.text.startswith(")", self.pos):
                raise _Unknown(self.text)
            self.pos += 1
            return result
        end = self.pos
        while end < len(self.text) and self.text[end] not in "./()":
            if self.text[end] in "[{":  # brackets and annotations may hold `.` and `/`
                close = self.text.find("]" if self.text[end] == "[" else "}", end)
                if close < 0:
                    raise _Unknown(self.text)
                end = close
            end += 1
        match = _COMPONENT.fullmatch(self.text, self.pos, end)
        if match is None or end == self.pos:
            raise _Unknown(self.text)
        self.pos = end
        atom_text, exp_text = match.group("atom"), match.group("exp")
        if not atom_text:
            if exp_text is None:  # an annotation alone stands for 1
                return 1.0, {}
            if exp_text.startswith(("+", "-")):
                raise _Unknown(self.text)
            return float(exp_text), {}
        if atom_text.isdigit():  # a bare integer factor whose digits the exponent group took
            return float(atom_text + (exp_text or "")), {}
        atom = _atom(atom_text)
        power = int(exp_text) if exp_text else 1
        if atom.offset:
            if power != 1 or self.affine is not None:
                raise _Unknown(self.text)
            self.affine = atom
        dims: dict[str, int] = {}
        _combine(dims, atom.dims, power)
        return atom.factor**power, dims


@functools.lru_cache(maxsize=4096)
def canonical_unit(code: str) -> Canonical | None:
    """How to bring a value in UCUM `code` to canonical units, or None if the code is not convertible."""
    if not code or code.isspace():
        return None
    reader = _Reader(code)
    try:
        factor, dims = reader.term()
    except (_Unknown, OverflowError, ZeroDivisionError):
        return None
    if reader.pos != len(code):
        return None
    if reader.affine is not None:
        if dims != {"K": 1}:  # `Cel/min`, `[degF].m`: not an absolute temperature
            return None
        return Canonical(reader.affine.factor, reader.affine.offset, "K")
    return Canonical(factor, 0.0, _format(tuple(sorted(dims.items()))))


def _round(value: float) -> float:
    """12 significant digits: `540 mg/dL` and `5.4 g/L` must give the same float, not 5400.000000000001."""
    return float(f"{value:.12g}")


def to_canonical(value: float, code: str) -> tuple[float, str] | None:
    """`value` in UCUM `code` as (value, canonical code), or None if the code is not convertible."""
    unit = canonical_unit(code)
    if unit is None:
        return None
    return _round((value + unit.offset) * unit.factor), unit.code
