"""The demo plant, built on the real data sets in ../shared/data:

- `ulsan-refinery/reaction-unit`: the Tennessee Eastman process (Downs & Vogel 1993), its 41 measurements and 11
  manipulated variables bound to feeds, reactor, condenser, separator, compressor, purge and stripper;
- `ulsan-water/pump-station`: the SKAB water-circulation test bed (pump with motor, inlet and outlet valves, loop);
- `engine-shop/fleet-fd001`: the NASA C-MAPSS FD001 fleet, one turbofan engine per unit with 3 operating settings
  and 21 sensors.

Alarm and warning limits of the measured signals are set from each data set's normal operation (mean ± 4σ warning,
± 6σ alarm), as a process engineer would set first limits on a new unit; each `Source` says how its rows map to tags.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from taehwa.core.errors import NotFound

# where the demo's sites lie on the city's map (taehwa/demo/city.py) (WGS84) and what they are
DEMO_PLACES: dict[str, dict[str, Any]] = {
    "ulsan-refinery": {"latitude": 35.441, "longitude": 129.347, "complex": "onsan", "industry": "petrochemical"},
    "ulsan-water": {"latitude": 35.497, "longitude": 129.322, "complex": "mipo", "industry": "utilities"},
    "engine-shop": {"latitude": 35.531, "longitude": 129.384, "complex": "mipo", "industry": "machinery"},
}

# --- Tennessee Eastman: (column, asset, signal, unit, description) in XMEAS(1..41), XMV(1..11) order -----------
TEP_COLUMNS: list[tuple[str, str, str, str]] = [
    ("feed-a", "flow", "kscmh", "A feed (stream 1)"),
    ("feed-d", "flow", "kg/h", "D feed (stream 2)"),
    ("feed-e", "flow", "kg/h", "E feed (stream 3)"),
    ("feed-ac", "flow", "kscmh", "A and C feed (stream 4)"),
    ("compressor", "recycle_flow", "kscmh", "Recycle flow (stream 8)"),
    ("reactor", "feed_rate", "kscmh", "Reactor feed rate (stream 6)"),
    ("reactor", "pressure", "kPa", "Reactor pressure (gauge)"),
    ("reactor", "level", "%", "Reactor level"),
    ("reactor", "temperature", "degC", "Reactor temperature"),
    ("purge", "flow", "kscmh", "Purge rate (stream 9)"),
    ("separator", "temperature", "degC", "Product separator temperature"),
    ("separator", "level", "%", "Product separator level"),
    ("separator", "pressure", "kPa", "Product separator pressure (gauge)"),
    ("separator", "underflow", "m3/h", "Product separator underflow (stream 10)"),
    ("stripper", "level", "%", "Stripper level"),
    ("stripper", "pressure", "kPa", "Stripper pressure (gauge)"),
    ("stripper", "underflow", "m3/h", "Stripper underflow (stream 11)"),
    ("stripper", "temperature", "degC", "Stripper temperature"),
    ("stripper", "steam_flow", "kg/h", "Stripper steam flow"),
    ("compressor", "work", "kW", "Compressor work"),
    ("reactor", "cw_outlet_temperature", "degC", "Reactor cooling water outlet temperature"),
    ("condenser", "cw_outlet_temperature", "degC", "Separator cooling water outlet temperature"),
    *[("reactor", f"feed_{c}", "mol%", f"Reactor feed analysis, component {c.upper()}") for c in "abcdef"],
    *[("purge", f"gas_{c}", "mol%", f"Purge gas analysis, component {c.upper()}") for c in "abcdefgh"],
    *[("stripper", f"product_{c}", "mol%", f"Product analysis, component {c.upper()}") for c in "defgh"],
    ("feed-d", "valve", "%", "D feed flow valve"),
    ("feed-e", "valve", "%", "E feed flow valve"),
    ("feed-a", "valve", "%", "A feed flow valve"),
    ("feed-ac", "valve", "%", "A and C feed flow valve"),
    ("compressor", "recycle_valve", "%", "Compressor recycle valve"),
    ("purge", "valve", "%", "Purge valve"),
    ("separator", "liquid_valve", "%", "Separator pot liquid flow valve"),
    ("stripper", "product_valve", "%", "Stripper liquid product flow valve"),
    ("stripper", "steam_valve", "%", "Stripper steam valve"),
    ("reactor", "cw_valve", "%", "Reactor cooling water flow valve"),
    ("condenser", "cw_valve", "%", "Condenser cooling water flow valve"),
]
TEP_TYPES = {
    "feed-a": "GasFeed",
    "feed-d": "LiquidFeed",
    "feed-e": "LiquidFeed",
    "feed-ac": "GasFeed",
    "reactor": "Reactor",
    "condenser": "Condenser",
    "separator": "Separator",
    "compressor": "Compressor",
    "purge": "PurgeLine",
    "stripper": "Stripper",
}
TEP_FLOWS = [
    ("feed-a", "feeds", "reactor"),
    ("feed-d", "feeds", "reactor"),
    ("feed-e", "feeds", "reactor"),
    ("feed-ac", "feeds", "stripper"),
    ("reactor", "feeds", "condenser"),
    ("condenser", "feeds", "separator"),
    ("separator", "feeds", "stripper"),
    ("separator", "feeds", "purge"),
    ("separator", "recycles_to", "compressor"),
    ("compressor", "recycles_to", "reactor"),
    ("stripper", "recycles_to", "reactor"),
]

# --- SKAB: column → (asset, signal, unit) ---------------------------------------------------------------------
SKAB_COLUMNS: dict[str, tuple[str, str, str]] = {
    "Accelerometer1RMS": ("pump-1", "vibration_de", "g"),
    "Accelerometer2RMS": ("pump-1", "vibration_nde", "g"),
    "Current": ("pump-1/motor", "current", "A"),
    "Voltage": ("pump-1/motor", "voltage", "V"),
    "Temperature": ("pump-1/motor", "body_temperature", "degC"),
    "Pressure": ("pump-1", "discharge_pressure", "bar"),
    "Volume Flow RateRMS": ("pump-1", "flow", "L/min"),
    "Thermocouple": ("loop", "fluid_temperature", "degC"),
}

# --- C-MAPSS: settings and sensors of each engine (NASA's names) -------------------------------------------------
CMAPSS_SIGNALS = [
    "setting_1",
    "setting_2",
    "setting_3",
    "t2",
    "t24",
    "t30",
    "t50",
    "p2",
    "p15",
    "p30",
    "nf",
    "nc",
    "epr",
    "ps30",
    "phi",
    "nrf",
    "nrc",
    "bpr",
    "farb",
    "ht_bleed",
    "nf_dmd",
    "pcnfr_dmd",
    "w31",
    "w32",
]
CMAPSS_UNITS = {
    "t2": "degR",
    "t24": "degR",
    "t30": "degR",
    "t50": "degR",
    "p2": "psia",
    "p15": "psia",
    "p30": "psia",
    "nf": "rpm",
    "nc": "rpm",
    "ps30": "psia",
    "nrf": "rpm",
    "nrc": "rpm",
    "nf_dmd": "rpm",
    "w31": "lbm/s",
    "w32": "lbm/s",
    "phi": "pps/psi",
}
CMAPSS_ENGINES = 100


@dataclass
class Source:
    """A data set replayed as live data: rows of values, one tag per column, at a native interval."""

    name: str
    interval_s: float
    tags: list[str]
    runs: list[tuple[str, np.ndarray]] = field(default_factory=list)  # (run name, rows × tags), played in turn


MOTOR_POWER = {
    "expr": "voltage * current / 1000",
    "unit": "kW",
    "description": "Electric power drawn (voltage × current, single phase), calculated",
}


def pumped_site(motor_type: str) -> dict[str, Any]:
    """A site type whose power demand (the city map's) is the sum of its motors' calculated electric power."""
    return {
        "extends": "Site",
        "description": "A site whose power demand is metered at its pump motors.",
        "derived": {
            "power": {
                "expr": f"sum(descendants({motor_type}).electric_power)",
                "unit": "kW",
                "description": "Power demand: the sum of its pump motors' electric power, calculated",
            }
        },
    }


def _require(path: Path) -> Path:
    if not path.exists():
        raise NotFound(
            f"demo data not found: {path.name}; expected ../shared/data as described in the README", where=str(path)
        )
    return path


def _limits(values: np.ndarray) -> dict[str, float]:
    mean, std = float(np.nanmean(values)), float(np.nanstd(values))
    if not np.isfinite(std) or std <= 1e-9:
        return {}
    return {
        "low_alarm": round(mean - 6 * std, 6),
        "low_warning": round(mean - 4 * std, 6),
        "high_warning": round(mean + 4 * std, 6),
        "high_alarm": round(mean + 6 * std, 6),
    }


def _sensor(unit: str, description: str | None, interval: str, values: np.ndarray | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"unit": unit, "interval": interval}
    if description:
        spec["description"] = description
    if values is not None and (lim := _limits(values)):
        spec["limits"] = lim
    return spec


def _tep(shared: Path, types: dict[str, Any], sources: list[Source]) -> dict[str, Any]:
    root = shared / "tep"
    normal = np.loadtxt(_require(root / "d00.dat")).T  # stored transposed: 52 × 500
    prefix = "ulsan-refinery/reaction-unit"
    signals: dict[str, dict[str, Any]] = {}
    limits: dict[str, dict[str, Any]] = {}  # per asset: the four feeds share a type but not their limits
    for i, (asset, sig, unit, desc) in enumerate(TEP_COLUMNS):
        type_name = TEP_TYPES[asset]
        if type_name.endswith("Feed"):  # shared by two feeds: a general description
            desc = {"flow": "Feed flow", "valve": "Feed flow valve"}[sig]
        signals.setdefault(type_name, {})[sig] = _sensor(unit, desc, "3min", None)
        if lim := _limits(normal[:, i]):
            limits.setdefault(asset, {})[sig] = lim
    for type_name, sensors in signals.items():
        types[type_name] = {
            "extends": "ProcessUnit",
            "description": f"Tennessee Eastman unit: {type_name}",
            "sensors": sensors,
        }
    # analytics (taehwa.analytics): the reactor's pressure excursions over its own warning limit as event frames
    types["Reactor"]["events"] = {
        "excursion": {
            "start": "pressure > high_warning",
            "end": "pressure <= high_warning",
            "max_duration": "1d",
            "stats": ["pressure", "temperature", "level", "cw_valve"],
            "description": "Reactor pressure over its high warning",
        }
    }
    types["ProcessUnit"] = {
        "extends": "Equipment",
        "description": "A unit operation of a chemical process.",
        "attributes": {"tag_number": {"type": "string"}},
        "derived": {
            "anomaly_score": {"limits": {"high_warning": 0.7, "high_alarm": 0.9}},
            "fault_class": {"description": "Diagnosed fault (0 = normal)"},
            "health": {"unit": "%"},
        },
    }
    runs = [("d00_te (normal)", np.loadtxt(_require(root / "d00_te.dat")))]
    for k in range(1, 22):
        runs.append((f"d{k:02d}_te (fault IDV({k}) from sample 161)", np.loadtxt(_require(root / f"d{k:02d}_te.dat"))))
    tags = [f"tep/{asset}/{sig}" for asset, sig, _, _ in TEP_COLUMNS]
    sources.append(Source("Tennessee Eastman reaction unit", 180.0, tags, runs))
    children = []
    for asset, type_name in TEP_TYPES.items():
        children.append(
            {
                "id": asset,
                "type": type_name,
                "name": asset.replace("-", " ").title(),
                "tags": {sig: f"tep/{asset}/{sig}" for a, sig, _, _ in TEP_COLUMNS if a == asset},
                "limits": limits.get(asset, {}),
            }
        )
    relations = [{"from": f"{prefix}/{a}", "kind": k, "to": f"{prefix}/{b}"} for a, k, b in TEP_FLOWS]
    # the unit as a whole: its fault detector reads the 52 tags of its parts at once and writes its score here
    types["ReactionUnit"] = {
        "extends": "Area",
        "description": "A chemical reaction unit watched as a whole (the process tags of its parts together).",
        "derived": {
            "anomaly_score": {
                "limits": {"high_warning": 0.8, "high_alarm": 1.0},
                "description": "Fault detector score; 1 is its control limit",
            },
            "anomaly": {"description": "1 while the score is over the control limit"},
            "gas_feed": {
                "expr": "sum(children(GasFeed).flow)",
                "unit": "kscmh",
                "description": "Gas fed to the unit (streams 1 and 4), calculated",
            },
        },
    }
    # the site's power demand on the city's map: the recycle compressor's work (XMEAS(20), kW), the one electrical
    # load the process measures
    types["RefinerySite"] = {
        "extends": "Site",
        "description": "A refinery site; its power demand is its reaction unit's compressor work.",
        "derived": {
            "power": {
                "expr": "sum(descendants(Compressor).work)",
                "unit": "kW",
                "description": "Power demand: the recycle compressor's work (TEP XMEAS(20)), calculated",
            }
        },
    }
    return {
        "site": {
            "id": "ulsan-refinery",
            "type": "RefinerySite",
            "name": "Ulsan refinery (demo)",
            "children": [
                {
                    "id": "reaction-unit",
                    "type": "ReactionUnit",
                    "name": "Reaction unit (Tennessee Eastman process)",
                    "children": children,
                }
            ],
        },
        "relations": relations,
    }


PUMP_HISTORY_RUNS = [f"valve1-{k}" for k in range(8)]  # the live pump's past: their normal running before each test
PUMP_LIVE_RUNS = [*(f"valve1-{k}" for k in range(8, 16)), *(f"valve2-{k}" for k in range(4))]  # replayed live
PUMP_NORMAL_ROWS = 400  # SKAB's protocol: the first 400 s of every run are normal running, before the valve test


def skab_rows(path: Path) -> np.ndarray:
    """A SKAB run's rows in SKAB_COLUMNS order."""
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(_require(path), parse_options=pacsv.ParseOptions(delimiter=";"))
    return np.column_stack([table.column(c).to_numpy().astype(float) for c in SKAB_COLUMNS])


def pump_history_rows(shared: Path) -> np.ndarray:
    """The live pump's past normal running: the first 400 s of each of SKAB's valve tests 1-0 … 1-7, back to back
    (the same test bed, valves and operating point as the runs replayed live, none of which it includes)."""
    from taehwa.demo import skab_files

    paths = dict(skab_files(shared))
    return np.vstack([skab_rows(paths[run])[:PUMP_NORMAL_ROWS] for run in PUMP_HISTORY_RUNS])


def _skab(shared: Path, types: dict[str, Any], sources: list[Source]) -> dict[str, Any]:
    from taehwa.demo import skab_files

    paths = dict(skab_files(shared))
    runs = [(f"SKAB {name}", skab_rows(paths[name])) for name in PUMP_LIVE_RUNS if name in paths]
    normal = pump_history_rows(shared)  # sensor limits from the pump's own normal running, as for a new unit
    sig: dict[str, dict[str, Any]] = {}
    for i, (col, (asset, s, unit)) in enumerate(SKAB_COLUMNS.items()):
        sig.setdefault(asset, {})[s] = _sensor(unit, f"SKAB {col}", "1s", normal[:, i])
    types["CentrifugalPump"] = {
        "extends": "Equipment",
        "description": "A centrifugal pump.",
        "attributes": {
            "rated_power": {"type": "number", "unit": "kW", "required": True},
            "service": {"type": "enum", "values": ["duty", "standby"], "default": "duty"},
        },
        "sensors": sig["pump-1"],
        "derived": {
            "anomaly_score": {
                "limits": {"high_warning": 0.8, "high_alarm": 1.0},
                "description": "Anomaly score; 1 is the model's control limit",
            },
            "anomaly": {"description": "1 while the score is over the control limit"},
            "health": {"unit": "%"},
            # calculated signals (taehwa.analytics): hydraulic power (L/min × bar → W) over electric power
            "efficiency": {
                "expr": "flow * discharge_pressure * 100 / 60 / (mean(children(Motor).voltage) "
                "* mean(children(Motor).current))",
                "unit": "1",
                "description": "Hydraulic over electric power, calculated",
            },
            "flow_avg": {
                "expr": "rolling_mean(flow, 30s)",
                "unit": "L/min",
                "description": "Flow, 30 s rolling mean, calculated",
            },
            # written while a valve closure runs, once its reference is set (`taehwa events reference set`)
            "flow_deviation": {
                "unit": "L/min",
                "description": "Flow against the valve closures' reference profile, during one",
            },
        },
        "events": {
            "valve_closure": {
                "start": "rolling_mean(flow, 30s) < 31 for 20s",
                "end": "rolling_mean(flow, 30s) >= 31.5",
                "max_duration": "30min",
                "stats": ["flow", "discharge_pressure", "vibration_de"],
                "reference": {"signal": "flow", "output": "flow_deviation", "band": 3, "step": "1s"},
                "description": "A valve of the loop closing: the flow falls",
            },
            # opened by the live model's alarm (rule pump-anomaly, taehwa.demo.history), closed when it resolves
            "anomaly_alarm": {
                "alert": "pump-anomaly",
                "max_duration": "30min",
                "stats": ["flow", "discharge_pressure", "vibration_de"],
                "description": "The anomaly model's alarm on the pump, from raised to resolved",
            },
        },
        "children": ["Motor"],
    }
    types["Motor"] = {
        "level": "component",
        "description": "An electric motor.",
        "attributes": {"rated_voltage": {"type": "number", "unit": "V"}},
        "sensors": sig["pump-1/motor"],
        "derived": {"electric_power": MOTOR_POWER},
    }
    # the site's power demand on the city's map: its pump motors' voltage × current (SKAB's meters)
    types["PumpedSite"] = pumped_site("Motor")
    types["ControlValve"] = {
        "extends": "Equipment",
        "description": "A valve in the loop (position not measured).",
        "attributes": {"size": {"type": "string"}},
    }
    types["CirculationLoop"] = {
        "extends": "Equipment",
        "description": "Pipework and tank of a water loop.",
        "sensors": sig["loop"],
    }
    tags = [f"skab/live/{SKAB_COLUMNS[c][1]}" for c in SKAB_COLUMNS]
    sources.append(Source("SKAB pump station", 1.0, tags, runs))
    pump_tags = {s: f"skab/live/{s}" for c, (a, s, _) in SKAB_COLUMNS.items() if a == "pump-1"}
    motor_tags = {s: f"skab/live/{s}" for c, (a, s, _) in SKAB_COLUMNS.items() if a == "pump-1/motor"}
    line = {
        "id": "circulation",
        "type": "Line",
        "name": "Circulation loop",
        "children": [
            {"id": "valve-in", "type": "ControlValve", "name": "Inlet valve"},
            {
                "id": "pump-1",
                "type": "CentrifugalPump",
                "name": "Circulation pump",
                "attributes": {"rated_power": 2.2, "manufacturer": "Grundfos"},
                "tags": pump_tags,
                "children": [
                    {
                        "id": "motor",
                        "type": "Motor",
                        "name": "Pump motor",
                        "attributes": {"rated_voltage": 230},
                        "tags": motor_tags,
                    }
                ],
            },
            {"id": "valve-out", "type": "ControlValve", "name": "Outlet valve"},
            {
                "id": "loop",
                "type": "CirculationLoop",
                "name": "Loop and tank",
                "tags": {"fluid_temperature": "skab/live/fluid_temperature"},
            },
        ],
    }
    base = "ulsan-water/pump-station/circulation"
    relations = [
        {"from": f"{base}/valve-in", "kind": "feeds", "to": f"{base}/pump-1"},
        {"from": f"{base}/pump-1", "kind": "feeds", "to": f"{base}/valve-out"},
    ]
    return {
        "site": {
            "id": "ulsan-water",
            "type": "PumpedSite",
            "name": "Ulsan water works (demo)",
            "children": [
                {"id": "pump-station", "type": "Area", "name": "Pump station (SKAB test bed)", "children": [line]}
            ],
        },
        "relations": relations,
    }


def read_cmapss(path: Path) -> np.ndarray:
    """A C-MAPSS text file (gzipped or not) as rows: unit, cycle, 3 settings, 21 sensors."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(_require(path), "rt") as fh:
        return np.loadtxt(fh)


def _cmapss(shared: Path, types: dict[str, Any], sources: list[Source]) -> dict[str, Any]:
    data = read_cmapss(shared / "cmapss" / "train_FD001.txt.gz")
    early = data[data[:, 1] <= 30]  # the first 30 cycles of every engine: healthy
    sensors = {
        name: _sensor(CMAPSS_UNITS.get(name, "-"), None, "10min", early[:, 2 + i])
        for i, name in enumerate(CMAPSS_SIGNALS)
    }
    types["TurbofanEngine"] = {
        "extends": "Equipment",
        "description": "A turbofan engine (NASA C-MAPSS).",
        "attributes": {"serial": {"type": "string"}, "subset": {"type": "string"}},
        "sensors": sensors,
        "derived": {"rul": {"unit": "cycles", "limits": {"low_alarm": 15, "low_warning": 40}}, "health": {"unit": "%"}},
    }
    units = sorted({int(u) for u in data[:, 0]})[:CMAPSS_ENGINES]
    # replay: all engines cycle by cycle in lockstep; an engine that has failed starts its life again
    longest = max(int(data[data[:, 0] == u][:, 1].max()) for u in units)
    frames = np.empty((longest, len(units) * len(CMAPSS_SIGNALS)))
    for j, u in enumerate(units):
        life = data[data[:, 0] == u][:, 2:]
        reps = np.resize(np.arange(len(life)), longest)
        frames[:, j * len(CMAPSS_SIGNALS) : (j + 1) * len(CMAPSS_SIGNALS)] = life[reps]
    tags = [f"cmapss/engine-{u:03d}/{s}" for u in units for s in CMAPSS_SIGNALS]
    sources.append(Source("C-MAPSS FD001 fleet", 600.0, tags, [("train_FD001", frames)]))
    engines = [
        {
            "id": f"engine-{u:03d}",
            "type": "TurbofanEngine",
            "name": f"Engine {u}",
            "attributes": {"serial": f"FD001-{u:03d}", "subset": "FD001"},
            "tags": {s: f"cmapss/engine-{u:03d}/{s}" for s in CMAPSS_SIGNALS},
        }
        for u in units
    ]
    return {
        "site": {
            "id": "engine-shop",
            "type": "Site",
            "name": "Engine shop (demo)",
            "children": [
                {"id": "fleet-fd001", "type": "Area", "name": "Fleet FD001 (NASA C-MAPSS)", "children": engines}
            ],
        },
        "relations": [],
    }


def build_demo_plant(shared: Path) -> tuple[dict[str, Any], list[Source]]:
    """The demo plant document (types, assets, relations) and the data sources that replay into its tags."""
    types: dict[str, Any] = {}
    sources: list[Source] = []
    parts = [_tep(shared, types, sources), _skab(shared, types, sources), _cmapss(shared, types, sources)]
    doc = {
        "types": types,
        "assets": [p["site"] for p in parts],
        "relations": [r for p in parts for r in p["relations"]],
    }
    for site in doc["assets"]:  # placed on the city's map
        site["attributes"] = {**DEMO_PLACES.get(site["id"], {}), **site.get("attributes", {})}
    return doc, sources
