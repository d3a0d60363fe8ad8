"""Imports point down only (ARCHITECTURE.md): api/portals → services → trust/referentials → store → fhir."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "socle"
# Each layer and the layers it may import from (itself included).
ALLOWED = {
    "fhir": {"fhir"},
    "store": {"store", "fhir"},
    "trust": {"trust", "store", "fhir"},
    "referentials": {"referentials", "trust", "store", "fhir"},
    "services": {"services", "referentials", "trust", "store", "fhir"},
    "api": {"api", "services", "referentials", "trust", "store", "fhir"},
    "portals": {"portals", "api", "services", "referentials", "trust", "store", "fhir"},
}
# Top-level modules shared by every layer.
COMMON = {"config", "__init__"}


def imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n.split(".")[1] for n in names if n.startswith("socle.") and n.count(".") >= 1}


def test_no_upward_imports() -> None:
    violations = []
    for layer, allowed in ALLOWED.items():
        for path in (SRC / layer).rglob("*.py"):
            for target in imported_layers(path) - allowed - COMMON:
                violations.append(f"{path.relative_to(SRC)} imports socle.{target}")
    assert violations == []


def test_fhir_layer_knows_no_sql_or_http() -> None:
    for path in (SRC / "fhir").rglob("*.py"):
        text = path.read_text()
        for forbidden in ("sqlalchemy", "starlette", "httpx"):
            assert f"import {forbidden}" not in text and f"from {forbidden}" not in text, (path, forbidden)
