"""The Python SMART client `fhirclient` against a live, protected Socle.

- Standalone launch with `launch/patient`: fhirclient reads the OAuth endpoints from the
  CapabilityStatement, sends the person to `/auth/authorize` (PKCE S256), exchanges the code, gets the
  patient in context, reads that Patient with its token, and refreshes the token (`reauthorize`).
- SMART Backend Services: fhirclient with a `client_assertion` (private_key_jwt) gets a system token
  by `client_credentials` and searches.
"""

from __future__ import annotations

import time
import uuid

import pytest
from fhirclient import client as smart_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRPermissionDeniedException, FHIRUnauthorizedException
from joserfc import jwt
from joserfc.jwk import ECKey

from socle.config import Settings
from socle.trust.auth.clients import add_client
from tests.e2e.conftest import CLIENT_ID, REDIRECT, Stack, login_over_http

pytestmark = pytest.mark.slow

SCOPE = "openid fhirUser patient/*.rs offline_access"


def test_fhirclient_standalone_launch_reads_the_patient(stack: Stack) -> None:
    settings = {"app_id": CLIENT_ID, "api_base": stack.server.url, "redirect_uri": REDIRECT, "scope": SCOPE}
    smart = smart_client.FHIRClient(settings=settings)
    assert not smart.ready
    # Anonymous reads are refused by the protected API (fhirclient has no token yet).
    with pytest.raises(FHIRUnauthorizedException):
        Patient.read(stack.patient_id, smart.server)

    url = smart.authorize_url  # fetches /metadata and its SMART oauth-uris
    security = smart.server.capabilityStatement.rest[0].security
    assert security.service[0].coding[0].code == "SMART-on-FHIR"
    assert url.startswith(f"{stack.origin}/auth/authorize?")
    assert "launch%2Fpatient" in url and "code_challenge_method=S256" in url

    smart.handle_callback(login_over_http(stack, url, "citizen"))
    assert smart.ready
    assert smart.patient_id == stack.patient_id  # launch context from the token response
    patient = smart.patient  # GET Patient/{id} with the bearer token
    assert patient is not None and patient.name[0].family == "Dupont"
    assert str(patient.birthDate.date) == "1984-03-02"

    found = Patient.where(struct={"_id": stack.patient_id}).perform_resources_iter(smart.server)
    assert [p.id for p in found] == [stack.patient_id]
    # patient/*.rs: reading yes, writing no (403 OperationOutcome).
    observation = Observation(
        {
            "status": "final",
            "code": {"text": "poids"},
            "subject": {"reference": f"Patient/{stack.patient_id}"},
        }
    )
    with pytest.raises(FHIRPermissionDeniedException) as denied:
        observation.create(smart.server)
    assert denied.value.response.json()["resourceType"] == "OperationOutcome"

    # The refresh token (offline_access) gives a new access token that works.
    first = smart.server.auth.access_token
    assert smart.reauthorize()
    assert smart.server.auth.access_token != first
    assert Patient.read(stack.patient_id, smart.server).id == stack.patient_id


def test_fhirclient_backend_services_token(stack: Stack) -> None:
    key = ECKey.generate_key("P-384", private=True, parameters={"kid": "lab-e2e"})
    jwks = {"keys": [{**key.as_dict(private=False), "kid": "lab-e2e", "alg": "ES384"}]}
    with stack.engine.begin() as conn:
        add_client(conn, Settings(), "lab-e2e", kind="backend", jwks=jwks, scope="system/Patient.rs")
    token_url = f"{stack.origin}/auth/token"
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES384", "kid": "lab-e2e", "typ": "JWT"},
        {"iss": "lab-e2e", "sub": "lab-e2e", "aud": token_url, "exp": now + 240, "jti": uuid.uuid4().hex},
        key,
        algorithms=["ES384"],
    )
    settings = {
        "app_id": "lab-e2e",
        "api_base": stack.server.url,
        "jwt_token": assertion,
        "scope": "system/Patient.rs",
    }
    smart = smart_client.FHIRClient(settings=settings)
    smart.wants_patient = False  # a system, no person: no launch/patient
    smart.prepare()  # reads the token endpoint from /metadata
    smart.authorize()  # client_credentials with the private_key_jwt assertion
    assert smart.ready
    assert smart.launch_context["scope"] == "system/Patient.rs"
    found = Patient.where(struct={"family": "Dupont"}).perform_resources_iter(smart.server)
    assert [p.id for p in found] == [stack.patient_id]
    search = Observation.where(struct={"subject": f"Patient/{stack.patient_id}"})
    with pytest.raises(FHIRPermissionDeniedException):  # system/Patient.rs: no Observation
        list(search.perform_resources_iter(smart.server))
