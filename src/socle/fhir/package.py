"""Read the official FHIR R4 core package vendored under `data/fhir-r4/`.

The package is kept as HL7 ships it (one JSON file per conformance resource inside a tarball), so
updating it is a file copy. Everything compiled from it (validation model, search parameters,
compartments) goes through `package_resources`, which reads the tarball once per process.
"""

from __future__ import annotations

import functools
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

PACKAGE_FILE = "hl7.fhir.r4.core-4.0.1.tgz"


def data_dir() -> Path:
    """The `data/` folder: next to the source tree in a checkout, or given by SOCLE_DATA_DIR."""
    env = os.environ.get("SOCLE_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "data"


@functools.cache
def _package_index() -> dict[str, dict[str, Any]]:
    """All JSON files of the package, by file name (e.g. `StructureDefinition-Patient.json`)."""
    path = data_dir() / "fhir-r4" / PACKAGE_FILE
    files: dict[str, dict[str, Any]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for member in tar:
            name = member.name.rsplit("/", 1)[-1]
            if not member.isfile() or not name.endswith(".json") or member.name.count("/") != 1:
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                files[name] = orjson.loads(handle.read())
    return files


def package_resources(resource_type: str) -> Iterator[dict[str, Any]]:
    """Every conformance resource of one type in the package (e.g. all SearchParameter)."""
    prefix = resource_type + "-"
    for name, content in _package_index().items():
        if name.startswith(prefix) and content.get("resourceType") == resource_type:
            yield content


def package_file(name: str) -> dict[str, Any]:
    """One file of the package by name, e.g. `CompartmentDefinition-patient.json`."""
    return _package_index()[name]
