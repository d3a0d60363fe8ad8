"""Geographic proximity: Locations within a distance, and "professionals near this commune".

Positions come from `idx_position`, the core's index of Location positions that also answers R4
`Location?near=` (`socle.store.positions`): a bounding box on its covering (latitude, longitude, x,
y, z) index and the exact great-circle test, both inside one index range; the exact distance is
then computed in Python for ordering. `roles_near` answers "professionals near this commune": the
nearest Locations first, then the PractitionerRoles at them through the ordinary `location=`
reference search (with any extra criteria such as `role` or `specialty`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Select, select

from socle.fhir.errors import Invalid
from socle.referentials.directory.communes import distance_km
from socle.store.access import AccessFilter
from socle.store.positions import idx_position, near_condition
from socle.store.repository import Store
from socle.store.schema import resource
from socle.store.versioned import StoredVersion

__all__ = ["MAX_DISTANCE_KM", "NearRole", "locations_near", "parse_near", "roles_near"]

_UNITS = {"km": 1.0, "m": 0.001, "mi_i": 1.609344, "[mi_i]": 1.609344}
MAX_DISTANCE_KM = 200.0
_CHUNK = 200  # Location ids per `location=` search


def parse_near(text: str) -> tuple[float, float, float]:
    """`lat|lon|distance|unit` (R4 Location `near`; distance defaults to 5 km) → (lat, lon, km)."""
    parts = text.split("|")
    try:
        lat, lon = float(parts[0]), float(parts[1])
        distance = float(parts[2]) if len(parts) > 2 and parts[2] else 5.0
    except (ValueError, IndexError):
        raise Invalid(f"near {text!r}: expected latitude|longitude|distance|unit") from None
    unit = parts[3] if len(parts) > 3 and parts[3] else "km"
    if unit not in _UNITS:
        raise Invalid(f"near {text!r}: unit {unit!r} is not one of km, m, [mi_i]")
    km = distance * _UNITS[unit]
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not 0 < km <= MAX_DISTANCE_KM:
        raise Invalid(
            f"near {text!r}: coordinates out of range or distance not in (0, {MAX_DISTANCE_KM:g}] km"
        )
    return lat, lon, km


def _within(lat: float, lon: float, km: float) -> Select[int, float, float]:
    """(key, latitude, longitude) of the Location positions within `km`.

    Read from `idx_position`, the core's position index (`socle.store.positions`, R4 `near`), whose
    (latitude, longitude, x, y, z) index covers both the bounding box and the exact great-circle
    test: one index range, no row lookups. The directory's own `latitude`/`longitude` number rows
    needed a primary-key lookup per row of the latitude band (every Location of that band across
    the country) to read the longitude.
    """
    table = idx_position
    condition = near_condition([f"{lat!r}|{lon!r}|{km!r}|km"])
    return select(table.c.resource_key, table.c.latitude, table.c.longitude).where(condition)


def _band(conn: Connection, lat: float, lon: float, km: float) -> list[tuple[int, float]]:
    """(resource key, exact distance) of indexed positions within `km`, nearest first.

    Reads only the position index: driving the query from there keeps both planners off the
    resource table, which a join with it tempted SQLite into scanning (9 s at a million lines
    instead of milliseconds).
    """
    rows = conn.execute(_within(lat, lon, km)).all()
    found = [(int(r[0]), distance_km(lat, lon, float(r[1]), float(r[2]))) for r in rows]
    return sorted((item for item in found if item[1] <= km), key=lambda item: (item[1], item[0]))


def _location_ids(conn: Connection, keys: Sequence[int], access: AccessFilter) -> dict[int, str]:
    """Ids of the live Locations among `keys` that the access filter admits."""
    rows = conn.execute(
        select(resource.c.resource_key, resource.c.id).where(
            resource.c.resource_key.in_(list(keys)),
            resource.c.resource_type == "Location",
            resource.c.deleted.is_(False),
            access.condition(resource),
        )
    ).all()
    return {int(r[0]): str(r[1]) for r in rows}


def locations_near(
    conn: Connection, lat: float, lon: float, km: float, access: AccessFilter, *, limit: int | None = None
) -> list[tuple[str, float]]:
    """(Location id, distance in km) within `km`, nearest first, at most `limit`."""
    band = _band(conn, lat, lon, km)
    found: list[tuple[str, float]] = []
    for start in range(0, len(band), 500):
        window = band[start : start + 500]
        ids = _location_ids(conn, [key for key, _ in window], access)
        found.extend((ids[key], d) for key, d in window if key in ids)
        if limit is not None and len(found) >= limit:
            return found[:limit]
    return found


@dataclass(frozen=True)
class NearRole:
    role: StoredVersion
    location_id: str
    distance_km: float


def roles_near(
    store: Store,
    conn: Connection,
    access: AccessFilter,
    lat: float,
    lon: float,
    km: float,
    *,
    criteria: Sequence[tuple[str, str]] = (),
    count: int = 50,
) -> list[NearRole]:
    """Active PractitionerRoles at Locations within `km`, nearest first, at most `count`.

    Positions come from the index in one range read; Locations are then taken nearest first in
    growing windows (count, 4×count, …) and the roles at each window fetched with one `location=`
    search per `_CHUNK` ids; once `count` roles are found the farther windows cannot hold nearer
    ones, so the search stops.
    """
    band = _band(conn, lat, lon, km)
    found: list[NearRole] = []
    start, window = 0, max(count, 16)
    while len(found) < count and start < len(band):
        keys = band[start : start + window]
        start += window
        window = min(window * 4, 2000)
        ids = _location_ids(conn, [key for key, _ in keys], access)
        places = [(ids[key], d) for key, d in keys if key in ids]
        for first in range(0, len(places), _CHUNK):
            found.extend(_roles_at(store, conn, access, dict(places[first : first + _CHUNK]), criteria))
            if len(found) >= count:
                break
    found.sort(key=lambda r: (r.distance_km, r.role.id))
    return found[:count]


def _roles_at(
    store: Store,
    conn: Connection,
    access: AccessFilter,
    distances: dict[str, float],
    criteria: Sequence[tuple[str, str]],
) -> list[NearRole]:
    refs = ",".join(f"Location/{id_}" for id_ in distances)
    found: list[NearRole] = []
    after = None
    while True:
        page, after, _ = store.search_page(
            conn,
            "PractitionerRole",
            # `active` is filtered below: as a criterion it matches nearly every role, and
            # intersecting that set costs more than reading the few roles at these places.
            [("location", refs), *criteria],
            access,
            count=500,
            after=after,
            strict=True,
        )
        for version in page:
            if version.resource.get("active") is False:
                continue
            refs_of_role = [r.get("reference", "")[9:] for r in version.resource.get("location", ())]
            place = next((p for p in refs_of_role if p in distances), "")
            found.append(NearRole(version, place, distances.get(place, 0.0)))
        if after is None:
            return found
