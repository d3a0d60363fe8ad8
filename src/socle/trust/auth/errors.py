"""OAuth 2.0 errors (RFC 6749 §5.2), raised by the decisions and rendered by the endpoints."""

from __future__ import annotations

from socle.fhir.errors import FhirError


class OAuthError(Exception):
    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


class InvalidToken(Exception):
    """A bearer token that does not verify (RFC 6750 §3.1 `invalid_token`)."""


class Unauthenticated(FhirError):
    """No valid bearer token on a protected FHIR route (RFC 6750 §3): 401 with WWW-Authenticate."""

    status = 401
    issue_code = "login"
