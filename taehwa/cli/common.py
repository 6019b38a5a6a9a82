"""What every command shares: consoles, the tenant option, error exits, opening the services, and sending a
change to the running server when it holds the store."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from taehwa.core import errors
from taehwa.core.errors import Conflict, Location, Problem, TaehwaError, ValidationFailed
from taehwa.core.paths import dev_token_path, server_info_path, store_is_held
from taehwa.core.settings import Settings, load_settings
from taehwa.tenancy.access import Principal, acting_as

if TYPE_CHECKING:  # the platform (every service and its libraries) is imported only by a command that opens it
    from taehwa.server.platform import Platform

out = Console()
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

TenantOpt = Annotated[str, typer.Option("--tenant", "-t", help="Tenant (company) id.", envvar="TAEHWA_TENANT")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


# Columns whose values a user copies into the next command (ids, tags, paths, names): never cut or folded.
KEY_COLUMNS = frozenset(
    {
        "id",
        "name",
        "tag",
        "path",
        "run",
        "model",
        "series",
        "participant",
        "user",
        "target",
        "asset",
        "signal",
        "challenge",
        "deployment",
        "rule",
    }
)


def print_json(data: Any) -> None:
    """JSON on standard output, for scripts (`--json`)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(view: Table, *, as_json: bool = False, data: Any = None) -> None:
    """Print a table with its key columns whole (as wide as their longest value) and the other columns folded
    into the width left, so an id or a tag name can always be copied from the screen. With `as_json`, the rows
    as JSON instead (`data` when given, else each row as {column: text})."""
    if as_json:
        if data is None:
            heads = [str(c.header) for c in view.columns]
            cells = [list(map(str, c.cells)) for c in view.columns]
            data = [dict(zip(heads, row, strict=True)) for row in zip(*cells, strict=True)] if cells else []
        print_json(data)
        return
    needed = 1  # the left border; each column adds its padding and a border
    for column in view.columns:
        if str(column.header).lower() in KEY_COLUMNS:
            column.no_wrap = True
            column.min_width = max([len(str(column.header)), *(len(str(c)) for c in column.cells)])
            needed += column.min_width + 3
        else:
            column.overflow = "fold"
            needed += min(10, max([len(str(column.header)), *(len(str(c)) for c in column.cells)])) + 3
    # wider than the terminal only when the whole ids would leave the other columns no room (the terminal wraps)
    width = out.width
    out.width = max(width, needed)
    try:
        out.print(view)
    finally:
        out.width = width


def where_said(where: str | None, location: Location | None) -> str:
    """Where a problem is, as every command says it, the same for an error raised here and one the server sent:
    from its structured location when it has one (`plant.yaml:12:3`, `data.csv, row 2, column 'value'`,
    `deployment:4, field target.assets`), else its `where` text."""
    if location is None:
        return where or ""
    parts: list[str] = []
    column = location.column
    if location.line is not None:
        at = f"{location.line}" + (f":{column}" if isinstance(column, int) else "")
        parts.append(f"{location.file}:{at}" if location.file else f"line {at}")
        column = column if isinstance(column, str) else None
    elif location.file:
        parts.append(location.file)
    if location.row is not None:
        parts.append(f"row {location.row}")
    if column is not None:
        parts.append(f"column {column!r}" if isinstance(column, str) else f"column {column}")
    if location.field:
        parts.append(f"field {location.field}")
    return ", ".join(parts) or (where or "")


def said(exc: TaehwaError) -> str:
    """An error's text for the terminal: each problem (or the error) as where it is, then what is wrong."""
    if isinstance(exc, ValidationFailed):
        return "\n".join(f"{where_said(p.where, p.location) or '(document)'}: {p.message}" for p in exc.details)
    where = where_said(exc.where, exc.location)
    return f"{where}: {exc.message}" if where else exc.message


def fail(exc: TaehwaError) -> None:
    """Print an error (what and where) and exit with its code."""
    err.print(f"[red]error[/red] ({exc.kind}): ", end="")
    err.print(said(exc), markup=False, highlight=False)
    raise typer.Exit(exc.exit_code)


def operator() -> Principal:
    """Who a command acts as: the operator at this machine's shell, with the data directory in hand (a platform
    admin), recorded in the audit log as cli:<login>."""
    import getpass

    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    return Principal(f"cli:{login}", platform_admin=True, source="local shell", local=True)


@contextmanager
def services(*, readonly: bool) -> Iterator[Platform]:
    """The platform for one command; TaehwaError becomes a clear message and its exit code."""
    from sqlalchemy.exc import DataError

    from taehwa.server.platform import Platform

    platform = None
    try:
        platform = Platform(load_settings(), readonly=readonly, background=False)
        with acting_as(operator()):
            yield platform
    except TaehwaError as exc:
        fail(exc)
    except DataError as exc:  # a value the metadata database refuses (PostgreSQL: NUL in text, text too long)
        fail(errors.InvalidInput(f"a value the database cannot store: {str(exc.orig).splitlines()[0]}", where="input"))
    finally:
        if platform is not None:
            platform.close() if not readonly else platform.historian.close()


def emit_text(text: str, output: Path | None) -> None:
    """Print a document, or write it to a file and say so on stderr."""
    if output is None:
        print(text, end="")
    else:
        output.write_text(text)
        err.print(f"wrote {output}")


def server_token(settings: Settings) -> str:
    """The token the local server accepts."""
    return settings.api_token.get_secret_value() if settings.api_token else dev_token_path(settings).read_text().strip()


_BY_KIND: dict[str, type[TaehwaError]] = {
    c.kind: c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, TaehwaError)
}


def error_from_body(body: Any, *, body_name: str | None = None) -> TaehwaError:
    """The TaehwaError an API error body describes, with its structured location (and each problem's) as the
    server had it; with `body_name`, a location in the request's `body` is said of that name instead (the file the
    command sent). Parts of the wrong type are left out (the body is read as untrusted)."""
    if not isinstance(body, dict):
        return TaehwaError("the server answered an error without a description", where="server")

    def named(where: Any, location: Location | None) -> tuple[str | None, Location | None]:
        text = where if isinstance(where, str) else None
        if body_name and location is not None and location.file == "body":
            location = dataclasses.replace(location, file=body_name)
            text = str(location)
        return text, location

    message = body.get("message")
    message = message if isinstance(message, str) else "the server refused the call"
    if body.get("error") == "validation_failed":
        problems = body.get("problems")
        details = []
        for p in problems if isinstance(problems, list) and problems else [body]:
            p = p if isinstance(p, dict) else {}
            where, location = named(p.get("where"), Location.from_dict(p.get("location")))
            text = p.get("message")
            details.append(Problem(where or "", text if isinstance(text, str) else "invalid", location))
        return ValidationFailed(details)
    cls = _BY_KIND.get(str(body.get("error", "")), TaehwaError)
    where, location = named(body.get("where"), Location.from_dict(body.get("location")))
    exc = cls(message, where=location or where)
    if where is not None and exc.where != where:  # the server's text kept where it says more than the location
        exc.where = where
    return exc


def server_request(settings: Settings, method: str, path: str, *, body_name: str | None = None, **kwargs: Any) -> Any:
    """Call the running server's API; its errors come back as the same TaehwaError they were there (see
    `error_from_body`; `body_name` is what the command calls the body it sends)."""
    import httpx

    info = json.loads(server_info_path(settings).read_text())
    headers = {"Authorization": f"Bearer {server_token(settings)}", **kwargs.pop("headers", {})}
    resp = httpx.request(method, f"{info['url']}{path}", headers=headers, timeout=600, **kwargs)
    if resp.status_code < 400:
        return resp.json()
    try:
        body = resp.json()
    except ValueError:
        raise TaehwaError(f"the server answered {resp.status_code} without a JSON body", where="server") from None
    raise error_from_body(body, body_name=body_name)


def local_or_server(local: Callable[[Platform], T], remote: Callable[[Settings], T]) -> T:
    """Run `local` on this process's own platform, or `remote` when a running server holds the store (the one
    place the CLI decides which); a TaehwaError from either becomes a clear message and its exit code."""
    settings = load_settings()
    try:
        if store_is_held(settings) and server_info_path(settings).exists():
            return remote(settings)  # the server holds the store: no need to open (and import) the platform
        from taehwa.server.platform import Platform

        try:
            platform = Platform(settings, background=False)
        except Conflict:
            if not server_info_path(settings).exists():
                raise
            return remote(settings)
        try:
            with acting_as(operator()):
                return local(platform)
        finally:
            platform.close()
    except TaehwaError as exc:
        fail(exc)
        raise  # not reached: fail exits


def write_call(local: Callable[[Platform], T], method: str, path: str, **http: Any) -> T | Any:
    """Make a change: directly when no server runs, else through the server's API (`method` `path`)."""
    return local_or_server(local, lambda settings: server_request(settings, method, path, **http))
