"""The profession × document-kind access matrix, shipped as data (data/trust/access-matrix.json).

A profession (TRE_G15 code from Pro Santé Connect, `Practice.profession`) sees the structured
resource types and the DocumentReference kinds (LOINC `type` codes) its row lists; "*" means all.
Unknown professions get the `default` row (nothing clinical). See data/trust/README.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import orjson

from socle.fhir.package import data_dir


@dataclass(frozen=True)
class ProfessionRights:
    label: str
    resources: frozenset[str] | None  # None: every type
    documents: frozenset[str] | None  # LOINC typeCodes of DocumentReference; None: every kind


@functools.cache
def _matrix() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads((data_dir() / "trust" / "access-matrix.json").read_bytes())
    return data


def _set(value: Any) -> frozenset[str] | None:
    return None if value == "*" else frozenset(value or ())


def rights_of(profession: str | None) -> ProfessionRights:
    matrix = _matrix()
    row = matrix["professions"].get(profession or "", matrix["default"])
    resources = _set(row.get("resources"))
    if resources is not None:
        resources = resources | frozenset(matrix.get("always", ()))
    return ProfessionRights(str(row.get("label", "")), resources, _set(row.get("documents")))
