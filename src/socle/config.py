"""Settings, read once from `SOCLE_*` environment variables (pydantic-settings)."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOCLE_")

    # Default: an SQLite file under ./var/, so that `socle serve` works with zero set-up.
    database_url: str = f"sqlite:///{Path('var') / 'socle.db'}"
    # Public base URL of the FHIR API, used in Location headers and Bundle links when set;
    # otherwise derived from the request.
    base_url: str | None = None
    # Largest request body accepted (413 beyond): transactions of a few thousand resources fit.
    max_body_bytes: int = 50 * 1024 * 1024
    # Largest number of entries in one batch/transaction Bundle.
    max_bundle_entries: int = 20_000
    # Page size for history when the client gives no _count, and the ceiling on _count.
    default_page_size: int = 50
    max_page_size: int = 1000
    # Authorization server (socle.trust.auth). On by default: every /fhir route but `metadata` and
    # `.well-known/smart-configuration` needs a bearer token (401 with WWW-Authenticate; 403 when its
    # scopes do not cover the interaction). `SOCLE_AUTH_REQUIRED=false` only for benchmarks of the
    # FHIR server itself or a closed test bench: every request then acts as the system.
    auth_required: bool = True
    # Break-glass (emergency) access lasts this long (trust policy, POST Patient/{id}/$break-glass).
    break_glass_minutes: int = 240
    # Issuer URL of the tokens (https://host); derived from the request when unset.
    issuer: str | None = None
    # Master key encrypting the signing keys at rest (a Fernet key); when unset it is read from, or
    # created in, `auth_master_key_file` (mode 0600), so that it is neither in the database nor the repo.
    auth_master_key: str | None = None
    auth_master_key_file: Path = Path("var") / "auth-master.key"
    # Lifetimes in seconds.
    access_token_ttl: int = 600
    refresh_token_ttl: int = 30 * 24 * 3600
    # Argon2id cost for passwords and client secrets (RFC 9106 second recommended option: 64 MiB, t=3).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    # Outgoing messages (activation codes, one-time codes): "outbox" (a table, readable in the demo)
    # or "smtp" (to smtp_host:smtp_port, no TLS: a local relay or test server).
    delivery: str = "outbox"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "no-reply@socle.localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    # Federation to an external OpenID Connect provider (a "Se connecter avec …" button): its issuer
    # (discovery at <issuer>/.well-known/openid-configuration), Socle's client id/secret there, the
    # button label, the scopes asked, and which upstream claims identify a local account: a
    # professional by idNat_PS, else a citizen by e-mail.
    federation_issuer: str | None = None
    federation_client_id: str | None = None
    federation_client_secret: str | None = None
    federation_name: str | None = None
    federation_scope: str = "openid profile email"
    federation_idnat_claims: str = "SubjectNameID preferred_username"
    federation_email_claim: str = "email"
    # Audit chain (socle.trust.audit): every access to health data through the FHIR API writes a
    # hash-chained AuditEvent. Switch off only to measure its cost (bench/audit.py).
    audit: bool = True
    # A signed checkpoint of the chain head every this many events (also `socle audit checkpoint`).
    audit_checkpoint_every: int = 1000


@functools.cache
def get_settings() -> Settings:
    return Settings()
