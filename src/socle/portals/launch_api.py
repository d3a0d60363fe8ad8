"""`POST /auth/launch`: the professional's side starts a SMART EHR launch (App Launch v2 §"EHR launch").

Called by the professionals' portal (or any EHR front end running in the professional's browser
session): JSON `{"client_id": …, "patient": …, "encounter": …}` (encounter optional) with the
session cookie. The body must be `application/json`, which a cross-site form cannot send, so the
SameSite session cookie plus the content type stand in for a CSRF token. The answer gives the
opaque `launch` value (single use, `LAUNCH_TTL` seconds) and the `iss` (FHIR base) to put on the
app's launch URL: `<launch_url>?iss=…&launch=…`. Operators use `socle launch create` instead.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from socle.api.auth._common import issuer_of, json_response
from socle.config import Settings
from socle.portals._web import current_session
from socle.store.access import SYSTEM
from socle.store.repository import Store
from socle.trust.auth import accounts
from socle.trust.auth.clients import get_client
from socle.trust.auth.launch import LAUNCH_TTL, create_launch
from socle.trust.auth.tokens import fhir_audience


class LaunchEndpoint:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def create(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return json_response({"error": "invalid_request", "error_description": "Send JSON"}, 415)
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return json_response({"error": "invalid_request", "error_description": "Malformed JSON"}, 400)
        if not isinstance(body, dict):
            return json_response({"error": "invalid_request", "error_description": "Expected an object"}, 400)
        return await run_in_threadpool(self._create, request, body)

    def _create(self, request: Request, body: dict[str, Any]) -> Response:
        with self.store.write() as conn:
            session = current_session(conn, request)
            account = accounts.get_account(conn, session.account_id) if session is not None else None
            if account is None or account.kind != "professional" or not account.active:
                return json_response(
                    {"error": "login_required", "error_description": "A professional session is needed"}, 401
                )
            client_id, patient, encounter = body.get("client_id"), body.get("patient"), body.get("encounter")
            if not isinstance(client_id, str) or get_client(conn, client_id) is None:
                return json_response(
                    {"error": "invalid_request", "error_description": "Unknown client_id"}, 400
                )
            if not isinstance(patient, str) or not self.store.find(conn, "Patient", f"_id={patient}", SYSTEM):
                return json_response(
                    {"error": "invalid_request", "error_description": "Unknown patient"}, 400
                )
            if encounter is not None and (
                not isinstance(encounter, str)
                or not self.store.find(
                    conn, "Encounter", f"_id={encounter}&subject=Patient/{patient}", SYSTEM
                )
            ):
                return json_response(
                    {"error": "invalid_request", "error_description": "Unknown encounter for this patient"},
                    400,
                )
            launch = create_launch(
                conn, client_id=client_id, patient=patient, encounter=encounter, created_by=account.account_id
            )
        issuer = issuer_of(request, self.settings)
        return json_response({"launch": launch, "iss": fhir_audience(issuer), "expires_in": LAUNCH_TTL}, 201)


def launch_routes(store: Store, settings: Settings) -> list[BaseRoute]:
    endpoint = LaunchEndpoint(store, settings)
    return [Route("/auth/launch", endpoint.create, methods=["POST"])]
