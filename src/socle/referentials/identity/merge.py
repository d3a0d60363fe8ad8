"""Merging two Patient records of one person, and undoing it.

Semantics of the standard `Patient/$merge` (FHIR R5 patient-operation-merge, OperationDefinition
`Patient-merge`; Socle serves it on R4 resources):
- the *source* Patient is kept but deactivated: `active: false` and `link` {type replaced-by, other:
  the target};
- the *target* survives with `link` {type replaces, other: the source}, the source's identifiers
  copied over (an INS of the source becomes `use: old`, as FR Core asks for a deactivated INS after an
  identity merge), or is replaced by the `result-patient` the client sends;
- every resource that referenced the source now references the target (so the target's patient
  compartment holds the whole record);
- `preview` computes all of this without writing.
Each merge is recorded in `mpi_merge` with both Patients as they were and the exact JSON paths
re-pointed, so `unmerge` restores both records and points those references back. Resources written
after the merge that reference the target are left with the target.

Finding the referencing resources: the source's compartment (indexed column) plus the reference index
rows whose target hash is (type, parameter, Patient, source id) for every reference search parameter
that may point at a Patient, so no resource row is scanned.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, insert, or_, select, update

from socle.fhir.errors import Gone, Invalid, NotFound, Unprocessable
from socle.fhir.hashing import system_value_hash
from socle.fhir.references import parse_reference
from socle.fhir.resource_types import resource_types
from socle.fhir.search_params import registry
from socle.referentials.identity import index  # noqa: F401  (registers the MPI index hook)
from socle.referentials.identity.profile import INS_SYSTEMS
from socle.referentials.identity.registry_schema import mpi_merge
from socle.store.access import AccessFilter
from socle.store.clock import now_us
from socle.store.indexes import idx_reference
from socle.store.repository import Store
from socle.store.schema import resource

__all__ = ["MergeResult", "merge", "unmerge"]

JsonPath = list[str | int]


@dataclass
class MergeResult:
    source: dict[str, Any]
    target: dict[str, Any]
    repointed: list[tuple[str, str, list[JsonPath]]] = field(default_factory=list)
    merge_id: int | None = None


@functools.cache
def _patient_reference_params() -> tuple[tuple[str, str], ...]:
    """(resource type, parameter) of every indexed reference parameter that may target a Patient."""
    found = []
    for rt in sorted(resource_types()):
        for name, param in registry().params(rt).items():
            if (
                param.type == "reference"
                and param.indexed
                and (not param.targets or "Patient" in param.targets)
            ):
                found.append((rt, name))
    return tuple(found)


def _points_at(reference: str, patient_id: str) -> bool:
    parsed = parse_reference(reference)
    return (
        parsed.kind in ("relative", "absolute")
        and parsed.resource_type == "Patient"
        and parsed.id == patient_id
    )


def _reference_paths(node: Any, patient_id: str, path: JsonPath) -> Iterator[JsonPath]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str) and _points_at(node["reference"], patient_id):
            yield [*path, "reference"]
        for key, value in node.items():
            if isinstance(value, dict | list):
                yield from _reference_paths(value, patient_id, [*path, key])
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if isinstance(item, dict | list):
                yield from _reference_paths(item, patient_id, [*path, index])


def _set(body: dict[str, Any], path: JsonPath, value: str) -> None:
    node: Any = body
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def _get(body: dict[str, Any], path: JsonPath) -> Any:
    node: Any = body
    for step in path:
        node = node[step]
    return node


def _referencing(
    conn: Connection, patient_id: str, access: AccessFilter
) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, id, body) of the live resources referencing Patient/patient_id, the policy applied."""
    hashes = [system_value_hash(rt, name, "Patient", patient_id) for rt, name in _patient_reference_params()]
    by_reference = select(idx_reference.c.resource_key).where(idx_reference.c.target_hash.in_(hashes))
    rows = conn.execute(
        select(resource.c.resource_type, resource.c.id, resource.c.content).where(
            or_(resource.c.compartment == patient_id, resource.c.resource_key.in_(by_reference)),
            resource.c.deleted.is_(False),
            resource.c.resource_type != "Patient",
            access.condition(resource),
        )
    ).all()
    found = []
    for rt, id, content in ((r[0], r[1], r[2]) for r in rows):
        body = content if isinstance(content, dict) else orjson.loads(bytes(content))
        found.append((str(rt), str(id), body))
    return found


def _links(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [link for link in body.get("link") or [] if isinstance(link, dict)]


def _merged_target(source: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    result = copy.deepcopy(target)
    identifiers = result.setdefault("identifier", [])
    present = {(i.get("system"), i.get("value")) for i in identifiers if isinstance(i, dict)}
    for ident in source.get("identifier") or []:
        if not isinstance(ident, dict) or (ident.get("system"), ident.get("value")) in present:
            continue
        copied = copy.deepcopy(ident)
        if copied.get("system") in INS_SYSTEMS:
            copied["use"] = "old"
        identifiers.append(copied)
    if not identifiers:
        del result["identifier"]
    return result


def merge(
    store: Store,
    conn: Connection,
    access: AccessFilter,
    source_id: str,
    target_id: str,
    *,
    result_patient: dict[str, Any] | None = None,
    preview: bool = False,
    principal: str = "system",
) -> MergeResult:
    if source_id == target_id:
        raise Invalid("The source and target Patients are the same resource", expression="source-patient")
    source_version = store.get(conn, "Patient", source_id, access)
    target_version = store.get(conn, "Patient", target_id, access)
    source, target = copy.deepcopy(source_version.resource), copy.deepcopy(target_version.resource)
    for name, body in (("source-patient", source), ("target-patient", target)):
        if any(link.get("type") == "replaced-by" for link in _links(body)):
            raise Unprocessable(
                f"Patient/{body['id']} was already merged into another Patient", expression=name
            )
    if result_patient is not None:
        if result_patient.get("resourceType") != "Patient" or result_patient.get("id") != target_id:
            raise Invalid("result-patient must be the target Patient (same id)", expression="result-patient")
        new_target = copy.deepcopy(result_patient)
    else:
        new_target = _merged_target(source, target)
    if not any(
        link.get("type") == "replaces"
        and _points_at(str((link.get("other") or {}).get("reference", "")), source_id)
        for link in _links(new_target)
    ):
        new_target.setdefault("link", []).append(
            {"other": {"reference": f"Patient/{source_id}"}, "type": "replaces"}
        )
    new_source = copy.deepcopy(source)
    new_source["active"] = False
    new_source["link"] = [link for link in _links(new_source) if link.get("type") != "replaced-by"] + [
        {"other": {"reference": f"Patient/{target_id}"}, "type": "replaced-by"}
    ]
    result = MergeResult(new_source, new_target)
    rewritten: list[dict[str, Any]] = []
    for rt, id, body in _referencing(conn, source_id, access):
        paths = list(_reference_paths(body, source_id, []))
        if not paths:
            continue
        for path in paths:
            _set(body, path, f"Patient/{target_id}")
        result.repointed.append((rt, id, paths))
        rewritten.append(body)
    if preview:
        return result
    # The target first: a resource re-pointed to it must find it live.
    written_target, _ = store.update(conn, new_target, if_match=target_version.version, method="PUT")
    written_source, _ = store.update(conn, new_source, if_match=source_version.version, method="PUT")
    for body in rewritten:
        store.update(conn, body, method="PUT")
    result.merge_id = int(
        conn.execute(
            insert(mpi_merge)
            .values(
                at=now_us(),
                principal=principal,
                compartment=target_id,
                source_id=source_id,
                target_id=target_id,
                source_version=written_source.version,
                target_version=written_target.version,
                source_before=source,
                target_before=target,
                repointed=[[rt, id, paths] for rt, id, paths in result.repointed],
            )
            .returning(mpi_merge.c.merge_id)
        ).scalar_one()
    )
    return result


def unmerge(
    store: Store,
    conn: Connection,
    access: AccessFilter,
    *,
    merge_id: int | None = None,
    source_id: str | None = None,
    principal: str = "system",
) -> MergeResult:
    """Undo the last merge of `source_id` (or merge `merge_id`): both Patients get back their content
    from before the merge (as new versions) and the re-pointed references point at the source again."""
    statement = select(mpi_merge).where(mpi_merge.c.undone_at.is_(None))
    if merge_id is not None:
        statement = statement.where(mpi_merge.c.merge_id == merge_id)
    elif source_id is not None:
        statement = statement.where(mpi_merge.c.source_id == source_id)
    else:
        raise Invalid("Name the merge to undo (merge id or source Patient)", expression="source-patient")
    row = conn.execute(statement.order_by(mpi_merge.c.merge_id.desc()).limit(1)).first()
    if row is None:
        raise NotFound("No merge to undo for this Patient", expression="source-patient")
    store.get(conn, "Patient", row.target_id, access)  # the policy must admit both records
    store.get(conn, "Patient", row.source_id, access)
    # The bodies as they were; the store stamps new versionId/lastUpdated on them.
    source_before = copy.deepcopy(dict(row.source_before))
    target_before = copy.deepcopy(dict(row.target_before))
    restored_source, _ = store.update(conn, source_before, method="PUT")
    restored_target, _ = store.update(conn, target_before, method="PUT")
    result = MergeResult(restored_source.resource, restored_target.resource)
    for rt, id, paths in row.repointed:
        try:
            current = copy.deepcopy(store.get(conn, rt, id, access).resource)
        except (NotFound, Gone):
            continue  # deleted (or hidden) since the merge: nothing to point back
        changed = []
        for path in paths:
            try:
                value = _get(current, path)
            except (KeyError, IndexError, TypeError):
                continue
            if isinstance(value, str) and _points_at(value, row.target_id):
                _set(current, path, f"Patient/{row.source_id}")
                changed.append(path)
        if changed:
            store.update(conn, current, method="PUT")
            result.repointed.append((rt, id, changed))
    conn.execute(update(mpi_merge).where(mpi_merge.c.merge_id == row.merge_id).values(undone_at=now_us()))
    result.merge_id = int(row.merge_id)
    return result
