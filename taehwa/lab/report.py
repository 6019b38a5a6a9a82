"""Validation reports: a JSON document and a self-contained HTML page with inline SVG plots (no script, no CDN),
so a report opens anywhere, offline, and can be archived as it is."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from taehwa.lab.datasets import TARGET, TIME, UNIT, time_us
from taehwa.lab.metrics import LOWER_IS_BETTER

W, H, PAD = 760, 220, 36
BLIND_NAMES = {"always_on": "always-on", "never_on": "never-on", "clock": "periodic clock"}


def _num(v: Any) -> str:
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.4g}"
    return html.escape(str(v))


def _scale(values: np.ndarray, lo: float, hi: float, a: float, b: float) -> np.ndarray:
    span = hi - lo if hi > lo else 1.0
    return a + (values - lo) / span * (b - a)


def _svg_lines(
    series: list[tuple[str, np.ndarray, np.ndarray, str]],
    title: str,
    shade: np.ndarray | None = None,
    hline: float | None = None,
) -> str:
    """A line chart of (name, x, y, colour); `shade` marks x ranges where it is 1; `hline` a limit."""
    xs = np.concatenate([s[1] for s in series]) if series else np.array([0.0, 1.0])
    ys = np.concatenate([s[2][np.isfinite(s[2])] for s in series] + ([np.array([hline])] if hline else []))
    if not len(ys):
        ys = np.array([0.0, 1.0])
    x0, x1, y0, y1 = float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())
    parts = [
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}">',
        f'<rect x="{PAD}" y="8" width="{W - PAD - 8}" height="{H - PAD - 8}" fill="#fafafa" stroke="#ccc"/>',
    ]
    if shade is not None and len(series):
        x = series[0][1]
        d = np.diff(np.concatenate([[0], shade.astype(int), [0]]))
        for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
            xa, xb = _scale(np.array([x[a], x[b - 1]]), x0, x1, PAD, W - 8)
            parts.append(
                f'<rect x="{xa:.1f}" y="8" width="{max(xb - xa, 1):.1f}" height="{H - PAD - 8}" '
                f'fill="#f4c7c3" opacity="0.6"/>'
            )
    if hline is not None:
        yy = _scale(np.array([hline]), y0, y1, H - PAD, 8)[0]
        parts.append(
            f'<line x1="{PAD}" x2="{W - 8}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#b00" stroke-dasharray="4 3"/>'
        )
    for name, x, y, colour in series:
        ok = np.isfinite(y)
        px, py = _scale(x[ok], x0, x1, PAD, W - 8), _scale(y[ok], y0, y1, H - PAD, 8)
        pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{pts}">'
            f"<title>{html.escape(name)}</title></polyline>"
        )
    parts.append(
        f'<text x="{PAD}" y="{H - 10}" font-size="11">{html.escape(title)} — '
        + " · ".join(f'<tspan fill="{c}">{html.escape(n)}</tspan>' for n, _, _, c in series)
        + f'</text><text x="2" y="16" font-size="10">{y1:.3g}</text>'
        f'<text x="2" y="{H - PAD}" font-size="10">{y0:.3g}</text></svg>'
    )
    return "".join(parts)


def _thin(frame: pd.DataFrame, n: int = 1500) -> pd.DataFrame:
    return frame.iloc[:: max(1, len(frame) // n)]


def plots(task: str, rows: pd.DataFrame) -> list[str]:
    """SVG charts of out-of-sample behaviour: score over time against the limit, or predicted against true."""
    out = []
    for unit, block in list(rows.groupby(UNIT, sort=False))[:4]:
        b = _thin(block)
        x = time_us(b[TIME]) / 1e6
        if task == "anomaly":
            shade = b[TARGET].to_numpy().astype(int) if TARGET in b.columns else None
            out.append(
                _svg_lines(
                    [("anomaly score", x, b["score"].to_numpy(float), "#1f5fa8")],
                    f"{unit}: anomaly score (limit 1; shaded: labelled anomaly)",
                    shade,
                    1.0,
                )
            )
        elif task == "fault":
            out.append(
                _svg_lines(
                    [("P(not normal)", x, b["score"].to_numpy(float), "#1f5fa8")],
                    f"{unit}: probability of a fault",
                    None,
                    0.5,
                )
            )
        else:
            out.append(
                _svg_lines(
                    [
                        ("true", x, b[TARGET].to_numpy(float), "#444"),
                        ("predicted", x, b["pred"].to_numpy(float), "#d9822b"),
                    ],
                    f"{unit}: predicted and true",
                )
            )
    return out


def render_html(doc: dict[str, Any], rows: pd.DataFrame) -> str:
    """The HTML report of one run."""
    m, base, prod = doc["metrics"], doc["baseline"]["metrics"], (doc.get("production") or {}).get("metrics", {})
    blind: dict[str, dict[str, Any]] = doc.get("blind") or {}
    info: dict[str, dict[str, Any]] = doc.get("informative") or {}
    keys = [k for k, v in m.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    head = (
        "<tr><th>metric</th><th>model</th><th>baseline</th>"
        + ("<th>production</th>" if prod else "")
        + "".join(f"<th>{html.escape(BLIND_NAMES.get(b, b))}</th>" for b in blind)
        + ("<th>informative?</th>" if info else "")
        + "</tr>"
    )
    body = []
    for k in keys:
        arrow = "↓" if k in LOWER_IS_BETTER or k in ("false_alarms_per_day", "flagged_share") else "↑"
        cells = f"<td>{_num(m[k])}</td><td>{_num(base.get(k, '–'))}</td>"
        if prod:
            cells += f"<td>{_num(prod.get(k, '–'))}</td>"
        cells += "".join(f"<td>{_num(figures.get(k, '–'))}</td>" for figures in blind.values())
        if info:
            i = info.get(k)
            cells += (
                "<td></td>"
                if i is None
                else "<td>yes</td>"
                if i["informative"]
                else f"<td>not informative here ({html.escape(BLIND_NAMES.get(i['beaten_by'], i['beaten_by']))})</td>"
            )
        body.append(f"<tr><td>{html.escape(k)} {arrow}</td>{cells}</tr>")
    lineage = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{_num(v if not isinstance(v, list) else ', '.join(map(str, v[:30])))}</td></tr>"  # noqa: E501
        for k, v in doc["lineage"].items()
    )
    confusion = ""
    if "confusion" in m:
        labels = m["labels"]
        confusion = (
            "<h2>Confusion matrix (rows: true, columns: predicted)</h2><table><tr><th></th>"
            + "".join(f"<th>{html.escape(x)}</th>" for x in labels)
            + "</tr>"
            + "".join(
                "<tr><th>" + html.escape(labels[i]) + "</th>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                for i, row in enumerate(m["confusion"])
            )
            + "</table>"
        )
    gate = doc.get("verdict", "")
    judged = doc.get("gate") or {}
    if judged:
        gate = f"Gate ({judged.get('criterion')}): {'passes' if judged.get('passed') else 'refuses'} — {gate}" + (
            "" if judged.get("passed") else " — " + "; ".join(judged.get("reasons", []))
        )
    blind_note = (
        (
            "<p>Data-blind detectors, scored on the same rows: always-on, never-on and a periodic clock. A "
            "figure on which one of them matches or beats the model is not informative here; the gate does "
            "not count it.</p>"
        )
        if blind
        else ""
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Validation report — {html.escape(doc["name"])}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
svg{{width:100%;height:auto;margin:.5em 0}}</style></head><body>
<h1>Validation report: {html.escape(doc["name"])}</h1>
<p>Run <code>{html.escape(doc["run_id"])}</code> · task <b>{html.escape(doc["task"])}</b> · model
<b>{html.escape(doc["model"]["kind"])}</b> · split <b>{html.escape(doc["split"]["method"])}</b>
({len(doc["folds"])} fold(s), time-ordered) · {html.escape(doc["created_at"])} by {html.escape(doc["created_by"])}</p>
<p>{html.escape(gate)}</p>
<h2>Figures (out of sample)</h2>{blind_note}<table>{head}{"".join(body)}</table>{confusion}
<p>Per-row scores and decisions: <code>rows.parquet</code> in the run folder, or
<code>{html.escape((doc.get("rows") or {}).get("url", ""))}</code>.</p>
<h2>Behaviour</h2>{"".join(plots(doc["task"], rows))}
<h2>Data lineage</h2><table>{lineage}</table>
</body></html>"""
