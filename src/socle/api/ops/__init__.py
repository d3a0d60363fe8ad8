"""Every module that registers FHIR operations, imported once so their `@operation`s take effect.

Add one import line per module (the composition is explicit, as in Starlette).
"""

from __future__ import annotations
