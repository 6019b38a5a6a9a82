"""Which assets a target takes in: one asset, every asset of a type (or of a type extending it), or a subtree.

Deployments and alert rules name their assets this way; this module is the one definition of what such a target
covers, so the scorer, the alert conditions and the pages that show "which model watches this asset" agree, and no
answer is cut at a page size: a target covers every asset that fits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taehwa.core.errors import InvalidInput, NotFound
from taehwa.twin.model import Plant


@dataclass(frozen=True)
class Target:
    """One asset, every asset of a type, or every asset under a path: exactly one of the three is given."""

    asset: str | None = None
    asset_type: str | None = None
    under: str | None = None

    @classmethod
    def of(cls, fields: dict[str, Any]) -> Target:
        """The target named by a deployment's or a rule's fields (other keys are ignored)."""
        return cls(
            asset=fields.get("asset") or None,
            asset_type=fields.get("asset_type") or None,
            under=fields.get("under") or None,
        )

    def check(self) -> None:
        """Refuse a target that names none or more than one of asset, asset_type and under."""
        given = [k for k in ("asset", "asset_type", "under") if getattr(self, k)]
        if len(given) != 1:
            raise InvalidInput("name exactly one target: asset, asset_type or under", where="target")

    def covers(self, plant: Plant, path: str) -> bool:
        """Whether the asset at `path` is one this target takes in."""
        if self.asset is not None:
            return path == self.asset
        if self.under is not None:
            return path == self.under or path.startswith(self.under + "/")
        if self.asset_type is not None and path in plant.assets:
            kind = plant.types.get(plant.assets[path].type)
            return kind is not None and kind.is_a(self.asset_type)
        return False

    def paths(self, plant: Plant) -> list[str]:
        """Every asset of `plant` this target takes in, sorted by path (parents before children); all of them.

        A target naming an asset, a type or a subtree root the plant does not hold is refused (NotFound, with
        where `target.asset`, `target.asset_type` or `target.under`), not answered with nothing."""
        self.check()
        if self.asset is not None and self.asset not in plant.assets:
            raise NotFound(f"no asset {self.asset!r}", where="target.asset")
        if self.asset_type is not None and self.asset_type not in plant.types:
            raise NotFound(f"no asset type {self.asset_type!r}", where="target.asset_type")
        if self.under is not None and self.under not in plant.assets:
            raise NotFound(f"no asset {self.under!r}", where="target.under")
        if self.asset is not None:
            return [self.asset]
        return sorted(p for p in plant.assets if self.covers(plant, p))
