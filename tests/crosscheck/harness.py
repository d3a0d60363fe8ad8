"""Load, export and query: the machinery of the Medplum cross-check (verdict.py judges).

Both sides must search exactly the same resources with the same ids: the Synthea bundles (and the
few extra resources in `extra_resources.json`) are POSTed to Socle, then every stored resource is
read back page by page and that export is what Medplum's `MemoryRepository` loads.

Queries come from `queries.txt`: one `Type?name=value&...` per line, values written decoded (this
module percent-encodes them for Socle; Medplum gets the same decoded pairs). `{4ce65733}` stands for
the Socle id of the resource whose Synthea id starts with those characters (first bundle that has
it), `{lastUpdated:4ce65733}` for that resource's `meta.lastUpdated` cut to the second. A line
`A => B` asks Medplum query B for query A: used where Medplum has no answer for A but B is
equivalent on this data (said in a comment on the line above).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from starlette.testclient import TestClient

from tests.conftest import synthea_bundles

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "medplum_search.mjs"
QUERIES = HERE / "queries.txt"
EXTRA = HERE / "extra_resources.json"
INSTALL = "npm ci --prefix tests/crosscheck --no-audit --no-fund"
FHIR_JSON = {"Content-Type": "application/fhir+json", "Prefer": "return=minimal"}
_PLACEHOLDER = re.compile(r"\{(?:(lastUpdated):)?([A-Za-z0-9-]+)\}")
_MAX_PAGES = 500

Params = list[tuple[str, str]]


@dataclass(frozen=True)
class Query:
    line: int
    text: str  # as written in queries.txt (the allow-list key)
    resource_type: str
    params: Params  # placeholders resolved, decoded
    oracle_type: str
    oracle_params: Params  # what Medplum runs (the right side of `=>`, else the same)


@dataclass
class SocleAnswer:
    ids: list[str] = field(default_factory=list)
    page_sizes: list[int] = field(default_factory=list)
    status: int = 200
    total: int | None = None  # Bundle.total of the first page, when given
    unsupported: str | None = None  # why, when Socle says it does not support the query
    error: str | None = None


@dataclass
class Loaded:
    """What Socle stored: the export, and Synthea id → Socle id (first bundle wins)."""

    resources: list[dict[str, Any]]
    ids: dict[str, str]
    updated: dict[str, str]


def load_into_socle(client: TestClient) -> Loaded:
    ids: dict[str, str] = {}
    types: set[str] = set()

    def post(name: str, bundle: dict[str, Any]) -> None:
        response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
        assert response.status_code == 200, f"{name}: {response.text[:500]}"
        for sent, result in zip(bundle["entry"], response.json()["entry"], strict=True):
            resource_type, socle_id = result["response"]["location"].split("/")[:2]
            assert resource_type == sent["resource"]["resourceType"], name
            types.add(resource_type)
            ids.setdefault(sent["resource"]["id"], socle_id)

    bundles = synthea_bundles()
    assert len(bundles) == 23
    for name, bundle in bundles:
        post(name, bundle)
    post(EXTRA.name, json.loads(resolve(EXTRA.read_text(), ids, {})))
    resources = export(client, sorted(types))
    by_id = {r["id"]: r for r in resources}
    assert len(by_id) == len(resources) == len(ids) + _duplicates(bundles)
    updated = {key: by_id[value]["meta"]["lastUpdated"] for key, value in ids.items()}
    return Loaded(resources, ids, updated)


def _duplicates(bundles: list[tuple[str, dict[str, Any]]]) -> int:
    """Synthea repeats each Organization and Practitioner in every bundle that cites it."""
    seen: set[str] = set()
    repeated = 0
    for _, bundle in bundles:
        for entry in bundle["entry"]:
            repeated += entry["resource"]["id"] in seen
            seen.add(entry["resource"]["id"])
    return repeated


def export(client: TestClient, types: list[str]) -> list[dict[str, Any]]:
    """Every current resource of `types`, read back through Socle's own search paging."""
    out: list[dict[str, Any]] = []
    for resource_type in types:
        for status, body in _pages(client, f"/fhir/{resource_type}?_count=1000"):
            assert status == 200, body
            out += [e["resource"] for e in body.get("entry", []) if e["search"]["mode"] == "match"]
    return out


def _pages(client: TestClient, url: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each page of a search, following `next` links (at most _MAX_PAGES)."""
    for _ in range(_MAX_PAGES):
        if url is None:
            return
        response = client.get(url)
        try:
            body = response.json()
        except ValueError:  # a crash page: report it as an error, not a broken harness
            body = {"issue": [{"code": "exception", "diagnostics": response.text[:300]}]}
        yield response.status_code, body
        url = next((link["url"] for link in body.get("link", []) if link["relation"] == "next"), None)
    raise AssertionError(f"more than {_MAX_PAGES} pages")


def resolve(text: str, ids: dict[str, str], updated: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        kind, prefix = match.groups()
        keys = [key for key in ids if key.startswith(prefix)]
        if len(keys) != 1:
            raise ValueError(f"placeholder {match.group(0)} matches {len(keys)} resources")
        if kind == "lastUpdated":
            return updated[keys[0]][:19] + "Z"
        return ids[keys[0]]

    return _PLACEHOLDER.sub(one, text)


def _split(query: str) -> tuple[str, Params]:
    resource_type, _, rest = query.strip().partition("?")
    pairs = []
    for part in rest.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return resource_type, pairs


def read_queries(loaded: Loaded) -> list[Query]:
    queries = []
    for number, raw in enumerate(QUERIES.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        text, _, oracle = (part.strip() for part in line.partition(" => "))
        resource_type, params = _split(resolve(text, loaded.ids, loaded.updated))
        oracle_type, oracle_params = _split(resolve(oracle or text, loaded.ids, loaded.updated))
        queries.append(Query(number, text, resource_type, params, oracle_type, oracle_params))
    return queries


def socle_search(client: TestClient, resource_type: str, params: Params) -> SocleAnswer:
    """All pages of a type search. Unsupported: a 400 not-supported, or parameters the Bundle's
    OperationOutcome entry reports ignored (not-supported), as api/search.py does (search.html#errors)."""
    answer = SocleAnswer()
    url = f"/fhir/{resource_type}?" + urlencode(params, quote_via=quote, safe="")
    for status, body in _pages(client, url):
        answer.status = status
        issues = body.get("issue", [])
        if status != 200:
            text = "; ".join(str(i.get("diagnostics", "")) for i in issues)
            if "not-supported" in {i.get("code") for i in issues}:
                answer.unsupported = text
            else:
                answer.error = f"{status}: {text}"
            return answer
        if not answer.page_sizes and isinstance(body.get("total"), int):
            answer.total = body["total"]
        entries = body.get("entry", [])
        page = [e["resource"]["id"] for e in entries if e["search"]["mode"] == "match"]
        for outcome in (e["resource"] for e in entries if e["search"]["mode"] == "outcome"):
            ignored = [i for i in outcome.get("issue", []) if i.get("code") == "not-supported"]
            if ignored:
                answer.unsupported = "; ".join(str(i.get("diagnostics", "")) for i in ignored)
        answer.ids += page
        answer.page_sizes.append(len(page))
    return answer


def medplum_search(
    resources: list[dict[str, Any]], queries: list[Query], workdir: Path
) -> list[dict[str, Any]]:
    """Run the queries through medplum_search.mjs (Medplum's MemoryRepository) in one Node process."""
    node = shutil.which("node")
    assert node is not None, "Node.js is needed for the Medplum cross-check"
    assert (HERE / "node_modules" / "@medplum" / "fhir-router").is_dir(), f"run `{INSTALL}` first"
    data = workdir / "resources.ndjson"
    data.write_text("".join(json.dumps(r) + "\n" for r in resources))
    requests = workdir / "queries.json"
    requests.write_text(json.dumps([{"type": q.oracle_type, "params": q.oracle_params} for q in queries]))
    done = subprocess.run(
        [node, str(SCRIPT), str(data), str(requests)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results: list[dict[str, Any]] = json.loads(done.stdout)
    assert len(results) == len(queries)
    return results
