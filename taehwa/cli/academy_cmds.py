"""`taehwa academy …`: challenges (챌린지), their boards (리더보드) and submissions (제출). Submissions run here, in
the sandbox, beside a running server (they write only the metadata database and the academy folder)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from taehwa.cli.common import JsonOpt, err, fail, out, print_table, services
from taehwa.core.errors import InvalidInput

academy_app = typer.Typer(
    help="The academy: challenges (챌린지) on real plant data with hidden test sets, "
    "leaderboards (리더보드) and submissions (제출) run next to the data.",
    no_args_is_help=True,
)
KIND_BY_SUFFIX = {
    ".py": "python",
    ".yaml": "spec",
    ".yml": "spec",
    ".json": "spec",
    ".csv": "predictions",
    ".parquet": "predictions",
}


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


@academy_app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Challenges, newest first."""
    with services(readonly=True) as platform:
        rows = platform.academy.list_challenges()
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    view = Table("id", "title", "task", "metric", "state", "closes", "participants")
    for r in rows:
        view.add_row(
            r["id"],
            r["title"].get("en", ""),
            r["task"],
            r["metric"],
            r["state"],
            r["closes_at"][:10],
            str(r["participants"]),
        )
    print_table(view)


@academy_app.command("show")
def show(challenge: str) -> None:
    """One challenge as JSON: task, metric, signals, parts, limits, state."""
    with services(readonly=True) as platform:
        print(json.dumps(platform.academy.get(challenge), indent=1, ensure_ascii=False))


@academy_app.command("install")
def install(
    names: Annotated[list[str] | None, typer.Argument(help="Ready challenges (default: all).")] = None,
    baseline: Annotated[bool, typer.Option(help="Run the platform's baseline entry of each.")] = True,
) -> None:
    """Set up the ready challenges from ../shared/data (SKAB, C-MAPSS FD001, Tennessee Eastman); ones already
    there are kept."""
    with services(readonly=True) as platform, err.status("cutting the data and running the baselines…"):
        made = platform.academy.install_ready(names or None, baseline=baseline)
    for c in made:
        out.print(
            f"installed {c['id']}: {c['rows']['train']} training rows, {c['rows']['validation']} validation, "
            f"{c['rows']['test']} hidden test"
        )
    if not made:
        out.print("nothing to do: the ready challenges are installed")


@academy_app.command("create")
def create(
    file: Annotated[Path, typer.Argument(help="A challenge definition (YAML).")],
    owner: Annotated[str, typer.Option("--owner", help="The tenant posing it (its data, pseudonymised).")],
) -> None:
    """Pose a challenge on a tenant's own historian data; its tags are shared with the academy only under a
    pseudonymising grant."""
    from taehwa.academy.challenge import load_definition

    with services(readonly=True) as platform:
        d, folder = load_definition(file)
        c = platform.academy.create(owner, d, base_dir=folder)
    out.print(f"created {c['id']} ({c['task']}, scored by {c['metric']}); closes {c['closes_at']}")


@academy_app.command("data")
def data(
    challenge: str,
    part: Annotated[str, typer.Argument(help="train (with labels) or inputs (to predict).")] = "train",
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the Parquet file.")] = Path("."),
) -> None:
    """Copy a public part of a challenge to a Parquet file."""
    with services(readonly=True) as platform:
        src = platform.academy.public_file(challenge, part)
    dest = output / f"{challenge}-{part}.parquet" if output.is_dir() else output
    if not dest.parent.is_dir():
        fail(InvalidInput(f"no folder {dest.parent} to write into", where="--output"))
    shutil.copyfile(src, dest)
    err.print(f"wrote {dest}")


@academy_app.command("submit")
def submit(
    challenge: str,
    file: Annotated[
        Path,
        typer.Argument(
            help="predictions (.csv/.parquet with row,"
            "prediction), a model spec (.yaml) or a "
            "Python model (.py with class Model)."
        ),
    ],
    kind: Annotated[str | None, typer.Option(help="predictions, spec or python (default: by the suffix).")] = None,
    user: Annotated[str | None, typer.Option(help="Submit for this registered user (operators).")] = None,
    label: Annotated[str | None, typer.Option(help="A note to tell your entries apart.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit to a challenge and wait for the verdict; code runs in the sandbox next to the data."""
    if not file.is_file():
        fail(InvalidInput(f"no file at {file}", where=str(file)))
    kind = kind or KIND_BY_SUFFIX.get(file.suffix.lower())
    if kind is None:
        fail(InvalidInput(f"cannot tell the kind from {file.name}; give --kind", where="kind"))
        return
    with services(readonly=True) as platform, err.status(f"running {file.name}…"):
        doc = platform.academy.submit(challenge, kind, file.read_bytes(), filename=file.name, user=user, label=label)
    if as_json:
        print(json.dumps(doc, indent=1, ensure_ascii=False))
    else:
        colour = "green" if doc["verdict"] == "scored" else "red"
        out.print(
            f"[{colour}]{doc['verdict']}[/{colour}] submission {doc['id']}: public score {_fmt(doc['public_score'])}"
        )
        out.print(doc["message"] or "", markup=False, highlight=False)
    if doc["verdict"] != "scored":
        raise typer.Exit(3)


@academy_app.command("board")
def board(challenge: str, as_json: JsonOpt = False) -> None:
    """The leaderboard: validation scores while open, hidden test scores once closed; published figures and the
    platform's baseline beside."""
    with services(readonly=True) as platform:
        doc = platform.academy.board(challenge)
    if as_json:
        print(json.dumps(doc, indent=1, ensure_ascii=False))
        return
    final = doc["phase"] == "final"
    title = f"{challenge} · {doc['metric']} ({'lower' if doc['lower_is_better'] else 'higher'} is better) · " + (
        "final (hidden test part)" if final else "public (validation part)"
    )
    view = Table(
        "rank", "participant", "public", *(["final"] if final else []), "entries", "best submitted", title=title
    )
    for e in doc["entries"]:
        view.add_row(
            str(e["rank"]),
            e["user"],
            _fmt(e["public_score"]),
            *([_fmt(e["final_score"])] if final else []),
            str(e["submissions"]),
            e["submitted_at"][:19],
        )
    for b in doc["baselines"]:
        view.add_row(
            "–",
            f"{b['label']} (baseline)",
            _fmt(b["public_score"]),
            *([_fmt(b["final_score"])] if final else []),
            "",
            "",
            style="dim",
        )
    for p in doc["published"]:
        view.add_row(
            "–", f"{p['name']} (published)", _fmt(p["score"]), *([""] if final else []), "", p["source"], style="dim"
        )
    print_table(view)
    note = doc["published_note"]
    if note:
        out.print(note.get("en", ""), style="dim")


@academy_app.command("close")
def close(challenge: str, reason: Annotated[str, typer.Option(help="Why it closes early (recorded).")]) -> None:
    """Close a challenge now: the board turns to the hidden test scores."""
    with services(readonly=True) as platform:
        c = platform.academy.close(challenge, reason)
    out.print(f"{c['id']} is {c['state']}")
