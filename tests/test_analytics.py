"""Calculated signals: the expression language (parse errors, names, units, cycles, hostile sizes), live computation
through the historian's real write path, backfill equal to live on the same data, late inputs recomputed, division by
zero as a bad-quality point, children's aggregates and windows, lineage, and the twin's live state."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pytest

from taehwa.analytics.expr import parse
from taehwa.core.errors import InvalidInput, ValidationFailed
from taehwa.core.timeutil import from_us
from taehwa.server.platform import Platform

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs

PLANT = """\
types:
  Pump:
    attributes: {rated_power: {type: number, unit: kW, default: 2}}
    sensors:
      flow: {unit: m3/h, interval: 1s, range: [0, 100]}
      head: {unit: m, interval: 1s}
      power: {unit: kW, interval: 1s}
    derived:
      efficiency: {expr: "flow * head * 9.81 / (power * 1000)", unit: "1",
                   limits: {low_warning: 0.001}}
      load: {expr: "power / rated_power", unit: "1"}
      avg_flow: {expr: "rolling_mean(flow, 10s)", unit: m3/h}
      flow_volume: {expr: "integral(flow, 5s)"}
      running_s: {expr: "time_in_state(flow > 5, 20s)", unit: s}
      flow_rise: {expr: "rate(flow, 3s)"}
      peak: {expr: "rolling_max(flow, 7s)", unit: m3/h}
      eff_pct: {expr: "efficiency * 100"}
    events:
      running: {start: "flow > 5 for 3s", end: "flow <= 5", max_duration: 1h, stats: [flow, power]}
      surge: {start: "power > power.high_warning", max_duration: 10s, stats: [power]}
  PumpLine:
    level: line
    derived:
      throughput: {expr: "sum(children(Pump).flow)", unit: m3/h}
      pumps_on: {expr: "count(children(Pump).flow)"}
      best: {expr: "max(children(Pump).efficiency)", unit: "1"}
assets:
  - id: site
    type: Site
    children:
      - id: line
        type: PumpLine
        children:
          - id: p1
            type: Pump
            attributes: {rated_power: 4}
            tags: {flow: raw/p1/flow, head: raw/p1/head, power: raw/p1/power}
            limits: {power: {high_warning: 11}}
          - id: p2
            type: Pump
            tags: {flow: raw/p2/flow, head: raw/p2/head, power: raw/p2/power}
"""
P1, P2, LINE = "site/line/p1", "site/line/p2", "site/line"


def points(tag: str, times_s: np.ndarray, values: np.ndarray, quality: int = 0) -> pa.Table:
    n = len(times_s)
    return pa.table(
        {
            "tag": [tag] * n,
            "time": pa.array((T0 + (np.asarray(times_s) * 1e6).astype(np.int64)), pa.int64()).cast(pa.timestamp("us")),
            "value": pa.array(np.asarray(values, float)),
            "quality": pa.array([quality] * n, pa.uint8()),
        }
    )


def data(n: int = 120, seed: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    flow = np.where((t % 40) < 25, 20 + rng.normal(0, 1, n), 1.0)
    power = 5 + 0.2 * flow + rng.normal(0, 0.1, n)
    power[50] = 0.0  # a division by zero for efficiency
    power[70:74] = 12.0  # a surge over p1's high warning
    out = {"raw/p1/flow": (t, flow), "raw/p1/head": (t, 30 + rng.normal(0, 1, n)), "raw/p1/power": (t, power)}
    out["raw/p2/flow"] = (t[::2], 10 + rng.normal(0, 1, n)[::2])  # p2 runs at half the rate
    out["raw/p2/head"] = (t[::2], 25 + rng.normal(0, 1, n)[::2])
    out["raw/p2/power"] = (t[::2], 4 + rng.normal(0, 0.1, n)[::2])
    return out


@pytest.fixture
def plat(platform: Platform) -> Platform:
    platform.twin.load("acme", PLANT)
    assert platform.analytics.live is not None
    platform.analytics.live.refresh(force=True)
    return platform


def feed(
    p: Platform, series: dict[str, tuple[np.ndarray, np.ndarray]], lo: float, hi: float, by_tag: bool = True
) -> None:
    """Write the points with time in [lo, hi), one write per tag (or one write for all), and let analytics run."""
    tables = []
    for tag, (t, v) in series.items():
        m = (t >= lo) & (t < hi)
        if m.any():
            tables.append(points(tag, t[m], v[m]))
    if by_tag:
        for table in tables:
            p.historian.write_checked("acme", table)
    else:
        p.historian.write_checked("acme", pa.concat_tables(tables))
    assert p.analytics.live is not None
    p.analytics.live.drain()


def read(p: Platform, tag: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = p.historian.read("acme", tag, from_us(T0 - 10**9), from_us(T0 + 10**10))
    return (
        (t.column("time").cast(pa.timestamp("us")).cast(pa.int64()).to_numpy() - T0) / 1e6,
        t.column("value").to_numpy(),
        t.column("quality").to_numpy(),
    )


# -- the language --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("flow *", "ends too soon"),
        ("flow $ 2", "unexpected character '$' at column 6"),
        ("flow head", "unexpected 'head' at column 6"),
        ("(" * 40 + "x" + ")" * 40, "deeper than 32"),
        ("x + " * 600 + "x", "characters long"),
        ("-" * 30 + "x", "signs or 'not's in a row"),
        ("not " * 30 + "x", "signs or 'not's in a row"),
        ("flow > 5 for 60s", "belong in event conditions"),
        ("", "empty"),
    ],
)
def test_expressions_that_do_not_parse_say_where(text: str, message: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace("$", r"\$")):
        parse(text)
    assert time.perf_counter() - t0 < 0.5  # hostile sizes are refused cheaply


def test_conditions_parse() -> None:
    assert parse("discharge_pressure > high_warning for 60s", condition=True).us == 60_000_000  # type: ignore[attr-defined]
    assert parse("state changes to 0", condition=True) is not None
    assert parse("2^2^2^2^2^2^2^2^2^2^2^2^2^2^2^2^2^2^2^2") is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('expr: "flow * head * 9.81 / (power * 1000)"', 'expr: "flow * hed"'),
        ('unit: "1",\n', 'unit: "kW",\n'),
        ('expr: "power / rated_power"', 'expr: "power + flow"'),
        ('expr: "efficiency * 100"', 'expr: "eff_pct * 100"'),
        ('expr: "rolling_mean(flow, 10s)"', 'expr: "rolling_mean(flow)"'),
        ('expr: "sum(children(Pump).flow)"', 'expr: "sum(children(Pmp).flow)"'),
        ('"flow > 5 for 3s"', '"flow > 5 for 3s and nothing"'),
        ("max_duration: 1h", "max_duration: forever"),
    ],
)
def test_plant_file_problems_are_refused_with_file_and_line(platform: Platform, change: str, message: str) -> None:
    bad = PLANT.replace(change, message)
    assert bad != PLANT
    with pytest.raises(ValidationFailed) as exc:
        platform.twin.load("acme", bad, source="pumps.yaml")
    wheres = [w for w, _ in exc.value.problems]
    assert any(w.startswith("pumps.yaml, line ") for w in wheres), exc.value.problems
    assert platform.twin.plant("acme").assets == {}  # nothing applied


def test_problem_messages(platform: Platform) -> None:
    def problems(old: str, new: str) -> str:
        with pytest.raises(ValidationFailed) as exc:
            platform.twin.load("acme", PLANT.replace(old, new))
        return " | ".join(f"{w}: {p}" for w, p in exc.value.problems)

    assert "unknown name 'hed' at column 8" in problems('"flow * head * 9.81', '"flow * hed * 9.81')
    assert "plant.yaml, line 9 (Pump.efficiency)" in problems('"flow * head * 9.81', '"flow * hed * 9.81')
    assert "adds kW and m^3/h" in problems('"power / rated_power"', '"power + flow"')
    assert "declared in 'kW' but its expression gives" in problems(
        'avg_flow: {expr: "rolling_mean(flow, 10s)", unit: m3/h}',
        'avg_flow: {expr: "rolling_mean(flow, 10s)", unit: kW}',
    )
    assert "form a cycle: Pump.eff_pct → Pump.eff_pct" in problems('"efficiency * 100"', '"eff_pct * 100"')


def test_a_cycle_between_two_signals(platform: Platform) -> None:
    plant = PLANT.replace('"power / rated_power"', '"eff_pct / 2"').replace('"efficiency * 100"', '"load * 100"')
    with pytest.raises(ValidationFailed, match=r"cycle: Pump\.(load|eff_pct) → Pump\.(eff_pct|load) → "):
        platform.twin.load("acme", plant)


# -- live and backfill ------------------------------------------------------------------------------------------
def test_rows_of_many_assets_at_once_equal_each_assets_union() -> None:
    """The live step's rows for all its assets in one pass (union_rows) against union_times asset by asset: inputs
    sampled apart or together, empty ones, negative times, no lower bound, bounds below or above every point."""
    from taehwa.analytics.compute import Rows, union_rows, union_times

    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        inputs, lo, hi = [], [], []
        for _ in range(n):
            series = []
            for _ in range(int(rng.integers(0, 4))):
                t = np.unique(rng.integers(-5, 30, int(rng.integers(0, 10)))).astype(np.int64)
                series.append((t, np.zeros(len(t)), np.zeros(len(t), np.uint8)))
            inputs.append(series)
            lo.append(None if rng.random() < 0.3 else int(rng.integers(-3, 20)))
            hi.append(int(rng.integers(-3, 35)))
        assets = [f"a{i}" for i in range(n)]
        want = Rows.of(assets, [union_times(s, a, b) for s, a, b in zip(inputs, lo, hi, strict=True)])
        got = union_rows(assets, inputs, lo, hi)
        assert got.assets == want.assets
        for name in ("t", "inst", "bounds"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name
            assert getattr(got, name).dtype == np.int64, name


def test_live_through_the_write_path_equals_backfill(plat: Platform) -> None:
    series = data()
    for lo in range(0, 120, 7):  # many writes, one per tag, tags arriving one after another
        feed(plat, series, lo, lo + 7)
    live = {
        s: read(plat, f"{P1}/{s}")
        for s in ("efficiency", "avg_flow", "flow_volume", "running_s", "flow_rise", "peak", "load")
    }
    live_line = {s: read(plat, f"{LINE}/{s}") for s in ("throughput", "pumps_on", "best")}
    t, v, q = live["efficiency"]
    assert len(t) == 120  # one point for each time an input changed, none lost
    assert q[50] == 2 and v[50] == 0.0  # power 0: a bad-quality point, not a crash
    assert (q[np.arange(len(q)) != 50] == 0).all()
    assert read(plat, f"{P2}/efficiency")[0].tolist() == list(range(0, 120, 2))  # p2 at its own rate
    power = np.where(series["raw/p1/power"][1] == 0, np.nan, series["raw/p1/power"][1])
    expected = series["raw/p1/flow"][1] * series["raw/p1/head"][1] * 9.81 / (power * 1000)
    ok = np.arange(120) != 50
    assert np.allclose(v[ok], expected[ok])
    tl, vl, _ = live_line["throughput"]
    assert len(tl) == 119  # the line waits for both pumps: p2's last point is at 118 s
    p2_flow = np.repeat(series["raw/p2/flow"][1], 2)[:119]  # p2's value in force at each second
    assert np.allclose(vl[1:], (series["raw/p1/flow"][1][:119] + p2_flow)[1:])

    _tw, vw, _ = live["avg_flow"]  # rolling mean over (t - 10 s, t]
    f = series["raw/p1/flow"][1]
    assert np.isclose(vw[30], f[21:31].mean())
    _, vi, _ = live["flow_volume"]  # integral over the last 5 s of the held value
    assert np.isclose(vi[30], f[25:30].sum())
    _, vr, _ = live["running_s"]
    assert np.isclose(vr[30], (f[10:30] > 5).sum())
    _, vp, _ = live["peak"]
    assert np.isclose(vp[30], f[24:31].max())
    _, vd, _ = live["flow_rise"]
    assert np.isclose(vd[30], (f[30] - f[27]) / 3)

    # the same range recomputed from the historian (overwriting what live wrote): equal to what live computed
    report = plat.analytics.backfill("acme", from_us(T0), from_us(T0 + 120_000_000))
    assert report["points"] > 0 and report["bad_points"] >= 1
    for tag, (t_live, v_live, q_live) in [
        *((f"{P1}/{s}", x) for s, x in live.items()),
        *((f"{LINE}/{s}", x) for s, x in live_line.items()),
    ]:
        tb, vb, qb = read(plat, tag)
        assert np.array_equal(tb, t_live) and np.array_equal(qb, q_live), tag
        assert np.allclose(vb, v_live, rtol=1e-9, atol=1e-9), tag


def test_one_write_or_many_give_the_same_points(platform: Platform) -> None:
    series = data()
    platform.twin.load("acme", PLANT)
    platform.twin.load("rival", PLANT)
    assert platform.analytics.live is not None
    platform.analytics.live.refresh(force=True)
    for lo in range(0, 120, 13):
        feed(platform, series, lo, lo + 13, by_tag=False)
    for lo in range(0, 120, 11):  # the other tenant: tag by tag, other write boundaries
        for tag, (t, v) in series.items():
            m = (t >= lo) & (t < lo + 11)
            platform.historian.write_checked("rival", points(tag, t[m], v[m]))
        platform.analytics.live.drain()
    for s in ("efficiency", "avg_flow", "peak"):
        a = platform.historian.read("acme", f"{P1}/{s}", from_us(T0), from_us(T0 + 10**9))
        b = platform.historian.read("rival", f"{P1}/{s}", from_us(T0), from_us(T0 + 10**9))
        assert a.column("time").equals(b.column("time")), s
        assert np.allclose(a.column("value").to_numpy(), b.column("value").to_numpy(), rtol=1e-9), s


def test_late_inputs_are_recomputed(plat: Platform) -> None:
    series = data()
    feed(plat, series, 0, 60)
    _t, v, _ = read(plat, f"{P1}/efficiency")
    before = v[20]
    flow = series["raw/p1/flow"][1]
    # a corrected flow value for second 20 arrives late
    plat.historian.write_checked("acme", points("raw/p1/flow", np.array([20.0]), np.array([flow[20] * 2])))
    assert plat.analytics.live is not None
    plat.analytics.live.drain()
    _t2, v2, _ = read(plat, f"{P1}/efficiency")
    assert np.isclose(v2[20], before * 2)
    _, avg, _ = read(plat, f"{P1}/avg_flow")  # windows that saw second 20 too
    fixed = flow.copy()
    fixed[20] *= 2
    assert np.isclose(avg[25], fixed[16:26].mean())


def test_lineage_and_the_twins_live_state(plat: Platform) -> None:
    feed(plat, data(), 0, 60)
    info = plat.historian.tag("acme", f"{P1}/efficiency")
    lineage = info.attributes["lineage"]
    assert lineage["expr"] == "flow * head * 9.81 / (power * 1000)"
    assert set(lineage["inputs"]) == {"raw/p1/flow", "raw/p1/head", "raw/p1/power"}
    assert lineage["version"] and info.unit == "1"
    assert plat.analytics.lineage("acme", f"{P1}/efficiency")["version"] == lineage["version"]
    state = plat.twin.get("acme", P1)["live"]
    assert state is not None  # the live state is loaded
    eff = state["signals"]["efficiency"]
    assert eff["derived"] is True and eff["value"] is not None and eff["limit_state"] in ("normal", "warning")


def test_trying_an_expression_writes_nothing(plat: Platform) -> None:
    feed(plat, data(), 0, 30)
    got = plat.analytics.evaluate("acme", P1, "flow / power", from_us(T0), from_us(T0 + 30_000_000))
    assert len(got["points"]) == 30 and got["points"][0]["value"] is not None
    assert "raw/p1/flow" in got["inputs"]
    with pytest.raises(ValidationFailed, match="unknown name 'nope'"):
        plat.analytics.evaluate("acme", P1, "nope * 2", from_us(T0), from_us(T0 + 1_000_000))


def test_a_tenant_sees_only_its_own(plat: Platform) -> None:
    from taehwa.core.errors import Forbidden
    from taehwa.tenancy.access import Principal, acting_as

    outsider = Principal("mallory", roles={"rival": "tenant_admin"})
    with acting_as(outsider), pytest.raises(Forbidden):
        plat.analytics.calculations("acme")
