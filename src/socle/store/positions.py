"""Location positions and the R4 `near` search (search.html#special, Location `near`).

`Location?near=48.85|2.35|10|km` finds Locations whose `position` (WGS 84) lies within 10 km of
that point: `latitude|longitude[|distance[|units]]`, units UCUM `km` (the default), `m`, `[mi_i]`
(or `mi_i`); without a distance, `DEFAULT_KM`. Several values are OR-ed.

Storage: `idx_position`, one row per Location with a position, written and removed in the resource's
transaction through `socle.store.index_hooks` (the write path's registry for extra indexes), and
backfilled for existing Locations by migration 0013. Each row keeps the latitude and longitude
(degrees) and the point's unit vector (x, y, z) on the sphere.

Query: a bounding box on (latitude, longitude), served by the index on those columns, prefilters;
then the exact great-circle test, in plain arithmetic both databases have: the angle between two
points is at most d/R exactly when the dot product of their unit vectors is at least cos(d/R).
Results are not sorted by distance (R4 leaves it to `_sort`, which has no distance key).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Connection,
    Double,
    Index,
    Table,
    and_,
    delete,
    insert,
    or_,
)

from socle.fhir.errors import Invalid
from socle.store import index_hooks
from socle.store.schema import metadata

__all__ = ["DEFAULT_KM", "MAX_KM", "idx_position", "near_condition", "position_row", "write_positions"]

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)
DEFAULT_KM = 5.0
MAX_KM = 20_000.0
_UNITS = {"km": 1.0, "m": 0.001, "[mi_i]": 1.609344, "mi_i": 1.609344, "[mi_us]": 1.609347}

idx_position = Table(
    "idx_position",
    metadata,
    Column("resource_key", BigInteger, primary_key=True, autoincrement=False),
    Column("latitude", Double, nullable=False),
    Column("longitude", Double, nullable=False),
    Column("x", Double, nullable=False),
    Column("y", Double, nullable=False),
    Column("z", Double, nullable=False),
    sqlite_with_rowid=False,
)
Index(
    "ix_idx_position_latitude_longitude",
    idx_position.c.latitude,
    idx_position.c.longitude,
    idx_position.c.x,
    idx_position.c.y,
    idx_position.c.z,
)


def position_row(key: int, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The idx_position row of a Location, or None without a valid position."""
    position = body.get("position")
    if not isinstance(position, Mapping):
        return None
    lat, lon = position.get("latitude"), position.get("longitude")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon)):
        return None
    assert isinstance(lat, int | float) and isinstance(lon, int | float)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    x, y, z = _unit(lat, lon)
    return {"resource_key": key, "latitude": float(lat), "longitude": float(lon), "x": x, "y": y, "z": z}


def write_positions(conn: Connection, items: Sequence[index_hooks.IndexItem]) -> None:
    rows = [row for key, _, _, body in items if (row := position_row(key, body)) is not None]
    if rows:
        conn.execute(insert(idx_position), rows)


def delete_positions(conn: Connection, keys: Sequence[int]) -> None:
    conn.execute(delete(idx_position).where(idx_position.c.resource_key.in_(list(keys))))


index_hooks.register(("Location",), write_positions, delete_positions)


def near_condition(values: Sequence[str]) -> Any:
    """A condition on idx_position rows: within the distance of any of `values` (`lat|lon[|d[|u]]`)."""
    table = idx_position
    parts: list[ColumnElement[bool]] = []
    for text in values:
        lat, lon, km = _parse(text)
        angle = km / EARTH_RADIUS_KM
        if angle >= math.pi:
            parts.append(table.c.latitude.is_not(None))  # the whole sphere
            continue
        x, y, z = _unit(lat, lon)
        box = _box(lat, lon, angle)
        exact = table.c.x * x + table.c.y * y + table.c.z * z >= math.cos(angle) - 1e-12
        parts.append(and_(box, exact))
    return or_(*parts)


def _parse(text: str) -> tuple[float, float, float]:
    fields = text.split("|")
    if len(fields) > 4:
        raise Invalid(f"near={text!r}: use latitude|longitude|distance|units")
    try:
        lat, lon = float(fields[0]), float(fields[1])
        distance = float(fields[2]) if len(fields) > 2 and fields[2] else None
    except (ValueError, IndexError):
        raise Invalid(f"near={text!r}: use latitude|longitude|distance|units (numbers)") from None
    units = fields[3] if len(fields) > 3 and fields[3] else "km"
    if units not in _UNITS:
        raise Invalid(f"near={text!r}: units {units!r} is not one of km, m, [mi_i]")
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise Invalid(f"near={text!r}: latitude must be in [-90, 90] and longitude in [-180, 180]")
    km = DEFAULT_KM if distance is None else distance * _UNITS[units]
    if not (math.isfinite(km) and 0 <= km <= MAX_KM):
        raise Invalid(f"near={text!r}: the distance must be between 0 and {MAX_KM:g} km")
    return lat, lon, km


def _unit(lat: float, lon: float) -> tuple[float, float, float]:
    phi, lam = math.radians(lat), math.radians(lon)
    return math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi)


def _box(lat: float, lon: float, angle: float) -> Any:
    """Latitude band (and longitude span, unless it reaches a pole or wraps around ±180°)."""
    table = idx_position
    delta = math.degrees(angle)
    low, high = lat - delta, lat + delta
    band = and_(table.c.latitude >= max(low, -90.0), table.c.latitude <= min(high, 90.0))
    if low <= -90 or high >= 90:
        return band
    span = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(math.radians(lat)))))
    west, east = lon - span, lon + span
    if west < -180 or east > 180:
        return band
    return and_(band, table.c.longitude >= west, table.c.longitude <= east)
