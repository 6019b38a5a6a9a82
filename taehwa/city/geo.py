"""The city's map, offline: district boundaries from the vendored GeoJSON (see `boundaries_extract`) projected once
into SVG path data, and a projection that places complexes, infrastructure and sites in the same frame. No tiles,
no map server: the page draws what this module answers."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
DISTRICTS_FILE = DATA / "ulsan-districts.geojson"
WIDTH = 1000.0  # the SVG view box is WIDTH wide; its height follows the boundaries' aspect
PAD = 0.01  # degrees kept around the boundaries


@dataclass(frozen=True)
class Frame:
    """An equirectangular projection fitted to a bounding box (good to metres at a city's size)."""

    west: float
    south: float
    east: float
    north: float

    @property
    def kx(self) -> float:
        """Degrees of longitude are shorter than degrees of latitude by cos(latitude)."""
        return math.cos(math.radians((self.south + self.north) / 2))

    @property
    def scale(self) -> float:
        return WIDTH / ((self.east - self.west) * self.kx)

    @property
    def height(self) -> float:
        return round((self.north - self.south) * self.scale, 1)

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        """SVG coordinates of a point."""
        return (round((lon - self.west) * self.kx * self.scale, 1), round((self.north - lat) * self.scale, 1))

    def contains(self, lon: float, lat: float) -> bool:
        """Whether a point lies within the frame (a site placed elsewhere is listed, not drawn)."""
        return self.west <= lon <= self.east and self.south <= lat <= self.north

    def km(self, km: float) -> float:
        """A distance in kilometres as SVG units."""
        return round(km / 111.32 * self.scale, 1)


def _rings(geometry: dict[str, Any]) -> list[list[list[float]]]:
    kind, coords = geometry.get("type"), geometry.get("coordinates") or []
    if kind == "Polygon":
        return list(coords)
    if kind == "MultiPolygon":
        return [ring for poly in coords for ring in poly]
    raise ValueError(f"unsupported geometry {kind!r}")


@cache
def districts() -> tuple[Frame, tuple[dict[str, Any], ...]]:
    """The frame and each district with its SVG path, label point and names (read and projected once)."""
    doc = json.loads(DISTRICTS_FILE.read_text(encoding="utf-8"))
    feats = doc["features"]
    pts = [p for f in feats for ring in _rings(f["geometry"]) for p in ring]
    frame = Frame(
        min(p[0] for p in pts) - PAD,
        min(p[1] for p in pts) - PAD,
        max(p[0] for p in pts) + PAD,
        max(p[1] for p in pts) + PAD,
    )
    out = []
    for f in feats:
        parts = []
        ring_pts: list[tuple[float, float]] = []
        for ring in _rings(f["geometry"]):
            xy = [frame.xy(x, y) for x, y in ring]
            ring_pts += xy
            parts.append("M" + "L".join(f"{x:g},{y:g}" for x, y in xy) + "Z")
        cx = sum(p[0] for p in ring_pts) / len(ring_pts)
        cy = sum(p[1] for p in ring_pts) / len(ring_pts)
        props = f["properties"]
        out.append(
            {
                "code": str(props["code"]),
                "name_ko": props["name_ko"],
                "name_en": props["name_en"],
                "path": "".join(parts),
                "label": [round(cx, 1), round(cy, 1)],
            }
        )
    return frame, tuple(out)


def source_note() -> str:
    """Where the boundaries come from and under what terms (shown under the map)."""
    return str(json.loads(DISTRICTS_FILE.read_text(encoding="utf-8")).get("source", ""))
