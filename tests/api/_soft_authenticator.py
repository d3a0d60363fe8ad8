"""A software WebAuthn authenticator (EC P-256, `none` or `packed` self attestation) for the tests:
it builds the same bytes a security key would, so the real endpoints and py_webauthn verify them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftAuthenticator:
    def __init__(self, rp_id: str, origin: str) -> None:
        self.rp_id = rp_id
        self.origin = origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        )

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        body = {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        return json.dumps(body).encode()

    def _sign(self, auth_data: bytes, client_data: bytes) -> bytes:
        return self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))

    def create(
        self, options: dict[str, Any], *, fmt: str = "none", origin: str | None = None, flags: int = UP | UV
    ) -> dict[str, Any]:
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attested = (
            bytes(16) + len(self.credential_id).to_bytes(2, "big") + self.credential_id + self._cose_key()
        )
        auth_data = (
            hashlib.sha256(options["rp"]["id"].encode()).digest()
            + bytes([flags | AT])
            + self.sign_count.to_bytes(4, "big")
            + attested
        )
        statement: dict[str, Any] = {}
        if fmt == "packed":  # self attestation: signed by the credential key itself
            statement = {"alg": -7, "sig": self._sign(auth_data, client_data)}
        attestation = cbor2.dumps({"fmt": fmt, "attStmt": statement, "authData": auth_data})
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation)},
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        flags: int = UP | UV,
        count: int | None = None,
    ) -> dict[str, Any]:
        self.sign_count = self.sign_count + 1 if count is None else count
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = (
            hashlib.sha256(options["rpId"].encode()).digest()
            + bytes([flags])
            + self.sign_count.to_bytes(4, "big")
        )
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(self._sign(auth_data, client_data)),
            },
        }
