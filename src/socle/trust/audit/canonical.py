"""What is hashed: the canonical JSON of an AuditEvent, and one link of the chain.

Canonical JSON: object keys sorted (by code point), no whitespace, UTF-8, non-ASCII characters
written as themselves, control characters escaped as JSON requires (`\\n`, `\\u0001`). For
AuditEvents — which hold only objects, arrays, strings and booleans, never numbers — this is the
same byte string as RFC 8785 (JCS) and as Python's
`json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()`,
so anyone can re-check a chain without Socle.

Link: `hash[n] = SHA-256( ASCII(hash[n-1]) || canonical[n] )` in lower-case hex, with `hash[0]` =
64 zeros. Each row stores `prev_hash` (= hash[n-1]) and `hash`: editing an event changes its hash;
deleting, inserting or reordering rows breaks a `prev_hash` link; rewriting every later hash to hide
that is caught by the signed checkpoints, which bind a `seq` to the hash the chain had there.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def link_hash(prev_hash: str, content: bytes) -> str:
    digest = hashlib.sha256(prev_hash.encode("ascii"))
    digest.update(content)
    return digest.hexdigest()
