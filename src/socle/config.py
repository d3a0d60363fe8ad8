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


@functools.cache
def get_settings() -> Settings:
    return Settings()
