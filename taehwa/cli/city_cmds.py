"""`taehwa city …`: the city's twin from the operator's shell — the map's sites, what a company shares, the
cross-company figures through the release gate, standings, the city's policy and quotas, the council's report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from taehwa.city.records import CityPolicy
from taehwa.cli.common import JsonOpt, TenantOpt, err, out, print_json, print_table, services

city_app = typer.Typer(
    help="The city's twin (도시 디지털 트윈): map, shared sites, cross-company figures, quotas.", no_args_is_help=True
)


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


@city_app.command("map")
def city_map(as_json: JsonOpt = False) -> None:
    """The sites companies share with the city, with what each shares."""
    with services(readonly=True) as platform:
        m = platform.city.map()
        view = Table("company", "site", "complex", "state", "points/s", "models", "open alerts")
        for s in m["sites"]:
            view.add_row(
                s["tenant"],
                s["site"],
                s.get("complex") or "—",
                s.get("state", "not shared"),
                str(s.get("points_s", "—")),
                str(s.get("models", "—")),
                str(s.get("open_alerts", "—")),
            )
        print_table(view, as_json=as_json, data=m["sites"])


@city_app.command("share")
def share(
    site: str,
    tenant: TenantOpt,
    items: Annotated[str, typer.Option("--items", help="map,state,rate,power,models,alerts (empty: none)")] = "",
    figures: Annotated[
        str, typer.Option("--figures", help="figures the site contributes to (see `taehwa city figures`)")
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Set what one of a company's sites shares with the city office (its admins); empty withdraws it."""
    with services(readonly=True) as platform:
        c = platform.city.consents.set(tenant, site, shares=_split(items), figures=_split(figures))
        print_json(c.to_dict()) if as_json else out.print(
            f"{tenant}/{site} shares {', '.join(sorted(c.shares)) or 'nothing'}; contributes to "
            f"{', '.join(sorted(c.figures)) or 'no figure'}"
        )


@city_app.command("consents")
def consents(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """What a company's sites share with the city office."""
    with services(readonly=True) as platform:
        rows = [c.to_dict() for c in platform.city.consents.get(tenant).values()]
        view = Table("site", "shares", "figures", "set by", "set at")
        for r in rows:
            view.add_row(r["site"], ", ".join(r["shares"]), ", ".join(r["figures"]), r["set_by"], r["set_at"])
        print_table(view, as_json=as_json, data=rows)


@city_app.command("figures")
def figures(as_json: JsonOpt = False) -> None:
    """The figures companies may contribute to."""
    with services(readonly=True) as platform:
        rows = platform.city.figures()
        view = Table("figure", "unit", "sensitive", "higher is better")
        for r in rows:
            view.add_row(r["name"], r["unit"], str(r["sensitive"]), str(r["higher_is_better"]))
        print_table(view, as_json=as_json, data=rows)


@city_app.command("aggregate")
def aggregate(
    figure: str,
    by: Annotated[str, typer.Option(help="city, complex, industry or asset_type")] = "city",
    group: Annotated[str | None, typer.Option(help="the complex, industry or asset type")] = None,
    as_json: JsonOpt = False,
) -> None:
    """A figure's mean (with noise, its median and quartiles) over the companies that contribute (refused below k
    or when differencing)."""
    with services(readonly=True) as platform:
        a = platform.city.aggregate(figure, by, group)
        print_json(a) if as_json else out.print(
            f"{a['figure']} for {a['group']}: {a['statistic']} {a['value']:g}{a['unit']}"
            + (f" (quartiles {a['p25']:g}–{a['p75']:g})" if a["p25"] is not None else "")
            + f" over {a['companies']} companies"
            + (f" ({a['held_out']} held out: they changed by fewer than k)" if a["held_out"] else "")
            + "; "
            + (f"noised, ε={a['privacy']['epsilon']:g}" if a["privacy"]["dp"] else "no noise")
        )


@city_app.command("standing")
def standing(figure: str, tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """Where a company stands against the city's figure (mean, or noised median) on a figure it contributes to."""
    with services(readonly=True) as platform:
        s = platform.city.standing(tenant, figure)
        print_json(s) if as_json else out.print(
            f"{tenant}: {figure} {s['value']:g}{s['unit']} against the city's {s['city_statistic']} "
            f"{s['city_value']:g} "
            f"({s['companies']} companies): {s['position']}"
        )


@city_app.command("policy")
def policy(
    k: Annotated[int | None, typer.Option(help="the fewest companies an aggregate comes from (2–100)")] = None,
    epsilon: Annotated[
        float | None, typer.Option("--dp-epsilon", help="differential privacy on, ε per release (0.01–10)")
    ] = None,
    no_dp: Annotated[bool, typer.Option("--no-dp", help="differential privacy off")] = False,
    scope: Annotated[str | None, typer.Option(help="noise on sensitive (default) or all figures")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show or change the city's privacy policy (its admins)."""
    with services(readonly=True) as platform:
        book = platform.city.policy
        if k is not None or epsilon is not None or no_dp or scope is not None:
            book.set_privacy(k=k, epsilon=None if no_dp else (epsilon if epsilon is not None else "keep"), scope=scope)
        p: CityPolicy = {**book.privacy().to_dict(), "quotas": book.quotas()}
        print_json(p) if as_json else out.print(
            f"k = {p['k']}; "
            + (f"noise ε = {p['epsilon']:g} on {p['dp_scope']} figures" if p["dp"] else "no noise")
            + "; quotas: "
            + (", ".join(f"{t} {h:g} CPU h/month" for t, h in p["quotas"].items()) or "none")
        )


@city_app.command("quota")
def quota(
    tenant_id: Annotated[str, typer.Argument(metavar="TENANT")],
    cpu_hours: Annotated[float | None, typer.Option(help="CPU hours a month")] = None,
    lift: Annotated[bool, typer.Option(help="remove the quota")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show, set or lift a company's monthly compute quota (the lab refuses runs beyond it)."""
    with services(readonly=True) as platform:
        if cpu_hours is not None or lift:
            platform.city.policy.set_quota(tenant_id, None if lift else cpu_hours)
        s = platform.city.quotas.status(tenant_id)
        print_json(s) if as_json else out.print(
            f"{tenant_id}: {s['used_hours']['total']:g} CPU h used in {s['month']}; quota "
            + ("none" if s["quota_hours"] is None else f"{s['quota_hours']:g} h, {s['left_hours']:g} h left")
        )


@city_app.command("report")
def report(
    output: Annotated[Path, typer.Option("--output", "-o", help="the PDF to write")],
    lang: Annotated[str, typer.Option(help="ko or en")] = "ko",
) -> None:
    """The headquarters' view as a PDF for the city council (made here, offline)."""
    from taehwa.city.report import report_pdf

    if lang not in ("ko", "en"):
        raise typer.BadParameter("ko or en", param_hint="--lang")
    with services(readonly=True) as platform:
        data = report_pdf(platform.city.hq(), platform.city.map(), lang)
        output.write_bytes(data)
        err.print(f"wrote {output} ({len(data):,} bytes)")
