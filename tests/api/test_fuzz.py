"""Random and malformed requests against a running server: never a 5xx, every 4xx an OperationOutcome.

A 500 means a request reached code that did not expect it: an unchecked type, an integer too large
for a column, a NUL byte PostgreSQL refuses, a recursion limit. Hypothesis generates requests
(methods, raw paths with `..` and `%00`, query strings, headers such as garbage If-Match, and
bodies from random JSON to mutated valid resources and Bundles); schemathesis adds cases drawn from
a loose OpenAPI description of the routes. Both run derandomized, so CI sees the same requests.

Every problem is collected rather than raised at the first one, so a run lists each distinct bug.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.server import LiveServer

pytestmark = pytest.mark.slow

HYPOTHESIS_EXAMPLES = 800
SCHEMATHESIS_EXAMPLES = 300
FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # problems are collected, not shrunk: see the docstring
    suppress_health_check=list(HealthCheck),
)

TYPES = [
    "Patient",
    "Observation",
    "Bundle",
    "Encounter",
    "OperationOutcome",
    "Resource",
    "patient",
    "Foo",
    "Binary",
]
SEGMENTS = [
    "_history",
    "_search",
    "$everything",
    "$validate",
    "$meta",
    "metadata",
    "..",
    ".",
    "%00",
    "%2F",
    "%25",
    "%zz",
    "_",
    "$",
    "1",
    "0",
    "-1",
    "99999999999999999999",
    "a" * 300,
]
PARAMS = [
    "_count",
    "_cursor",
    "_format",
    "_pretty",
    "_summary",
    "_elements",
    "_total",
    "_since",
    "_at",
    "_sort",
    "_include",
    "_revinclude",
    "_id",
    "_lastUpdated",
    "_tag",
    "_has:Observation:patient:code",
    "identifier",
    "identifier:missing",
    "identifier:of-type",
    "name",
    "name:exact",
    "name:contains",
    "family",
    "gender",
    "birthdate",
    "subject",
    "subject:Patient",
    "patient.name",
    "code",
    "code:text",
    "value-quantity",
    "date",
    "status",
]
VALUES = [
    "",
    "0",
    "-1",
    "1",
    "1000000",
    "99999999999999999999",
    "abc",
    "true",
    "json",
    "xml",
    "|",
    "a|b|c",
    "http://x|",
    "|code",
    "Patient/1",
    "Patient/",
    "ge2020-01-01",
    "2020-13-45",
    "lt",
    "eq1e400",
    "5.4|http://unitsofmeasure.org|mg",
    "2020",
    "2020-01-01T25:61:00Z",
    "\x00",
    "é✓漢字",
    "x" * 3000,
]
CONTENT_TYPES = [
    "application/fhir+json",
    "application/json",
    "application/json-patch+json",
    "application/fhir+json; charset=utf-8",
    "application/fhir+json; fhirVersion=3.0",
    "application/fhir+xml",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/plain",
    "",
    "garbage",
    ";;;",
]
HEADER_VALUES: dict[str, list[str]] = {
    "Accept": [
        "application/fhir+json",
        "application/json",
        "application/xml",
        "text/html",
        "*/*",
        "",
        "x/y",
        "garbage",
    ],
    "If-Match": [
        'W/"1"',
        '"1"',
        "1",
        'W/"x"',
        "*",
        'W/"99999999999999999999"',
        'W/"-1"',
        "W/",
        '"',
        "garbage",
    ],
    "If-None-Match": ['W/"1"', "*", 'W/"99999999999999999999"', "garbage"],
    "If-Modified-Since": ["Wed, 21 Oct 2015 07:28:00 GMT", "yesterday", "Wed, 99 Foo 9999 99:99:99 GMT", ""],
    "If-None-Exist": ["identifier=x|y", "_id=1", "Patient?name=x", "?", "=", "%00", "unknown=1", ""],
    "Prefer": [
        "return=minimal",
        "return=representation",
        "return=OperationOutcome",
        "handling=strict",
        "respond-async",
    ],
}
BAD_REFERENCES = [
    "Patient/does-not-exist",
    "Patient/",
    "/Patient/1",
    "Foo/1",
    "patient/1",
    "Patient/1/_history/x",
    "Patient?identifier=nothing|matches",
    "Patient?",
    "urn:uuid:not-in-this-request",
    "#not-contained",
    "http://elsewhere.example/fhir/Patient/1",
    "Patient/a\x00b",
    "",
    " ",
    "x" * 5_000,
]
# Header values as HTTP allows them (visible ASCII, inner spaces): h11 refuses to send anything else.
PRINTABLE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)


@dataclass
class FuzzRequest:
    method: str
    target: str  # the raw request-target, sent as is (no dot-segment removal, no re-encoding)
    headers: dict[str, str]
    body: bytes | None

    def describe(self) -> str:
        body = "" if self.body is None else f" body={self.body[:300]!r}{'…' if len(self.body) > 300 else ''}"
        return f"{self.method} {self.target[:300]} headers={self.headers}{body}"


@dataclass(frozen=True)
class Seeds:
    patient: str
    observation: str


def patient(seeds: Seeds) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": seeds.patient,
        "identifier": [{"system": "urn:fuzz", "value": "1"}],
        "name": [{"family": "Fuzz", "given": ["Hy", "Pothesis"]}],
        "gender": "other",
        "birthDate": "1970-01-01",
        "telecom": [{"system": "email", "value": "a@b.c"}],
    }


def observation(seeds: Seeds) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": seeds.observation,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{seeds.patient}"},
        "effectiveDateTime": "2024-01-01T10:00:00Z",
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }


def bundle(seeds: Seeds) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0d1c0b1e-6a1e-4b45-9f3e-4f5d1f0e9a01",
                "resource": {k: v for k, v in patient(seeds).items() if k != "id"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": {
                    **observation(seeds),
                    "subject": {"reference": "urn:uuid:0d1c0b1e-6a1e-4b45-9f3e-4f5d1f0e9a01"},
                },
                "request": {"method": "PUT", "url": f"Observation/{seeds.observation}"},
            },
            {"request": {"method": "GET", "url": f"Patient/{seeds.patient}"}},
            {"request": {"method": "DELETE", "url": "Patient?identifier=urn:fuzz|nothing"}},
        ],
    }


# -- strategies -------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(
        ["", "Patient/1", "urn:uuid:x", "#c", "1970-01-01", "2020-02-30", "http://x/y", "\x00", "ÿ漢😀"]
    ),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=12), st.sampled_from(["id", "meta", "reference", "resourceType"])),
            children,
            max_size=4,
        ),
    ),
    max_leaves=25,
)


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """A valid resource with one part replaced, removed, inflated, or nested very deeply."""
    resource = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        node: Any = resource
        path: list[Any] = []
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            key = draw(
                st.sampled_from(sorted(node)) if isinstance(node, dict) else st.integers(0, len(node) - 1)
            )
            path.append(key)
            node = node[key]
        if not path:
            key = draw(st.sampled_from([*sorted(resource), "extension", "contained", "text", "resourceType"]))
            path = [key]
        parent: Any = resource
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "huge", "deep", "null", "unicode", "type"]))
        key = path[-1]
        if action == "delete":
            if isinstance(parent, dict):
                parent.pop(key, None)
            elif parent:
                parent.pop(key)
            continue
        value: Any = {
            "replace": draw(json_values),
            "huge": "x" * draw(st.sampled_from([1_000, 100_000, 1_000_000])),
            "deep": deep_value(draw(st.sampled_from([50, 500, 5_000]))),
            "null": None,
            "unicode": draw(st.text(alphabet=st.characters(min_codepoint=0x80), min_size=1, max_size=20)),
            "type": draw(st.sampled_from([[], {}, 0, 1.5, True, "", [None], {"": None}])),
        }[action]
        if isinstance(parent, dict):
            parent[key] = value
        elif isinstance(parent, list) and parent:
            parent[key] = value
    return resource


def deep_value(depth: int) -> Any:
    value: Any = {"extension": []}
    for _ in range(depth):
        value = {"extension": [value], "url": "http://x"}
    return value


def to_json(value: Any) -> bytes:
    # The stdlib writes integers of any size (orjson stops at 64 bits); deep values need recursion room.
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8", errors="surrogatepass")
    except RecursionError:
        return b'{"resourceType":"Patient","extension":' + b"[" * 20_000 + b"]" * 20_000 + b"}"


RAW_BODIES = [
    b"",
    b" ",
    b"null",
    b"123",
    b'"Patient"',
    b"[]",
    b"{}",
    b'{"resourceType":"Patient"',
    b'{"resourceType":"Patient","id":"x",}',
    b"\xef\xbb\xbf" + b'{"resourceType":"Patient"}',
    b'{"resourceType":"Patient","name":[{"family":"\xff\xfe"}]}',
    b'{"resourceType":"Patient","birthDate":NaN}',
    b'{"resourceType":"Patient","a":1e999}',
    b'{"resourceType":"Patient","resourceType":"Observation"}',
    b'{"resourceType":"Patient","text":"\\u0000"}',
    b'{"resourceType":"Patient","text":"\\ud800"}',
    b"[" * 100_000 + b"]" * 100_000,
    b"<Patient xmlns='http://hl7.org/fhir'/>",
    b"resourceType=Patient&name=x",
]


def sometimes(draw: st.DrawFn, one_in: int) -> bool:
    return draw(st.integers(0, one_in - 1)) == 0


def fhir_like(seeds: Seeds) -> st.SearchStrategy[dict[str, Any]]:
    """Any resourceType and id, with random elements."""
    base = st.fixed_dictionaries(
        {"resourceType": st.one_of(st.sampled_from(TYPES), st.text(max_size=20))},
        optional={
            "id": st.one_of(
                st.sampled_from([seeds.patient, "", "a" * 65, "x y", "../x"]), st.text(max_size=10)
            )
        },
    )
    return base.flatmap(
        lambda b: st.dictionaries(st.text(max_size=15), json_values, max_size=5).map(lambda d: {**d, **b})
    )


def patch_documents() -> st.SearchStrategy[list[dict[str, Any]]]:
    paths = [
        "/name",
        "/name/0",
        "/name/-",
        "/gender",
        "/id",
        "/resourceType",
        "/meta/versionId",
        "/-",
        "",
        "x",
        "/a~2",
    ]
    return st.lists(
        st.fixed_dictionaries(
            {
                "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "bogus"]),
                "path": st.sampled_from(paths),
            },
            optional={"value": json_values, "from": st.sampled_from(["/name", "/id", "/nope"])},
        ),
        max_size=4,
    )


def bundles(seeds: Seeds) -> st.SearchStrategy[Any]:
    urls = [
        "Patient",
        f"Patient/{seeds.patient}",
        "Patient?identifier=urn:fuzz|1",
        "Observation",
        "",
        "/",
        "$x",
        "?",
    ]
    request = st.fixed_dictionaries(
        {},
        optional={
            "method": st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "get", "BREW", None]),
            "url": st.one_of(st.sampled_from(urls), st.text(max_size=15)),
            "ifMatch": st.sampled_from(['W/"1"', "garbage", 'W/"99999999999999999999"']),
            "ifNoneExist": st.sampled_from(["identifier=urn:fuzz|1", "", "bogus=1"]),
        },
    )
    entry = st.fixed_dictionaries(
        {},
        optional={
            "fullUrl": st.sampled_from(["urn:uuid:a", "urn:uuid:a", "http://x/Patient/1", "", 5]),
            "resource": st.one_of(
                st.sampled_from([patient(seeds), observation(seeds)]), fhir_like(seeds), json_values
            ),
            "request": request,
        },
    )
    random_bundle = st.builds(
        lambda kind, entries: {"resourceType": "Bundle", "type": kind, "entry": entries},
        st.sampled_from(["transaction", "batch", "collection", "document", "", None]),
        st.one_of(st.lists(entry, max_size=5), json_values),
    )
    return st.one_of(
        st.just(bundle(seeds)),
        st.just(bundle(seeds)).flatmap(mutated),
        random_bundle,
        random_bundle.flatmap(mutated),
    )


@st.composite
def documents(draw: st.DrawFn, seeds: Seeds, resource_type: str | None, id: str | None) -> bytes:
    """A body for this type and id: mostly nearly right (to get past the first checks), sometimes anything."""
    templates = {"Patient": patient(seeds), "Observation": observation(seeds), "Bundle": bundle(seeds)}
    base = copy.deepcopy(templates.get(resource_type or "", {"resourceType": resource_type or "Patient"}))
    if id is None or sometimes(draw, 5):
        base.pop("id", None)
    else:
        base["id"] = id
    kind = draw(
        st.sampled_from(
            [
                "valid",
                "mutated",
                "mutated",
                "mutated",
                "bad-reference",
                "fhir-like",
                "bundle",
                "patch",
                "json",
            ]
        )
    )
    value: Any
    if kind == "valid":
        value = base
    elif kind == "mutated":
        value = draw(mutated(base))
    elif kind == "bad-reference":
        reference = draw(st.one_of(st.sampled_from(BAD_REFERENCES), st.text(max_size=20)))
        value = {
            **observation(seeds),
            "subject": {"reference": reference} if draw(st.booleans()) else reference,
        }
    elif kind == "fhir-like":
        value = draw(fhir_like(seeds))
    elif kind == "bundle":
        value = draw(bundles(seeds))
    elif kind == "patch":
        value = draw(patch_documents())
    else:
        value = draw(json_values)
    return to_json(value)


def encode_segment(segment: str) -> str:
    return segment if segment in SEGMENTS else quote(segment, safe="$")


# The methods each route shape is meant for; other methods are drawn now and then too.
SHAPES: dict[str, list[str]] = {
    "base": ["POST"],
    "type": ["GET", "POST", "PUT", "DELETE", "PATCH"],
    "instance": ["GET", "HEAD", "PUT", "PUT", "PATCH", "DELETE"],
    "history": ["GET"],
    "vread": ["GET"],
    "type-history": ["GET"],
    "system": ["GET", "POST"],
    "random": ["GET", "POST", "PUT", "PATCH", "DELETE"],
}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@st.composite
def fuzz_requests(draw: st.DrawFn, seeds: Seeds) -> FuzzRequest:
    ids = st.one_of(
        st.sampled_from([seeds.patient, seeds.observation, "1", "x" * 64, "x" * 65, "a\x00b"]),
        st.text(max_size=20),
    )
    known = st.sampled_from(["Patient", "Patient", "Observation", "Observation", "Encounter", "Bundle"])
    types = st.one_of(known, known, known, st.sampled_from(TYPES), st.text(min_size=1, max_size=15))
    vids = st.sampled_from(["1", "2", "0", "-1", "x", "99999999999999999999"])
    shape = draw(st.sampled_from(list(SHAPES)))
    resource_type = draw(types)
    id = draw(ids)
    segments: list[str] = {
        "base": lambda: [],
        "type": lambda: [resource_type],
        "instance": lambda: [resource_type, id],
        "history": lambda: [resource_type, id, "_history"],
        "vread": lambda: [resource_type, id, "_history", draw(vids)],
        "type-history": lambda: [resource_type, "_history"],
        "system": lambda: [draw(st.sampled_from(["_history", "metadata", "$export", "_search"]))],
        "random": lambda: draw(st.lists(st.one_of(st.sampled_from(SEGMENTS), types, ids), max_size=6)),
    }[shape]()
    method = draw(st.sampled_from(METHODS)) if sometimes(draw, 8) else draw(st.sampled_from(SHAPES[shape]))

    target = "/fhir/" + "/".join(encode_segment(s) for s in segments)
    conditional = shape == "type" and method in ("PUT", "DELETE", "PATCH")
    if conditional or draw(st.booleans()):
        pairs = draw(
            st.lists(
                st.tuples(
                    st.one_of(st.sampled_from(PARAMS), st.text(max_size=10)),
                    st.one_of(st.sampled_from(VALUES), st.text(max_size=20)),
                ),
                min_size=1 if conditional else 0,
                max_size=4,
            )
        )
        query = "&".join(f"{quote(k, safe=':')}={quote(v, safe='|:')}" for k, v in pairs)
        if sometimes(draw, 5):
            query += draw(st.sampled_from(["&", "&&=", "&a", "&%zz=1", "&_count=%00", "&_format=xml"]))
        target += "?" + query

    body: bytes | None = None
    headers: dict[str, str] = {}
    if method in ("POST", "PUT", "PATCH") or sometimes(draw, 10):
        if sometimes(draw, 10):
            body = draw(st.sampled_from(RAW_BODIES))
        elif method == "PATCH" and not sometimes(draw, 4):
            body = to_json(draw(patch_documents()))
        else:
            body_type = "Bundle" if shape in ("base", "system") else resource_type
            body = draw(documents(seeds, body_type, id if shape == "instance" else None))
        usual = "application/json-patch+json" if method == "PATCH" else "application/fhir+json"
        content_type = usual
        if sometimes(draw, 5):
            content_type = draw(st.one_of(st.sampled_from(CONTENT_TYPES), PRINTABLE))
        headers["Content-Type"] = content_type
    for name, values in HEADER_VALUES.items():
        if sometimes(draw, 6):
            headers[name] = draw(st.one_of(st.sampled_from(values), PRINTABLE))
    return FuzzRequest(method, target, headers, body)


# -- checks -----------------------------------------------------------------------------------


def problem(method: str, status: int, content: bytes) -> str | None:
    """What is wrong with this answer, if anything."""
    if status >= 500:
        return f"HTTP {status}"
    if 400 <= status < 500 and method != "HEAD":
        try:
            outcome = orjson.loads(content)
        except orjson.JSONDecodeError:
            return f"HTTP {status} without a JSON body: {content[:200]!r}"
        if (
            not isinstance(outcome, dict)
            or outcome.get("resourceType") != "OperationOutcome"
            or not outcome.get("issue")
        ):
            return f"HTTP {status} whose body is not an OperationOutcome: {content[:200]!r}"
    if status in (200, 201) and method != "HEAD" and content:
        try:
            orjson.loads(content)
        except orjson.JSONDecodeError:
            return f"HTTP {status} with a body that is not JSON: {content[:200]!r}"
    return None


def report(problems: list[str], what: str) -> str:
    """The problems grouped by what went wrong (first line), with the shortest requests that showed it."""
    groups: dict[str, list[str]] = {}
    for found in problems:
        summary, _, request = found.partition("\n")
        groups.setdefault(summary, []).append(request)
    shown = [
        f"{summary} ×{len(requests)}:\n" + "\n".join(sorted(set(requests), key=len)[:3])
        for summary, requests in groups.items()
    ]
    return f"{len(problems)} bad answers to {what}, {len(groups)} kinds:\n\n" + "\n\n".join(shown)


@pytest.fixture
def seeds(server: LiveServer) -> Seeds:
    headers = {"Content-Type": "application/fhir+json", **server.headers}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        created = client.post("Patient", json={"resourceType": "Patient", "name": [{"family": "Seed"}]})
        assert created.status_code == 201, created.text
        patient_id = created.json()["id"]
        obs = {k: v for k, v in observation(Seeds(patient_id, "")).items() if k != "id"}
        created = client.post("Observation", json=obs)
        assert created.status_code == 201, created.text
        return Seeds(patient_id, created.json()["id"])


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60.0, headers=server.headers) as client:  # the operator's token
        yield client


def explicit_requests(seeds: Seeds) -> list[FuzzRequest]:
    """Inputs that broke servers before (ours or others): always sent, before the random ones."""
    fhir = {"Content-Type": "application/fhir+json"}
    pid = seeds.patient
    huge = "99999999999999999999"

    def patient_body(**extra: Any) -> bytes:
        return orjson.dumps({"resourceType": "Patient", "id": pid, **extra})

    def batch(url: str) -> bytes:
        entry = {"request": {"method": "GET", "url": url}}
        return orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": [entry]})

    return [
        FuzzRequest("GET", "/fhir/Patient/a%00b", {}, None),
        FuzzRequest("GET", "/fhir/Patient/a%00b/_history", {}, None),
        FuzzRequest("DELETE", "/fhir/Patient/a%00b", {}, None),
        FuzzRequest("PUT", "/fhir/Patient/a%00b", fhir, b'{"resourceType":"Patient","id":"a\\u0000b"}'),
        FuzzRequest("GET", "/fhir/Patient?name=%00", {}, None),
        FuzzRequest("GET", "/fhir/Patient?_id=%00", {}, None),
        FuzzRequest("GET", "/fhir/Patient?identifier=%00|%00", {}, None),
        FuzzRequest("GET", "/fhir/Observation?subject=Patient/%00", {}, None),
        FuzzRequest("DELETE", "/fhir/Patient?name=%00", {}, None),
        FuzzRequest("PUT", "/fhir/Patient?name=%00", fhir, b'{"resourceType":"Patient"}'),
        FuzzRequest(
            "POST", "/fhir/Patient", {**fhir, "If-None-Exist": "name=%00"}, b'{"resourceType":"Patient"}'
        ),
        FuzzRequest(
            "POST", "/fhir/Patient", fhir, b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}'
        ),
        FuzzRequest("POST", "/fhir", fhir, batch("Patient/a\x00")),
        FuzzRequest("POST", "/fhir", fhir, batch(f"Patient/{pid}/_history/{huge}")),
        FuzzRequest("GET", f"/fhir/Patient/{pid}/_history/{huge}", {}, None),
        FuzzRequest("GET", f"/fhir/Patient/{pid}/_history/-1", {}, None),
        FuzzRequest("GET", f"/fhir/Patient?_cursor={huge}", {}, None),
        FuzzRequest("GET", "/fhir/Patient?_cursor=-1", {}, None),
        FuzzRequest("GET", f"/fhir/_history?_cursor={huge}", {}, None),
        FuzzRequest("GET", f"/fhir/Patient?_count={huge}", {}, None),
        FuzzRequest("GET", f"/fhir/Patient/_history?_count={huge}", {}, None),
        FuzzRequest("GET", f"/fhir/Patient?_id={huge}", {}, None),
        FuzzRequest("GET", "/fhir/Patient?birthdate=ge99999-01-01", {}, None),
        FuzzRequest("GET", "/fhir/_history?_since=99999-01-01T00:00:00Z", {}, None),
        FuzzRequest("GET", "/fhir/Observation?value-quantity=1e400", {}, None),
        FuzzRequest("GET", f"/fhir/Observation?value-quantity=gt{huge}{huge}", {}, None),
        FuzzRequest("PUT", f"/fhir/Patient/{pid}", {**fhir, "If-Match": f'W/"{huge}"'}, patient_body()),
        FuzzRequest("DELETE", f"/fhir/Patient/{pid}", {"If-Match": f'W/"{huge}"'}, None),
        FuzzRequest("GET", f"/fhir/Patient/{pid}", {"If-None-Match": f'W/"{huge}"'}, None),
        FuzzRequest(
            "PATCH",
            f"/fhir/Patient/{pid}",
            {"Content-Type": "application/json-patch+json", "If-Match": f'W/"{huge}"'},
            b'[{"op":"add","path":"/gender","value":"other"}]',
        ),
        FuzzRequest(
            "POST",
            "/fhir/Patient",
            fhir,
            to_json({"resourceType": "Patient", "extension": [deep_value(400)]}),
        ),
        FuzzRequest("POST", "/fhir/Patient", fhir, b"[" * 100_000 + b"]" * 100_000),
        # Nesting just under orjson's limit of 1024 levels: parsed, then too deep for repr().
        FuzzRequest(
            "POST", "/fhir/Patient", fhir, b'{"resourceType":' + b'{"a":[' * 500 + b"]}" * 500 + b"}"
        ),
        FuzzRequest(
            "POST", "/fhir", fhir, b'{"resourceType":"Bundle","type":' + b'{"a":[' * 500 + b"]}" * 500 + b"}"
        ),
        FuzzRequest(
            "PATCH",
            f"/fhir/Patient/{pid}",
            {"Content-Type": "application/json-patch+json"},
            b'[{"op":"add","path":"/gender","value":' + b'{"a":[' * 500 + b"]}" * 500 + b"}]",
        ),
        FuzzRequest("POST", "/fhir/Patient", fhir, patient_body(birthDate="x" * 1_000_000)),
        FuzzRequest("GET", "/fhir/Patient/" + "a" * 10_000, {}, None),
    ]


def exchange(http: httpx.Client, origin: str, request: FuzzRequest) -> httpx.Response:
    return http.request(
        request.method,
        origin + "/",
        headers=request.headers,
        content=request.body,
        # httpx would normalise `..` and re-encode the path: send the request-target verbatim.
        extensions={"target": request.target.encode("ascii")},
    )


def server_error(server: LiveServer, since: int) -> str:
    """The exception the server logged for the last request, in one line."""
    lines = [
        line for line in server.stderr_text(since).splitlines() if "Error" in line or "Exception" in line
    ]
    return lines[-1].strip()[:300] if lines else "(nothing logged)"


def test_hypothesis_requests_never_get_a_5xx(server: LiveServer, seeds: Seeds, http: httpx.Client) -> None:
    origin = server.url.removesuffix("/fhir")
    problems: list[str] = []
    sent: list[FuzzRequest] = []

    @settings(FUZZ_SETTINGS, max_examples=HYPOTHESIS_EXAMPLES)
    @given(fuzz_requests(seeds))
    def send(request: FuzzRequest) -> None:
        sent.append(request)
        logged = server.stderr_size()
        try:
            response = exchange(http, origin, request)
        except httpx.TransportError:
            # After an unhandled exception uvicorn closes the connection, without `Connection: close`
            # on the 500 it sent: the next request on that keep-alive connection is reset. Retry it
            # once on a fresh connection; that 500 is already on the list.
            try:
                response = exchange(http, origin, request)
            except httpx.TransportError as exc:
                problems.append(f"connection dropped twice: {exc!r}\n  {request.describe()}")
                return
        found = problem(request.method, response.status_code, response.content)
        if found:
            if response.status_code >= 500:
                found += f" [{server_error(server, logged)}]"
            problems.append(f"{found}\n  {request.describe()}")

    for explicit in reversed(explicit_requests(seeds)):
        send = example(explicit)(send)
    send()
    assert len(sent) >= HYPOTHESIS_EXAMPLES // 2, f"only {len(sent)} requests were generated"
    assert server.process.poll() is None, f"the server died:\n{server.stderr_text()}"
    assert not problems, report(problems, f"{len(sent)} requests")


def openapi(seeds: Seeds) -> dict[str, Any]:
    """A deliberately loose description of the FHIR routes: schemathesis fills in the rest."""
    any_object = {"type": "object", "additionalProperties": True}
    resource = {
        "type": "object",
        "properties": {
            "resourceType": {"anyOf": [{"enum": TYPES[:4]}, {"type": "string"}]},
            "id": {"type": "string"},
        },
        "additionalProperties": True,
    }
    type_param = {
        "name": "type",
        "in": "path",
        "required": True,
        "schema": {"anyOf": [{"enum": TYPES[:4]}, {"type": "string"}]},
    }
    id_param = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"anyOf": [{"enum": [seeds.patient, seeds.observation]}, {"type": "string"}]},
    }
    vid_param = {
        "name": "vid",
        "in": "path",
        "required": True,
        "schema": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
    }
    header = [
        {"name": "If-Match", "in": "header", "schema": {"type": "string"}},
        {
            "name": "Prefer",
            "in": "header",
            "schema": {"enum": ["return=minimal", "return=OperationOutcome", "handling=strict"]},
        },
    ]
    query = [
        {"name": name, "in": "query", "schema": {"type": "string"}}
        for name in ("identifier", "name", "_count", "_cursor", "_since", "_summary", "_id", "birthdate")
    ]
    json_body = {"required": True, "content": {"application/fhir+json": {"schema": resource}}}
    responses = {"default": {"description": "any"}}
    bundle_schema = {
        "type": "object",
        "properties": {
            "resourceType": {"enum": ["Bundle", "Patient"]},
            "type": {"anyOf": [{"enum": ["batch", "transaction"]}, {"type": "string"}]},
            "entry": {
                "type": "array",
                "maxItems": 5,
                "items": {
                    "type": "object",
                    "properties": {
                        "fullUrl": {"type": "string"},
                        "resource": resource,
                        "request": {
                            "type": "object",
                            "properties": {
                                "method": {
                                    "anyOf": [
                                        {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                                        {"type": "string"},
                                    ]
                                },
                                "url": {"type": "string"},
                                "ifMatch": {"type": "string"},
                                "ifNoneExist": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
        "required": ["resourceType"],
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Socle FHIR API (fuzzing sketch)", "version": "0"},
        "paths": {
            "/": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/fhir+json": {"schema": bundle_schema}},
                    },
                    "responses": responses,
                }
            },
            "/metadata": {"get": {"responses": responses}},
            "/{type}": {
                "get": {"parameters": [type_param, *query], "responses": responses},
                "post": {
                    "parameters": [type_param, *header],
                    "requestBody": json_body,
                    "responses": responses,
                },
                "put": {
                    "parameters": [type_param, *query, *header],
                    "requestBody": json_body,
                    "responses": responses,
                },
                "delete": {"parameters": [type_param, *query], "responses": responses},
            },
            "/{type}/{id}": {
                "get": {"parameters": [type_param, id_param], "responses": responses},
                "put": {
                    "parameters": [type_param, id_param, *header],
                    "requestBody": json_body,
                    "responses": responses,
                },
                "patch": {
                    "parameters": [type_param, id_param, *header],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json-patch+json": {"schema": {"type": "array", "items": any_object}}
                        },
                    },
                    "responses": responses,
                },
                "delete": {"parameters": [type_param, id_param, *header], "responses": responses},
            },
            "/{type}/{id}/_history": {
                "get": {"parameters": [type_param, id_param, *query], "responses": responses}
            },
            "/{type}/{id}/_history/{vid}": {
                "get": {"parameters": [type_param, id_param, vid_param], "responses": responses}
            },
        },
    }


def test_schemathesis_cases_never_get_a_5xx(server: LiveServer, seeds: Seeds) -> None:
    schema = schemathesis.openapi.from_dict(openapi(seeds))
    strategy = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    problems: list[str] = []
    session = requests.Session()
    session.headers.update(server.headers)  # the operator's token

    sent: list[schemathesis.Case[Any]] = []

    @settings(FUZZ_SETTINGS, max_examples=SCHEMATHESIS_EXAMPLES)
    @given(strategy)
    def send(case: schemathesis.Case[Any]) -> None:
        logged = server.stderr_size()
        for _attempt in range(2):  # a reset after an earlier 500 is retried once (see the hypothesis test)
            try:
                response = case.call(base_url=server.url, session=session, timeout=60)
                break
            except requests.exceptions.InvalidHeader:
                return  # requests refuses to send it: nothing reached the server
            except requests.exceptions.ConnectionError as exc:
                error = exc
        else:
            problems.append(f"connection dropped twice: {error!r}\n  {case.as_curl_command()}")
            return
        sent.append(case)
        found = problem(case.method, response.status_code, response.content)
        if found:
            if response.status_code >= 500:
                found += f" [{server_error(server, logged)}]"
            problems.append(f"{found}\n  {case.as_curl_command()}")

    try:
        send()
    finally:
        session.close()
    assert server.process.poll() is None, f"the server died:\n{server.stderr_text()}"
    assert len(sent) >= SCHEMATHESIS_EXAMPLES // 2, f"only {len(sent)} cases were sent"
    assert not problems, report(problems, f"{len(sent)} schemathesis cases")


def test_fuzz_targets_stay_under_the_fhir_base() -> None:
    """The raw targets the fuzzer builds are valid HTTP request-targets below /fhir (not a server test)."""
    seeds = Seeds("p", "o")

    @settings(FUZZ_SETTINGS, max_examples=200)
    @given(fuzz_requests(seeds))
    def check(request: FuzzRequest) -> None:
        assert request.target.startswith("/fhir/")
        assert all(0x21 <= ord(c) <= 0x7E for c in request.target), request.target
        assert urlsplit(request.target).path.startswith("/fhir")

    check()
