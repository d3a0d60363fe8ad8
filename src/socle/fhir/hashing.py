"""The one 64-bit hash of search index rows. FROZEN: changing it invalidates every stored index row.

Index rows carry hashes of (resource type, parameter name[, system][, value]) so that a token,
reference or uri predicate is one equality on a bigint served by a covering index, as in HAPI FHIR
(`SearchParamHash`: Murmur3 x64 128-bit, seed 0, parts separated by `|`, first 64 bits as a signed
long). Socle's exact recipe, pinned by tests/fhir/test_hashing.py:

- each part is a str; `\\` and `|` inside a part are escaped as `\\\\` and `\\|`, so that
  (`a|b`, `c`) and (`a`, `b|c`) cannot collide; an absent value is passed as "";
- parts are joined with `|` and encoded as UTF-8;
- MurmurHash3_x64_128 with seed 0; the first 64-bit half, read as a signed integer (fits BIGINT).

A different recipe would need a `socle reindex` of every database (and a migration note).
"""

from __future__ import annotations

import functools

import mmh3

__all__ = ["hash64", "param_hash", "system_value_hash", "value_hash"]


def _escape(part: str) -> str:
    if "|" in part or "\\" in part:
        return part.replace("\\", "\\\\").replace("|", "\\|")
    return part


def hash64(*parts: str) -> int:
    """The frozen hash of `parts` (see the module docstring for the exact recipe)."""
    key = "|".join([_escape(p) for p in parts]).encode("utf-8")
    return int(mmh3.hash64(key, 0, True, True)[0])


@functools.lru_cache(maxsize=8192)
def param_hash(resource_type: str, param: str) -> int:
    """Identity of a search parameter on a type: every index row carries it."""
    return hash64(resource_type, param)


# Codes, systems and units repeat across resources (status `final`, LOINC): a bounded cache makes
# the common hashes a dict lookup during bulk loads. The functions are pure, so caching is safe.
@functools.lru_cache(maxsize=65536)
def value_hash(resource_type: str, param: str, value: str) -> int:
    """A parameter and one value (a code, a uri, a URL, a unit), whatever its system."""
    return hash64(resource_type, param, value)


@functools.lru_cache(maxsize=65536)
def system_value_hash(resource_type: str, param: str, system: str, value: str) -> int:
    """A parameter and a (system, value) pair: `system|code`, `|code` (system ""), `Type/id`."""
    return hash64(resource_type, param, system, value)
