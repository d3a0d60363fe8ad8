"""The access-filter seam: every read the store performs carries one.

The trust layer (its own issue) turns a principal into an `AccessFilter`; the store ANDs the
filter's SQL condition into every SELECT it runs on `resource` or `resource_history`, so no read
path can return a row the policy did not admit. Until that layer exists only `SYSTEM` is built:
the operator / system principal, allowed everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import ColumnElement, FromClause, true

from socle.store import policy_stamp  # noqa: F401  (registers the stamp's write hook with the store)


class AccessFilter(Protocol):
    """A policy decision bound to one request: a SQL condition on a resource-shaped table."""

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        """A boolean SQL expression over `table` (which has resource_type, compartment, security).

        It may name `table` only as SQL text (the policy's `PolicySQL`): the statement must select
        from `table` itself, the condition adds nothing to its FROM list."""
        ...


@dataclass(frozen=True)
class AllowAll:
    """System access: admits every row (operators, the CLI, internal jobs)."""

    def condition(self, table: FromClause) -> ColumnElement[bool]:
        return true()


SYSTEM: AccessFilter = AllowAll()
