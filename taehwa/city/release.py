"""Releasing a cross-company aggregate without exposing a company: the one gate every city figure passes.

- **k-anonymity**: an aggregate is released only when at least k companies (the city's policy, default 3)
  contribute to it; fewer is refused without saying how many.
- **Differencing refused, for any combination of releases**: every set of companies (cohort) an aggregate of a
  figure was released over is kept. Whatever unions, intersections and differences of released cohorts an
  analyst forms, the result is a union of their Venn cells (the companies that are in exactly the same released
  cohorts), so no release may cut a cell into a piece of 1 to k − 1 companies, or add as many companies that no
  released cohort holds. "Mipo" minus "Mipo without X" isolates X; so do {X, a, b}, {a, c, d} and {b, e, f}, no
  two of which differ by fewer than 3, and x alone in A ∩ B ∩ C.
- **Churn of fewer than k companies does not block a figure for good**: when the contributors of a group changed
  since a release (a company opted out, one joined), the figure is released over the largest part of them that
  cuts no cell below k (complementary suppression, as statistical offices do): a cell is taken whole, or cut into
  pieces of at least k each (the companies kept picked by a fixed order of their names, never by their values),
  and companies no released cohort holds join once there are k of them. Asking again with the same contributors
  gives the same cohort, so time (release periods) opens no new difference; the answer says how many were held out.
- **What is released**: without noise, the **mean** over the released cohort — never a median or a quartile,
  which is one company's own value (the median of an odd count, the quartiles of most counts) and, being picked by
  rank, can be differenced across cohorts the cell rule keeps apart; the mean of a cohort is a sum over its cells,
  and every sum the released means combine to is a sum over whole cells of at least k companies. It needs three
  companies at least (two companies' mean tells each the other's figure). Companies whose figures are all equal,
  or all at a bound, are told apart by nothing but noise.
- **Differential privacy** (optional, OpenDP): the median and quartiles, each picked from a grid over the
  figure's bounds by the exponential mechanism (`then_quantile_score_candidates` → `then_noisy_max`) with ε/3
  each, neighbouring datasets differing by one company. The same inputs get the same noised answer again, so
  asking twice spends no further ε; the ε spent on each set of companies is kept.

Every release and every refusal is written to the city's audit log with the inputs' count and the privacy setting.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, insert, select, update
from typing_extensions import TypedDict

from taehwa.city.records import PrivacyRecord, Release, ReleasedCohort
from taehwa.core.errors import Forbidden
from taehwa.db import city_releases

if TYPE_CHECKING:
    from taehwa.city.policy import Privacy
    from taehwa.tenancy.audit import AuditLog

GRID = 201  # candidate values of a noised quantile between the figure's bounds
QUANTILES = (0.25, 0.5, 0.75)
MIN_EXACT = 3  # the fewest companies an exact mean is released over (of two, each learns the other's figure)
RULE = "mean-v2"  # what an exact answer is; part of the inputs' hash, so an answer kept under an older rule is redone


class _Answer(TypedDict):
    """What a release answers and keeps for the same inputs: the statistic, and the hash of the inputs it was
    made from."""

    statistic: str
    value: float
    p25: float | None
    p75: float | None
    inputs: str


class Refused(Forbidden):
    """An aggregate the city may not see (too few companies, or a differencing pattern)."""


@dataclass(frozen=True)
class Figure:
    """What the gate needs to know about a figure: its name, bounds and whether it is sensitive."""

    name: str
    low: float
    high: float
    sensitive: bool


def members_key(members: list[str]) -> str:
    """A set of companies as a fixed-length key."""
    return hashlib.sha256("\n".join(sorted(members)).encode()).hexdigest()


def dp_quantiles(values: list[float], low: float, high: float, epsilon: float) -> list[float]:
    """The quartiles of bounded values under ε-differential privacy (ε/3 each; OpenDP's exponential mechanism)."""
    import opendp.prelude as dp  # a few seconds to import: only when noise is asked for

    dp.enable_features("contrib")
    candidates = [low + (high - low) * i / (GRID - 1) for i in range(GRID)]
    space = dp.vector_domain(dp.atom_domain(bounds=(low, high), nan=False)), dp.symmetric_distance()
    clamped = [min(high, max(low, v)) for v in values]
    out = []
    for q in QUANTILES:

        def make(scale: float, q: float = q) -> Any:
            return (
                space
                >> dp.t.then_quantile_score_candidates(candidates, alpha=q)
                >> dp.m.then_noisy_max(dp.max_divergence(), scale=scale, negate=True)
            )

        scale = dp.binary_search_param(make, d_in=1, d_out=epsilon / len(QUANTILES), T=float)
        out.append(candidates[make(scale)(clamped)])
    return sorted(out)


def singles_out(released: list[set[str]], cohort: set[str], k: int) -> tuple[int, ...] | None:
    """Whether releasing over `cohort` after `released` would let fewer than k companies be singled out.

    The companies in exactly the same released cohorts form a Venn cell; every set that unions, intersections and
    differences of the cohorts express is a union of cells, so a cell of 1 to k − 1 companies is one an analyst can
    isolate. Only the cells the new cohort cuts in two are checked, and the piece of it that no released cohort
    holds: a cell it leaves whole tells nothing new (nor does one small before, from releases under an older rule).
    Returns the indices of the released cohorts holding the smallest such piece (empty for the piece outside them
    all), or None when the release singles out no one.
    """
    cells = _cells(released)
    pieces = [(sig, len(cell & cohort), len(cell - cohort)) for sig, cell in cells.items()]
    small = [(n, sig) for sig, a, b in pieces if a and b for n in (a, b) if n < k]
    outside = len(cohort.difference(*cells.values()))
    if 0 < outside < k:
        small.append((outside, ()))
    return min(small)[1] if small else None


def _cells(released: list[set[str]]) -> dict[tuple[int, ...], set[str]]:
    """The released cohorts' Venn cells: companies by the indices of the cohorts that hold them."""
    inside: dict[str, list[int]] = {}
    for i, s in enumerate(released):
        for m in s:
            inside.setdefault(m, []).append(i)
    cells: dict[tuple[int, ...], set[str]] = {}
    for m, where in inside.items():
        cells.setdefault(tuple(where), set()).add(m)
    return cells


def _order(member: str) -> str:
    """A fixed order of companies, independent of their figures, for picking whom a release keeps."""
    return hashlib.sha256(member.encode()).hexdigest()


def releasable(released: list[set[str]], contributors: set[str], k: int) -> set[str]:
    """The largest part of `contributors` a figure may be released over after `released` without singling anyone
    out: each cell whole when all of it contributes, else cut into pieces of at least k (the kept ones by
    `_order`), or left out; the companies in no released cohort only when there are at least k of them."""
    cells = _cells(released)
    chosen: set[str] = set()
    for cell in cells.values():
        have = cell & contributors
        if have == cell:
            chosen |= cell
        elif (m := min(len(have), len(cell) - k)) >= k:
            chosen.update(sorted(have, key=_order)[:m])
    new = contributors.difference(*cells.values())
    if len(new) >= k:
        chosen |= new
    return chosen


class ReleaseGate:
    """Checks, answers and records every release of a cross-company aggregate."""

    def __init__(self, engine: Engine, audit: AuditLog, city: str) -> None:
        """`city`: the tenant whose audit log records the releases."""
        self._engine, self._audit, self.city = engine, audit, city
        self._lock = threading.Lock()  # the check and the record of a release are one step

    def released(self, figure: str) -> list[ReleasedCohort]:
        """The sets of companies a figure was released over, with the groups and ε spent on each."""
        with self._engine.connect() as c:
            rows = c.execute(select(city_releases).where(city_releases.c.figure == figure)).all()
        return [
            {
                "members": list(r.members),
                "groups": list(r.groups),
                "releases": r.releases,
                "epsilon_spent": r.epsilon_spent,
                "first_at": r.first_at,
                "last_at": r.last_at,
            }
            for r in rows
        ]

    def release(self, figure: Figure, group: str, values: dict[str, float], privacy: Privacy, *, by: str) -> Release:
        """The aggregate of one figure over one group of companies (`values`: company → its figure), or Refused."""
        members = sorted(values)
        setting: PrivacyRecord = {**privacy.to_dict(), "epsilon": privacy.for_figure(figure.sensitive)}
        setting["dp"] = setting["epsilon"] is not None
        with self._lock:
            if len(members) < privacy.k:
                self._refuse(
                    figure,
                    group,
                    None,
                    setting,
                    by,  # how many fewer is not said, even here
                    f"fewer than {privacy.k} companies contribute to {figure.name} for {group}; the city "
                    f"sees an aggregate only when at least {privacy.k} do",
                )
            mine = set(members)
            with self._engine.connect() as c:
                rows = c.execute(select(city_releases).where(city_releases.c.figure == figure.name)).all()
            released = [set(r.members) for r in rows]
            kept = mine if any(s == mine for s in released) else releasable(released, mine, privacy.k)
            if len(kept) < privacy.k or singles_out(released, kept, privacy.k) is not None:
                cut = singles_out(released, mine, privacy.k) or ()
                near = [rows[i] for i in cut] or [r for r in rows if mine & set(r.members)]
                named = ", ".join(g for r in near[:3] for g in r.groups[:1])
                self._refuse(
                    figure,
                    group,
                    len(members),
                    setting,
                    by,
                    f"{figure.name} for {group}, set against the aggregates already released ({named}), would "
                    f"single out fewer than {privacy.k} companies by overlaps and differences, which could reveal "
                    "a company's figure (a differencing attack), and no part of it of at least "
                    f"{privacy.k} companies avoids that; it is released again once at least {privacy.k} "
                    "companies have joined or left it",
                )
            if setting["epsilon"] is None and len(kept) < MIN_EXACT:
                self._refuse(
                    figure,
                    group,
                    len(kept),
                    setting,
                    by,
                    f"{figure.name} for {group} would be the exact mean of two companies, which tells each of "
                    "them the other's figure; the city releases it over two only with noise (its policy's ε)",
                )
            members = sorted(kept)
            values = {m: values[m] for m in members}
            key = members_key(members)
            same = next((r for r in rows if r.members_key == key), None)
            answer, spent = self._answer(figure, values, setting, same)
            now = datetime.now(UTC)
            with self._engine.begin() as c:
                if same is None:
                    c.execute(
                        insert(city_releases).values(
                            figure=figure.name,
                            members_key=key,
                            members=members,
                            groups=[group],
                            releases=1,
                            epsilon_spent=spent,
                            last=answer,
                            first_at=now,
                            last_at=now,
                        )
                    )
                else:
                    groups = list(same.groups) if group in same.groups else [*same.groups, group][-50:]
                    c.execute(
                        update(city_releases)
                        .where((city_releases.c.figure == figure.name) & (city_releases.c.members_key == key))
                        .values(
                            groups=groups,
                            releases=same.releases + 1,
                            epsilon_spent=same.epsilon_spent + spent,
                            last=answer,
                            last_at=now,
                        )
                    )
        held_out = len(mine) - len(members)
        self._audit.append(
            "city.release",
            tenant=self.city,
            target=f"{figure.name} for {group}",
            after={"by": by, "inputs": len(members), "held_out": held_out, "privacy": setting, "epsilon_spent": spent},
        )
        return {
            "figure": figure.name,
            "group": group,
            "companies": len(members),
            "held_out": held_out,
            "statistic": answer["statistic"],
            "value": answer["value"],
            "p25": answer["p25"],
            "p75": answer["p75"],
            "privacy": setting,
        }

    def _answer(
        self, figure: Figure, values: dict[str, float], setting: PrivacyRecord, same: Any
    ) -> tuple[_Answer, float]:
        """The mean (exact) or the noised median and quartiles, and the ε spent; a kept answer for the same inputs."""
        ordered = sorted(values.values())
        epsilon = setting["epsilon"]
        inputs = hashlib.sha256(json.dumps([round(v, 9) for v in ordered] + [epsilon, RULE]).encode()).hexdigest()
        if same is not None and same.last and same.last.get("inputs") == inputs:
            return cast(_Answer, dict(same.last)), 0.0  # the same inputs and setting: the same answer, no further ε
        if epsilon is None:
            mean = round(math.fsum(ordered) / len(ordered), 6)
            return {"statistic": "mean", "value": mean, "p25": None, "p75": None, "inputs": inputs}, 0.0
        p25, p50, p75 = dp_quantiles(ordered, figure.low, figure.high, epsilon)
        return {
            "statistic": "median",
            "value": round(p50, 6),
            "p25": round(p25, 6),
            "p75": round(p75, 6),
            "inputs": inputs,
        }, float(epsilon)

    def _refuse(self, figure: Figure, group: str, n: int | None, setting: PrivacyRecord, by: str, why: str) -> None:
        self._audit.append(
            "city.refused",
            tenant=self.city,
            target=f"{figure.name} for {group}",
            after={
                "by": by,
                "inputs": n if n is not None else f"fewer than {setting['k']}",
                "privacy": setting,
                "reason": why.split(";")[0],
            },
        )
        raise Refused(why, where="group")
