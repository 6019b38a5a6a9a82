"""The printable report for the city council: the headquarters' view as a PDF made here, offline, with fpdf2 and a
font that carries Hangul (NanumGothic from Debian's fonts-nanum, which `make` installs). Only what the
headquarters' view shows goes in: counts per company, compute against quotas and the aggregates the gate
released; a refused aggregate appears as refused."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taehwa.city.records import CityMap, HqView
from taehwa.city.words import word
from taehwa.core.errors import Unavailable

FONT_DIRS = (Path("/usr/share/fonts/truetype/nanum"), Path("/usr/share/fonts/nanum"))
FONT_FILES = ("NanumGothic.ttf", "NanumGothicBold.ttf")
logging.getLogger("fontTools.subset").setLevel(logging.ERROR)  # its notes on tables it drops are not ours


def font_files() -> tuple[Path, Path]:
    """The regular and bold NanumGothic files, or Unavailable naming the package to install."""
    for d in FONT_DIRS:
        regular, bold = d / FONT_FILES[0], d / FONT_FILES[1]
        if regular.is_file():
            return regular, bold if bold.is_file() else regular
    raise Unavailable(
        "the report needs a font that carries Hangul: install Debian's fonts-nanum (apt-get install fonts-nanum)",
        where="font",
    )


def _fig(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.{digits}g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def report_pdf(hq: HqView, city_map: CityMap, lang: str = "ko") -> bytes:
    """The report as PDF bytes."""
    from fpdf import FPDF  # only the report needs it

    regular, bold = font_files()

    def w(key: str) -> str:
        return word(key, lang)

    pdf = FPDF(format="A4")
    pdf.set_title(w("report"))
    pdf.set_creator("Taehwa")
    pdf.add_font("Nanum", "", str(regular))
    pdf.add_font("Nanum", "B", str(bold))
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()

    def heading(text: str, size: int = 13) -> None:
        pdf.ln(3)
        pdf.set_font("Nanum", "B", size)
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Nanum", "", 9)

    def table(head: list[str], rows: list[list[str]], widths: tuple[int, ...] | None = None) -> None:
        pdf.set_font("Nanum", "", 8)
        with pdf.table(col_widths=widths, text_align="LEFT", line_height=5, first_row_as_headings=True) as t:
            t.row(head)
            for r in rows:
                t.row(r)
        pdf.set_font("Nanum", "", 9)

    heading(f"{w('city_twin')} · {w('report')}", 16)
    pdf.set_font("Nanum", "", 9)
    pdf.multi_cell(0, 5, f"{w('generated')}: {hq['generated_at']} ({w('times_utc')})", new_x="LMARGIN", new_y="NEXT")
    counts = city_map.get("counts", {})
    heading(w("summary"))
    table(
        [w("companies"), w("sites"), w("normal"), w("warning"), w("alarm"), w("complexes")],
        [
            [
                _fig(len(hq["companies"])),
                _fig(counts.get("sites", 0)),
                _fig(counts.get("normal", 0)),
                _fig(counts.get("warning", 0)),
                _fig(counts.get("alarm", 0)),
                _fig(len(city_map.get("complexes", []))),
            ]
        ],
    )

    adoption = hq["adoption"]
    heading(w("adoption"))
    keys = adoption["keys"]
    rows = [[m, *(_fig(adoption["total"][m][k]) for k in keys)] for m in adoption["months"][-6:]]
    table([w("month"), *(w(k) for k in keys)], rows)
    per = adoption["per_company"]
    rows = [
        [name, *(_fig(sum(per.get(t, {}).get(m, {}).get(k, 0) for m in adoption["months"])) for k in keys)]
        for t, name in sorted(hq["companies"].items())
    ]
    table([w("company"), *(w(k) for k in keys)], rows)

    talent = hq["talent"]
    heading(w("talent"))
    table(
        [w("challenges"), w("participants"), w("submissions"), w("beat_baseline")],
        [
            [
                _fig(talent["challenges"]),
                _fig(talent["participants"]),
                _fig(talent["submissions"]),
                _fig(talent["beat_baseline"]),
            ]
        ],
    )
    if talent["per_challenge"]:
        table(
            [w("challenges"), w("participants"), w("submissions"), w("improvement")],
            [
                [
                    str(c["title"] or c["challenge"]),
                    _fig(c["participants"]),
                    _fig(c["submissions"]),
                    "—" if c["improvement_pct"] is None else f"{c['improvement_pct']:+.1f}%",
                ]
                for c in talent["per_challenge"]
            ],
        )

    comp = hq["compute"]
    heading(w("compute"))
    rows = []
    for t, name in sorted(hq["companies"].items()):
        s: Mapping[str, Any] = comp["this_month"].get(t, {})
        used = s.get("used_hours", {})
        rows.append(
            [
                name,
                _fig(used.get("lab")),
                _fig(used.get("sweep")),
                _fig(used.get("academy")),
                _fig(used.get("total")),
                _fig(s.get("quota_hours")) if s.get("quota_hours") is not None else w("no_quota"),
            ]
        )
    table([w("company"), w("lab"), w("sweep"), w("academy"), w("total"), w("quota")], rows)

    heading(w("aggregates"))
    priv = hq["privacy"]
    pdf.multi_cell(
        0,
        5,
        f"{w('aggregates_note')} {w('k_rule')} = {priv['k']}; "
        + (f"{w('dp_on')} = {priv['epsilon']:g}" if priv["dp"] else w("dp_off")),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    rows = []
    for a in hq["aggregates"]:
        if a["ok"]:
            rows.append(
                [
                    w(a["figure"]),
                    a["group"],
                    _fig(a["companies"]) + (f" (+{a['held_out']} {w('held_out')})" if a.get("held_out") else ""),
                    f"{_fig(a['value'])} ({w('statistic_' + a['statistic'])})",
                    f"{_fig(a['p25'])} – {_fig(a['p75'])}" if a["p25"] is not None else "—",
                ]
            )
        else:
            rows.append([w(a["figure"]), a["group"], "—", w("refused"), ""])
    table([w("figure"), w("group"), w("companies"), w("city_figure"), w("quartiles")], rows, (40, 30, 15, 20, 25))
    pdf.ln(2)
    pdf.set_font("Nanum", "", 7)
    pdf.multi_cell(0, 4, f"{w('map_source')}: {city_map.get('source', '')}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
