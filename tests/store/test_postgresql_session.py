"""The settings every PostgreSQL session of the store runs with (`store.engine._postgresql_session`)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine


def test_sessions_plan_each_statement_for_its_values_and_without_jit(engine: Engine, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("PostgreSQL session settings; SQLite has no plan cache to configure")
    for _ in range(2):  # a new connection and a pooled one
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar_one() == "force_custom_plan"
            assert conn.exec_driver_sql("SHOW jit").scalar_one() == "off"
