"""The one error family of Socle.

Lower layers raise these (or translate their own errors into them at the layer boundary); exactly
one handler in `socle.api` renders them as OperationOutcome. See FHIR R4 §3.1.0.1.8 (RESTful API:
errors) and the OperationOutcome issue-type value set for `issue_code`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: what went wrong and where (a FHIRPath expression)."""

    code: str
    diagnostics: str
    expression: str | None = None
    severity: str = "error"

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


class FhirError(Exception):
    """An error a FHIR client should see: an HTTP status plus OperationOutcome issues."""

    status: int = 500
    issue_code: str = "exception"

    def __init__(
        self,
        diagnostics: str,
        *,
        expression: str | None = None,
        issues: list[Issue] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.diagnostics = diagnostics
        self.expression = expression
        self.issues = issues or [Issue(self.issue_code, diagnostics, expression)]
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


class Invalid(FhirError):
    """Content that is not valid FHIR, or a request that is malformed (400)."""

    status = 400
    issue_code = "invalid"


class Unprocessable(FhirError):
    """Well-formed content that breaks a rule (422): a failed profile or business rule."""

    status = 422
    issue_code = "processing"


class NotFound(FhirError):
    status = 404
    issue_code = "not-found"


class Gone(FhirError):
    status = 410
    issue_code = "deleted"


class Forbidden(FhirError):
    status = 403
    issue_code = "forbidden"


class MethodNotAllowed(FhirError):
    status = 405
    issue_code = "not-supported"


class NotAcceptable(FhirError):
    status = 406
    issue_code = "not-supported"


class Conflict(FhirError):
    status = 409
    issue_code = "conflict"


class PreconditionFailed(FhirError):
    status = 412
    issue_code = "conflict"


class PayloadTooLarge(FhirError):
    status = 413
    issue_code = "too-long"


class UnsupportedMediaType(FhirError):
    status = 415
    issue_code = "not-supported"


class TooCostly(FhirError):
    status = 422
    issue_code = "too-costly"


class NotSupported(FhirError):
    """A valid request for something Socle does not implement (FHIR answers 400 with not-supported)."""

    status = 400
    issue_code = "not-supported"


@dataclass
class IssueCollector:
    """Accumulates issues so that one response can name every problem, not just the first."""

    issues: list[Issue] = field(default_factory=list)

    def add(self, code: str, diagnostics: str, expression: str | None = None) -> None:
        self.issues.append(Issue(code, diagnostics, expression))

    def raise_if_any(self, error: type[FhirError] = Invalid) -> None:
        if self.issues:
            raise error(self.issues[0].diagnostics, issues=self.issues)
