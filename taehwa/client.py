"""A typed Python client for Taehwa: points, tags and tenants over the HTTP API, bulk reads and writes over Arrow
Flight when the server offers it, answers as pandas, Arrow or polars.

    from taehwa.client import Client
    c = Client("http://127.0.0.1:8000", token="thw_…", flight="grpc://127.0.0.1:8815")
    df = c.query("demo", ["skab/valve1/pressure"], "2026-01-01", "2026-01-02", every="1m")

Every HTTP call it makes is listed in `ROUTES` (method, path, query parameters), checked against the server's
OpenAPI document by the tests, so the client and the API cannot drift apart unnoticed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import httpx
import orjson
import pyarrow as pa

from taehwa.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TaehwaError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)

Output = Literal["pandas", "arrow", "polars"]
Time = str | datetime
ARROW_STREAM = "application/vnd.apache.arrow.stream"


@dataclass(frozen=True)
class Route:
    """One HTTP call of the client: its method, path template and the query parameters it may send."""

    method: str
    path: str
    params: frozenset[str] = frozenset()


ROUTES: dict[str, Route] = {
    "tenants": Route("get", "/api/v1/tenants"),
    "tags": Route("get", "/api/v1/{tenant}/tags", frozenset({"prefix", "limit"})),
    "latest": Route("get", "/api/v1/{tenant}/tags/latest", frozenset({"tags", "format"})),
    "query": Route(
        "get",
        "/api/v1/{tenant}/points",
        frozenset({"tags", "start", "end", "every", "agg", "step", "method", "align", "limit", "format"}),
    ),
    "write": Route("post", "/api/v1/{tenant}/points", frozenset({"layout"})),
    "stats": Route("get", "/api/v1/{tenant}/stats"),
}
_ERRORS: dict[int, type[TaehwaError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidInput,
    429: TooManyRequests,
    503: Unavailable,
    507: Unavailable,
}


@dataclass(frozen=True)
class Tag:
    """A tag and its metadata, as the API lists it."""

    name: str
    unit: str | None
    description: str | None
    eng_low: float | None
    eng_high: float | None
    interval_s: float | None
    attributes: dict[str, Any]


def _iso(t: Time) -> str:
    return t.isoformat() if isinstance(t, datetime) else str(t)


def _convert(table: pa.Table, output: Output) -> Any:
    """An Arrow table as the caller asked for it."""
    if output == "arrow":
        return table
    if output == "polars":
        polars = importlib.import_module("polars")  # optional: only when asked for
        return polars.from_arrow(table)
    if output == "pandas":
        return table.to_pandas()
    raise InvalidInput(f"output is pandas, arrow or polars, not {output!r}", where="output")


def _arrow_body(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _as_table(data: Any) -> pa.Table:
    """Arrow, pandas or polars data (or a list of point dicts) as an Arrow table."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if hasattr(data, "to_arrow"):  # polars
        table: pa.Table = data.to_arrow()
        return table
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    return pa.Table.from_pandas(data, preserve_index=False)


class Client:
    """A connection to one Taehwa server: `url` of its HTTP API, an API `token`, and optionally the `flight`
    location (grpc://host:port) that bulk reads and writes then use."""

    def __init__(
        self, url: str, token: str, *, flight: str | None = None, timeout_s: float = 60.0, verify: bool | str = True
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s, verify=verify
        )
        self._token = token
        self._flight_location = flight
        self._flight: Any = None

    def close(self) -> None:
        """Close the connections."""
        self._http.close()
        if self._flight is not None:
            self._flight.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP ---------------------------------------------------------------------------------------------------
    def _call(
        self,
        name: str,
        tenant: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        route = ROUTES[name]
        sent = {k: v for k, v in (params or {}).items() if v is not None}
        unknown = set(sent) - route.params
        if unknown:  # a programming error in this module, caught by its tests
            raise InvalidInput(f"{name} does not take {sorted(unknown)}", where="params")
        path = route.path.format(tenant=tenant) if tenant is not None else route.path
        response = self._http.request(route.method.upper(), path, params=sent, content=content, headers=headers)
        if response.status_code >= 400:
            raise _error(response)
        return response

    def tenants(self) -> list[dict[str, Any]]:
        """The tenants the caller may see."""
        body: list[dict[str, Any]] = self._call("tenants").json()
        return body

    def tags(self, tenant: str, prefix: str | None = None, limit: int | None = None) -> list[Tag]:
        """A tenant's tags with their metadata, optionally under a path prefix."""
        body = self._call("tags", tenant, params={"prefix": prefix, "limit": limit}).json()
        return [
            Tag(
                t["name"],
                t.get("unit"),
                t.get("description"),
                t.get("eng_low"),
                t.get("eng_high"),
                t.get("interval_s"),
                t.get("attributes") or {},
            )
            for t in body["tags"]
        ]

    def latest(self, tenant: str, tags: list[str] | None = None, *, output: Output = "pandas") -> Any:
        """The newest point of each named tag (or every tag)."""
        params = {"tags": ",".join(tags) if tags else None, "format": "arrow"}
        return _convert(pa.ipc.open_stream(self._call("latest", tenant, params=params).content).read_all(), output)

    def stats(self, tenant: str) -> dict[str, Any]:
        """Files, rows and bytes of a tenant's store."""
        body: dict[str, Any] = self._call("stats", tenant).json()
        return body

    def query(
        self,
        tenant: str,
        tags: list[str] | str,
        start: Time,
        end: Time,
        *,
        every: str | None = None,
        agg: str = "avg",
        step: str | None = None,
        method: str = "previous",
        align: bool = False,
        limit: int | None = None,
        output: Output = "pandas",
        via: Literal["auto", "http", "flight"] = "auto",
    ) -> Any:
        """Raw points, downsampled buckets (`every`, `agg`) or interpolated values (`step`, `method`, `align`)
        in [start, end); over Flight when the client has a Flight location (`via="auto"`)."""
        names = [tags] if isinstance(tags, str) else list(tags)
        options: dict[str, Any] = {
            "every": every,
            "agg": agg if every else None,
            "step": step,
            "method": method if step else None,
            "align": align or None,
            "limit": limit,
        }
        options = {k: v for k, v in options.items() if v is not None}
        if via == "flight" or (via == "auto" and self._flight_location):
            table = self._flight_get(
                {"tenant": tenant, "tags": names, "start": _iso(start), "end": _iso(end), **options}
            )
        else:
            params = {
                "tags": ",".join(names),
                "start": _iso(start),
                "end": _iso(end),
                "format": "arrow",
                **{k: (str(v).lower() if isinstance(v, bool) else v) for k, v in options.items()},
            }
            table = pa.ipc.open_stream(self._call("query", tenant, params=params).content).read_all()
        return _convert(table, output)

    def write(
        self, tenant: str, data: Any, *, layout: str = "auto", via: Literal["auto", "http", "flight"] = "auto"
    ) -> dict[str, int]:
        """Store points (Arrow, pandas or polars; long tag,time,value[,quality] or wide), all or nothing."""
        table = _as_table(data)
        if via == "flight" or (via == "auto" and self._flight_location):
            return self._flight_put(tenant, table, layout)
        body: dict[str, int] = self._call(
            "write",
            tenant,
            params={"layout": layout},
            content=_arrow_body(table),
            headers={"Content-Type": ARROW_STREAM},
        ).json()
        return body

    # -- Flight -------------------------------------------------------------------------------------------------
    def _flight_client(self) -> Any:
        import pyarrow.flight as fl

        if self._flight_location is None:
            raise InvalidInput(
                "this client has no Flight location; give Client(…, flight='grpc://host:port')", where="flight"
            )
        if self._flight is None:
            self._flight = fl.FlightClient(self._flight_location)
        return self._flight

    def _options(self) -> Any:
        import pyarrow.flight as fl

        return fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {self._token}".encode())])

    def _flight_get(self, request: dict[str, Any]) -> pa.Table:
        import pyarrow.flight as fl

        client = self._flight_client()
        try:
            table: pa.Table = client.do_get(fl.Ticket(orjson.dumps(request)), options=self._options()).read_all()
        except (fl.FlightError, pa.ArrowInvalid) as exc:
            raise _flight_error(exc) from None
        return table

    def _flight_put(self, tenant: str, table: pa.Table, layout: str) -> dict[str, int]:
        import pyarrow.flight as fl

        client = self._flight_client()
        descriptor = fl.FlightDescriptor.for_command(orjson.dumps({"tenant": tenant, "layout": layout}))
        try:
            writer, reader = client.do_put(descriptor, table.schema, options=self._options())
            writer.write_table(table)
            writer.done_writing()
            answer = reader.read()
            writer.close()
        except (fl.FlightError, pa.ArrowInvalid) as exc:
            raise _flight_error(exc) from None
        result: dict[str, int] = orjson.loads(answer.to_pybytes()) if answer is not None else {}
        return result


def _error(response: httpx.Response) -> TaehwaError:
    """An HTTP error answer as the Taehwa error it stands for (message and place as the server said)."""
    try:
        body = response.json()
        message, where = str(body.get("message", response.text)), body.get("where")
    except ValueError:
        message, where = response.text[:300] or response.reason_phrase, None
    return _ERRORS.get(response.status_code, TaehwaError)(message, where=where)


def _flight_error(exc: Exception) -> TaehwaError:
    """A Flight error as the Taehwa error it stands for."""
    import pyarrow.flight as fl

    text = str(exc).split("\n")[0].split(". Detail:")[0].split(". gRPC client debug context")[0]
    for prefix in ("Flight error: ", "Invalid: "):
        text = text.removeprefix(prefix)
    where = "flight"
    if text.endswith(")") and " (" in text:  # the server's "message (where)"
        text, _, where = text[:-1].rpartition(" (")
    kinds: list[tuple[type, type[TaehwaError]]] = [
        (fl.FlightUnauthenticatedError, Unauthorized),
        (fl.FlightUnauthorizedError, Forbidden),
        (fl.FlightUnavailableError, Unavailable),
        (pa.ArrowInvalid, InvalidInput),
    ]
    extra = getattr(exc, "extra_info", b"") or b""
    told: dict[bytes, type[TaehwaError]] = {
        b"not_found": NotFound,
        b"invalid_input": InvalidInput,
        b"payload_too_large": PayloadTooLarge,
    }
    if extra in told:
        return told[extra](text, where=where)
    for kind, error in kinds:
        if isinstance(exc, kind):
            return error(text, where=where)
    return TaehwaError(text, where=where)
