"""Arrow Flight for notebooks: a range of tags as a stream of record batches (`do_get`), and points written as
Arrow streams (`do_put`) through the historian's checked write path (tenant, role, all-or-nothing, audit), as
over HTTP. Callers send their API token as `authorization: Bearer <token>`, as over HTTP.

Answers carry the tag column dictionary-encoded (each name once per batch; a categorical in pandas).
A ticket (and a put's descriptor command) is JSON: `{"tenant": "acme", "tags": ["a", "b"], "start": "…", "end":
"…"}` plus the HTTP query's options (`every`, `agg`, `step`, `method`, `align`, `limit`); a put names `tenant` and
optionally `layout`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as fl

from taehwa.core.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TaehwaError,
    Unauthorized,
    Unavailable,
)
from taehwa.historian.store import Historian
from taehwa.tenancy.access import Principal, acting_as, anonymous
from taehwa.tenancy.tenants import TenantService

MAX_TICKET_BYTES = 64 * 1024
BATCH_ROWS = 1 << 18  # the most rows one record batch of an answer carries
READ_KEYS = {"tenant", "tags", "start", "end", "every", "agg", "step", "method", "align", "limit"}
PUT_KEYS = {"tenant", "layout"}


class _Caller(fl.ServerMiddleware):  # type: ignore[misc]
    def __init__(self, principal: Principal) -> None:
        self.principal = principal


class _CallerFactory(fl.ServerMiddlewareFactory):  # type: ignore[misc]
    """Turns each call's bearer token into its caller (an anonymous one, refused by every check, without)."""

    def __init__(self, authenticate: Callable[[str, str | None], Principal]) -> None:
        super().__init__()
        self.authenticate = authenticate

    def start_call(self, info: Any, headers: dict[str, list[str]]) -> _Caller:
        values = headers.get("authorization") or headers.get("Authorization") or []
        scheme, _, token = (values[0] if values else "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _Caller(anonymous("missing bearer token; send 'authorization: Bearer <token>'"))
        try:
            return _Caller(self.authenticate(token.strip(), "flight"))
        except Unauthorized as exc:
            return _Caller(anonymous(exc.message))


def _flight_error(exc: TaehwaError) -> Exception:
    """A Taehwa error as the Flight error a client can tell apart: the gRPC code where one fits, the kind in the
    error's extra info (`invalid_input`, `not_found`, …), and what was wrong and where in its message. (Flight's
    own error types also keep the server's traceback out of the answer.)"""
    text = exc.message + (f" ({exc.where})" if exc.where else "")
    kind = _KINDS.get(type(exc), type(exc).__name__).encode()
    kinds: list[tuple[type[TaehwaError], Any]] = [
        (Unauthorized, fl.FlightUnauthenticatedError),
        (Forbidden, fl.FlightUnauthorizedError),
        (Unavailable, fl.FlightUnavailableError),
    ]
    for taehwa, error in kinds:
        if isinstance(exc, taehwa):
            made: Exception = error(text, extra_info=kind)
            return made
    server: Exception = fl.FlightServerError(text, extra_info=kind)
    return server


_KINDS: dict[type[TaehwaError], str] = {
    InvalidInput: "invalid_input",
    NotFound: "not_found",
    PayloadTooLarge: "payload_too_large",
}


def _request(raw: bytes, allowed: set[str], what: str) -> dict[str, Any]:
    if len(raw) > MAX_TICKET_BYTES:
        raise InvalidInput(f"the {what} is over {MAX_TICKET_BYTES} bytes", where=what)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidInput(f"the {what} is not JSON", where=what) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tenant"), str):
        raise InvalidInput(f'the {what} is a JSON object naming its "tenant"', where=what)
    extra = sorted(set(doc) - allowed)
    if extra:
        raise InvalidInput(f"unknown key {extra[0][:40]!r} in the {what}; use {', '.join(sorted(allowed))}", where=what)
    return doc


class FlightService(fl.FlightServerBase):  # type: ignore[misc]
    """The Flight endpoint of a running platform."""

    def __init__(
        self,
        location: str,
        *,
        historian: Historian,
        tenants: TenantService,
        authenticate: Callable[[str, str | None], Principal],
        max_put_bytes: int,
        tls: tuple[bytes, bytes] | None = None,
    ) -> None:
        """`tenants`: the tenant book (a write's tenant checked before its body is read); `authenticate`: a bearer
        token to its caller, as over HTTP; `max_put_bytes`: the largest write, as
        the HTTP body limit; `tls`: a (certificate, key) PEM pair for grpc+tls."""
        kwargs: dict[str, Any] = {"middleware": {"caller": _CallerFactory(authenticate)}}
        if tls is not None:
            kwargs["tls_certificates"] = [fl.CertKeyPair(cert=tls[0], key=tls[1])]
        super().__init__(location, **kwargs)
        self.historian, self.tenants, self.max_put_bytes = historian, tenants, max_put_bytes
        self._thread: threading.Thread | None = None

    def _as_caller(self, context: Any, call: Callable[[], Any]) -> Any:
        principal: Principal = context.get_middleware("caller").principal
        try:
            with acting_as(principal):
                return call()
        except TaehwaError as exc:
            raise _flight_error(exc) from None

    def do_get(self, context: Any, ticket: fl.Ticket) -> fl.RecordBatchStream:
        """A query's answer as record batches: raw points, downsampled buckets or interpolated values."""

        def run() -> pa.Table | pa.RecordBatchReader:
            doc = _request(ticket.ticket, READ_KEYS, "ticket")
            tags = doc.get("tags")
            if isinstance(tags, str):
                tags = [t.strip() for t in tags.split(",") if t.strip()]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise InvalidInput("tags is a list of tag names", where="tags")
            options = {k: doc[k] for k in ("every", "agg", "step", "method", "align", "limit") if k in doc}
            if not options.keys() & {"every", "step", "limit", "align"}:  # raw points: streamed as they are read
                return self.historian.read_stream(
                    doc["tenant"], tags, doc.get("start"), doc.get("end"), batch_rows=BATCH_ROWS
                )
            return self.historian.query(doc["tenant"], tags, doc.get("start"), doc.get("end"), **options)

        answer = self._as_caller(context, run)
        if isinstance(answer, pa.RecordBatchReader):
            return fl.RecordBatchStream(answer)
        table: pa.Table = answer
        i = table.column_names.index("tag") if "tag" in table.column_names else -1
        if i >= 0:  # each name once per batch, not once per point (pandas: a categorical)
            table = table.set_column(i, "tag", pc.dictionary_encode(table.column(i)))
        # batches of at most BATCH_ROWS: gRPC sends a day of 200 tags (38 MB) in 26 ms as such, 58 ms as one message
        return fl.RecordBatchStream(pa.RecordBatchReader.from_batches(table.schema, table.to_batches(BATCH_ROWS)))

    def get_flight_info(self, context: Any, descriptor: fl.FlightDescriptor) -> fl.FlightInfo:
        """What a ticket of this command would return (its schema, via a query of the same range)."""
        table = self._as_caller(context, lambda: self._query_table(descriptor.command))
        return fl.FlightInfo(
            table.schema, descriptor, [fl.FlightEndpoint(descriptor.command, [])], table.num_rows, table.nbytes
        )

    def _query_table(self, command: bytes) -> pa.Table:
        doc = _request(command, READ_KEYS, "command")
        options = {k: doc[k] for k in ("every", "agg", "step", "method", "align", "limit") if k in doc}
        tags = doc.get("tags")
        if not isinstance(tags, list):
            raise InvalidInput("tags is a list of tag names", where="tags")
        return self.historian.query(doc["tenant"], tags, doc.get("start"), doc.get("end"), **options)

    def do_put(
        self,
        context: Any,
        descriptor: fl.FlightDescriptor,
        reader: fl.MetadataRecordBatchReader,
        writer: fl.FlightMetadataWriter,
    ) -> None:
        """Store an Arrow stream of points (long or wide, as over HTTP), all or nothing."""

        def run() -> None:
            doc = _request(descriptor.command, PUT_KEYS, "command")
            tenant = doc["tenant"]
            self.tenants.require(tenant, "write")  # before a byte of the body is read
            batches, size = [], 0
            for chunk in reader:
                size += chunk.data.nbytes
                if size > self.max_put_bytes:
                    raise PayloadTooLarge(f"the stream is over the limit of {self.max_put_bytes} bytes", where="body")
                batches.append(chunk.data)
            table = pa.Table.from_batches(batches, schema=reader.schema)
            try:
                table.validate(full=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise InvalidInput(f"not a valid Arrow stream: {str(exc).splitlines()[0]}", where="body") from None
            result = self.historian.write(tenant, table, source="flight", layout=doc.get("layout", "auto"))
            writer.write(pa.py_buffer(orjson.dumps({"stored": result.points, "tags": result.tags})))

        self._as_caller(context, run)

    def start(self) -> int:
        """Serve in a background thread; returns the port."""
        self._thread = threading.Thread(target=self.serve, name="flight", daemon=True)
        self._thread.start()
        return int(self.port)

    def close(self) -> None:
        """Stop serving."""
        self.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=10)
