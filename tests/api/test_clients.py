"""Off-the-shelf FHIR clients work against Socle unchanged, over real HTTP.

Conformance is judged by what clients send, not by what our own tests send: `fhirpy` (aiohttp,
`application/json` bodies) and the SMART `fhirclient` (requests, strict model classes that parse
every answer) each run create, read, update, search and delete as their users would write it.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import requests
from fhirclient import client as smart_client
from fhirclient.models.fhirdate import FHIRDate
from fhirclient.models.patient import Patient
from fhirpy import AsyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from tests.server import LiveServer

pytestmark = pytest.mark.slow

SYSTEM = "urn:socle-test:clients"


async def fhirpy_crud(base_url: str, token: str) -> None:
    client = AsyncFHIRClient(base_url, authorization=f"Bearer {token}")
    value = uuid.uuid4().hex
    identifier = f"{SYSTEM}|{value}"

    patient = client.resource(
        "Patient",
        identifier=[{"system": SYSTEM, "value": value}],
        name=[{"family": "Lovelace", "given": ["Ada"]}],
        gender="female",
    )
    await patient.save()  # POST Patient
    assert patient.id
    assert patient["meta"]["versionId"] == "1"

    fetched = await client.reference("Patient", patient.id).to_resource()  # GET Patient/id
    assert fetched["name"][0]["family"] == "Lovelace"

    fetched["birthDate"] = "1815-12-10"
    await fetched.save()  # PUT Patient/id
    assert fetched["meta"]["versionId"] == "2"
    again = await client.reference("Patient", patient.id).to_resource()
    assert again["birthDate"] == "1815-12-10"

    found = await client.resources("Patient").search(identifier=identifier).fetch()  # GET Patient?identifier=
    assert [p.id for p in found] == [patient.id]

    await fetched.delete()  # DELETE Patient/id
    with pytest.raises(ResourceNotFound):  # 410 Gone
        await client.reference("Patient", patient.id).to_resource()
    assert await client.resources("Patient").search(identifier=identifier).fetch() == []


def test_fhirpy_async_client_crud(server: LiveServer) -> None:
    asyncio.run(fhirpy_crud(server.url, server.token))


def smart(server: LiveServer) -> smart_client.FHIRClient:
    """The SMART client with the operator's token on its session (its OAuth flows: tests/e2e)."""
    client = smart_client.FHIRClient(settings={"app_id": "socle-test", "api_base": server.url})
    client.server.session.headers.update(server.headers)
    return client


def test_fhirclient_crud(server: LiveServer) -> None:
    fhir = smart(server)
    try:
        value = uuid.uuid4().hex
        patient = Patient(
            {
                "resourceType": "Patient",
                "identifier": [{"system": SYSTEM, "value": value}],
                "name": [{"family": "Hopper", "given": ["Grace"]}],
            }
        )
        created = patient.create(fhir.server)  # POST Patient
        assert created is not None
        id = created["id"]

        read = Patient.read(id, fhir.server)  # GET Patient/id, parsed by the strict model
        assert read.name[0].family == "Hopper"
        assert read.meta.versionId == "1"

        read.birthDate = FHIRDate("1906-12-09")
        updated = read.update()  # PUT Patient/id
        assert updated is not None and updated["meta"]["versionId"] == "2"
        assert Patient.read(id, fhir.server).birthDate.isostring == "1906-12-09"

        search = Patient.where(struct={"identifier": f"{SYSTEM}|{value}"})
        assert [p.id for p in search.perform_resources_iter(fhir.server)] == [id]

        read.delete()  # DELETE Patient/id
        with pytest.raises(requests.HTTPError) as gone:
            Patient.read(id, fhir.server)
        assert gone.value.response is not None and gone.value.response.status_code == 410
        assert list(search.perform_resources_iter(fhir.server)) == []
    finally:
        fhir.server.session.close()


def test_fhirclient_parses_the_capability_statement(server: LiveServer) -> None:
    """The SMART client reads /metadata into its strict CapabilityStatement model before anything else."""
    fhir = smart(server)
    try:
        fhir.prepare()
        capability = fhir.server.capabilityStatement
        assert capability.fhirVersion.startswith("4.0")
        types = {r.type for rest in capability.rest for r in rest.resource or []}
        assert {"Patient", "Observation"} <= types
    finally:
        fhir.server.session.close()
