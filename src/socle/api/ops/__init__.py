"""Every module that registers FHIR operations, imported once so their `@operation`s take effect.

Add one import line per module (the composition is explicit, as in Starlette).
"""

from __future__ import annotations

from socle.api import (
    break_glass,  # noqa: F401  ($break-glass)
    directory,  # noqa: F401  ($near, $check-identifier)
    everything,  # noqa: F401  ($everything)
    identity,  # noqa: F401  ($match, $merge, $unmerge, $ins-lookup, $identity-status)
    operations,  # noqa: F401  ($reindex)
)
