"""Every route of the application goes through the policy: none returns what the policy hides.

Three enumerations, so that a route added later fails here until it is covered:
- the Starlette routes: health data is served only by the FHIR endpoint (whose `_execute` builds
  every request's context from the policy); the others are the authorization server and the login
  pages, listed by prefix;
- the FHIR route table (`api.router.ROUTES`): each shape becomes a concrete request;
- the operation table (`api.operation_table.OPERATIONS`): each operation at each level and method.
Each request runs as a principal the policy denies (403 everywhere but `metadata`) and as carol, a
citizen with a record of her own, aiming at alice's and bob's data: no answer may contain any of it,
and no write may change it.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from socle.api.operation_table import OPERATIONS
from socle.api.router import ROUTES
from socle.app import create_app
from socle.config import Settings
from socle.store.schema import resource_history
from tests.trust.policy_world import DENIED, call, citizen, endpoint, load, observation, world

FHIR_ENDPOINT_PATHS = {"/fhir", "/fhir/{path:path}"}
# Authorization server, login/activation pages and their assets: no health data is served there.
NON_DATA_PREFIXES = ("/auth/", "/.well-known/", "/static", "/activation", "/fhir/.well-known/")
SECRETS = (
    "a-consult",
    "a-rx",
    "a-summary",
    "a-invisible",
    "a-masked",
    "a-weight",
    "a-secret",
    "b-consult",
    "b-teen",
    "b-weight",
    "ALICE",
    "BOB",
    "team-alice",
    "alice-grants-pharma",
)


def test_every_starlette_route_is_the_fhir_endpoint_or_not_health_data() -> None:
    app = create_app(Settings(database_url="sqlite://"))
    fhir = [r for r in app.routes if getattr(r, "path", "") in FHIR_ENDPOINT_PATHS]
    assert len(fhir) == 2
    others = [getattr(r, "path", "") for r in app.routes if getattr(r, "path", "") not in FHIR_ENDPOINT_PATHS]
    unclassified = [p for p in others if not p.startswith(NON_DATA_PREFIXES)]
    assert not unclassified, f"routes not covered by the policy test: {unclassified}"


def _params(**named: Any) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": k, **v} for k, v in named.items()]}


PATIENT_QUERY = _params(
    resource={
        "resource": {
            "resourceType": "Patient",
            "name": [{"family": "ALICE"}],
            "birthDate": "1990-01-01",
            "gender": "female",
        }
    }
)


def concrete_requests() -> list[tuple[str, str, Any]]:
    """(method, url, body) for every route shape and every operation, aimed at alice's data."""
    out: list[tuple[str, str, Any]] = []
    obs = observation("a-weight", "alice")
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": u}}
            for u in (
                "Observation/a-weight",
                "Observation?subject=Patient/alice",
                "Patient/alice/$everything",
                "Patient/alice/DocumentReference",
                "Observation/a-weight/_history",
            )
        ],
    }
    for route in ROUTES:
        shape = "/".join(route.shape)
        if route.level == "operation":
            continue  # below, from the operation table
        url = shape.replace("{type}", "Observation").replace("{id}", "a-weight").replace("{vid}", "1")
        if route.shape[:1] == ("Patient",) and len(route.shape) == 3:
            url = "Patient/alice/Observation"
        if route.needs_query or (route.method == "GET" and route.shape in (("{type}",), ())):
            url += "?subject=Patient/alice" if "{type}" in shape else "?_id=a-weight"
        body: Any = None
        if route.method in ("PUT", "POST") and "{type}" in shape and "_search" not in shape:
            body = obs if route.method == "PUT" else {k: v for k, v in obs.items() if k != "id"}
        if route.method == "PATCH":
            body = [{"op": "replace", "path": "/status", "value": "amended"}]
        if route.method == "POST" and not route.shape:
            body = batch if route.interaction == "batch" else batch | {"type": "transaction"}
        out.append((route.method, url, body))
    for op in OPERATIONS:
        for level in sorted(op.levels):
            types = sorted(op.resource_types or {"Patient"})
            for method in op.methods:
                for resource_type in types:
                    target = {
                        "system": "",
                        "type": f"{resource_type}/",
                        "instance": f"{resource_type}/alice/",
                    }
                    url = f"{target[level]}{op.name}"
                    body = None
                    if method == "POST":
                        body = (
                            PATIENT_QUERY
                            if op.name != "$break-glass"
                            else _params(reason={"valueString": "x"})
                        )
                    out.append((method, url, body))
    return out


@pytest.fixture
def loaded(engine: Engine) -> Any:
    ep = endpoint(engine)
    load(ep, world())
    return ep


def resources_in(body: Any) -> list[dict[str, Any]]:
    """The resources an answer carries (not the OperationOutcomes echoing what was asked)."""
    if isinstance(body, list):
        return [r for item in body for r in resources_in(item)]
    if not isinstance(body, dict):
        return []
    kind = body.get("resourceType")
    if kind == "OperationOutcome":
        return []
    found = [] if kind in ("Bundle", "Parameters", None) else [body]
    for key in ("entry", "parameter", "resource", "part"):
        if key in body:
            found += resources_in(body[key])
    return found


def _versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(resource_history)).scalar_one())


def test_every_route_applies_the_policy(loaded: Any, engine: Engine) -> None:
    requests = concrete_requests()
    assert len(requests) >= len(ROUTES) - 6 + len(OPERATIONS)
    before = _versions(engine)
    for method, url, body in requests:
        status, _ = call(loaded, DENIED, method, url, copy.deepcopy(body))
        assert status == (200 if url == "metadata" else 403), (method, url, status)
    carol = citizen("carol")
    for method, url, body in requests:
        status, out = call(loaded, carol, method, url, copy.deepcopy(body))
        text = orjson.dumps(resources_in(out)).decode()
        assert status < 500, (method, url, status, out)
        leaked = [s for s in SECRETS if s in text]
        assert not leaked, (method, url, leaked, text[:500])
    # carol's writes aimed at alice changed nothing of hers (audit rows live in their own table)
    for id in ("a-weight", "a-secret"):
        status, obs = call(loaded, citizen("alice"), "GET", f"Observation/{id}")
        assert status == 200 and obs["meta"]["versionId"] == "1", (id, obs)
    assert _versions(engine) - before <= 2  # at most carol's own creates (none reference alice)
