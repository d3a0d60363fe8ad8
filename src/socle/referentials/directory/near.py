"""Geographic proximity: Locations within a distance, and "professionals near this commune".

Positions are indexed by the directory's `latitude`/`longitude` number parameters (idx_number), so a
proximity query is a range scan on the (param, value) index for the latitude band, joined on the
resource key to the longitude row, then an exact-enough distance test in SQL with an
equirectangular approximation (error well under 1 % at the tens of km a "near" search uses), and
the exact great-circle distance in Python for ordering.

`near_condition` is the hook for R4 `Location?near=lat|lon|distance|unit` (search.html#special):
given the clause's raw value it returns a condition on `resource.resource_key`, the same shape as
every other clause the search compiler builds. `roles_near` answers "professionals near this
commune": the nearest Locations first, then the PractitionerRoles at them through the ordinary
`location=` reference search (with any extra criteria such as `role` or `specialty`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Select, and_, select

from socle.fhir.errors import Invalid
from socle.fhir.hashing import param_hash
from socle.referentials.directory.communes import EARTH_RADIUS_KM, distance_km
from socle.store.access import AccessFilter
from socle.store.indexes import idx_number
from socle.store.repository import Store
from socle.store.schema import resource
from socle.store.versioned import StoredVersion

__all__ = ["MAX_DISTANCE_KM", "NearRole", "locations_near", "near_condition", "parse_near", "roles_near"]

_UNITS = {"km": 1.0, "m": 0.001, "mi_i": 1.609344, "[mi_i]": 1.609344}
_KM_PER_DEGREE = math.pi * EARTH_RADIUS_KM / 180
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


def _within(lat: float, lon: float, km: float) -> Select[tuple[int, float, float]]:
    """(select of key, latitude, longitude) for index rows within `km` of the point."""
    lat_rows, lon_rows = idx_number.alias("lat_rows"), idx_number.alias("lon_rows")
    d_lat = km / _KM_PER_DEGREE
    scale = max(math.cos(math.radians(lat)), 0.01)
    d_lon = d_lat / scale
    dy = lat_rows.c.value - lat
    dx = (lon_rows.c.value - lon) * scale
    return (
        select(lat_rows.c.resource_key, lat_rows.c.value, lon_rows.c.value)
        .join(
            lon_rows,
            and_(
                lon_rows.c.resource_key == lat_rows.c.resource_key,
                lon_rows.c.param_hash == param_hash("Location", "longitude"),
            ),
        )
        .where(
            lat_rows.c.param_hash == param_hash("Location", "latitude"),
            lat_rows.c.value.between(lat - d_lat, lat + d_lat),
            lon_rows.c.value.between(lon - d_lon, lon + d_lon),
            dy * dy + dx * dx <= d_lat * d_lat,
        )
    )


def near_condition(text: str) -> ColumnElement[bool]:
    """`resource_key IN (…)` for Locations within the distance: the `near` special-parameter hook."""
    lat, lon, km = parse_near(text)
    rows = _within(lat, lon, km).subquery()
    return resource.c.resource_key.in_(select(rows.c.resource_key))


def locations_near(
    conn: Connection, lat: float, lon: float, km: float, access: AccessFilter
) -> list[tuple[str, float]]:
    """(Location id, distance in km) within `km`, nearest first."""
    rows = _within(lat, lon, km).subquery()
    statement = (
        select(resource.c.id, rows.c[1], rows.c[2])
        .join(rows, rows.c.resource_key == resource.c.resource_key)
        .where(
            resource.c.resource_type == "Location", resource.c.deleted.is_(False), access.condition(resource)
        )
    )
    found = [
        (str(row[0]), distance_km(lat, lon, float(row[1]), float(row[2])))
        for row in conn.execute(statement).all()
    ]
    return sorted((item for item in found if item[1] <= km), key=lambda item: item[1])


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
    """Active PractitionerRoles at Locations within `km`, nearest first, at most `count`."""
    places = locations_near(conn, lat, lon, km, access)
    found: list[NearRole] = []
    for start in range(0, len(places), _CHUNK):
        chunk = places[start : start + _CHUNK]
        distances = dict(chunk)
        refs = ",".join(f"Location/{id_}" for id_, _ in chunk)
        after = None
        while True:
            page, after, _ = store.search_page(
                conn,
                "PractitionerRole",
                [("location", refs), ("active", "true"), *criteria],
                access,
                count=500,
                after=after,
                strict=True,
            )
            for version in page:
                place = next(
                    (
                        r["reference"][9:]
                        for r in version.resource.get("location", ())
                        if r.get("reference", "")[9:] in distances
                    ),
                    "",
                )
                found.append(NearRole(version, place, distances.get(place, km)))
            if after is None:
                break
        if len(found) >= count:  # chunks come nearest first: later ones cannot be nearer
            break
    found.sort(key=lambda r: (r.distance_km, r.role.id))
    return found[:count]
