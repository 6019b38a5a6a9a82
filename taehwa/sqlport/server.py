"""The PostgreSQL wire protocol, spoken by buenavista's handler, with Taehwa's sign-in and tenant choice.

A client connects with the tenant as its database name (`psql -h HOST -p PORT -U USER -d TENANT`) and signs in
with an API token as its password (any user name), or with its user name and password; the server asks for the
password in clear text, so use TLS (TAEHWA_TLS_CERT/TAEHWA_TLS_KEY) beyond loopback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import socketserver
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from buenavista import core as bv
from buenavista import postgres as bvpg

from taehwa.core.errors import Forbidden, InvalidInput, NotFound, TaehwaError, Unauthorized
from taehwa.core.names import check_tenant
from taehwa.historian.store import Historian
from taehwa.sqlport.session import Answer, Limits, SqlSession
from taehwa.sqlport.sources import Alerts, TenantSources, Twin
from taehwa.tenancy.access import Principal, acting_as, check
from taehwa.tenancy.audit import AuditLog
from taehwa.tenancy.identity import IdentityService
from taehwa.tenancy.tenants import TenantService

log = logging.getLogger(__name__)
logging.getLogger("buenavista").setLevel(logging.CRITICAL)  # it logs every query's text and each failure twice
SSL_REQUEST, PROTOCOL_3, CANCEL_REQUEST, GSS_REQUEST = 80877103, 196608, 80877102, 80877104
MAX_STARTUP_BYTES = 10_000
MAX_MESSAGE_BYTES = 64 << 20
SQLSTATE = {Unauthorized: "28P01", Forbidden: "42501", NotFound: "42P01", InvalidInput: "42601"}
PARAMETERS = {
    "server_version": "15.0 (Taehwa)",
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "TimeZone": "UTC",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "application_name": "",
}


def _bvtype(t: pa.DataType) -> bv.BVType:
    if pa.types.is_boolean(t):
        return bv.BVType.BOOL
    if pa.types.is_integer(t):
        return bv.BVType.BIGINT if t.bit_width == 64 or t == pa.uint32() else bv.BVType.INTEGER
    if pa.types.is_floating(t):
        return bv.BVType.FLOAT
    if pa.types.is_timestamp(t):
        return bv.BVType.TIMESTAMP
    if pa.types.is_date(t):
        return bv.BVType.DATE
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return bv.BVType.TEXT
    if pa.types.is_decimal(t):
        return bv.BVType.DECIMAL
    return bv.BVType.UNKNOWN  # sent as text


class ArrowResult(bv.QueryResult):  # type: ignore[misc]
    """An answer in buenavista's terms: Arrow columns as PostgreSQL types, times as naive UTC."""

    def __init__(self, answer: Answer) -> None:
        super().__init__()
        self.answer = answer
        table = answer.table
        if table is not None:
            for i, field in enumerate(table.schema):
                if pa.types.is_timestamp(field.type) and field.type.tz is not None:
                    table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp("us")))
            self.table = table
            self.types = [_bvtype(f.type) for f in table.schema]

    def has_results(self) -> bool:
        return self.answer.table is not None

    def column_count(self) -> int:
        return int(self.table.num_columns)

    def column(self, index: int) -> tuple[str, bv.BVType]:
        return self.table.schema.names[index], self.types[index]

    def rows(self) -> Iterator[list[Any]]:
        columns = [self._values(i) for i in range(self.table.num_columns)]
        return (list(r) for r in zip(*columns, strict=True))

    def _values(self, i: int) -> list[Any]:
        values: list[Any] = self.table.column(i).to_pylist()
        if self.types[i] == bv.BVType.UNKNOWN:
            return [None if v is None else str(v) for v in values]
        return values

    def status(self) -> str:
        return self.answer.status


class BridgeSession(bv.Session):  # type: ignore[misc]
    """buenavista's session over one `SqlSession` (made once the client has signed in)."""

    def __init__(self) -> None:
        super().__init__()
        self.sql: SqlSession | None = None

    def execute_sql(self, sql: str, params: Any = None) -> bv.QueryResult:
        if self.sql is None:
            raise Unauthorized("sign in first", where="password")
        return ArrowResult(self.sql.execute(sql, list(params) if params else None))

    def in_transaction(self) -> bool:
        return self.sql is not None and self.sql.in_transaction

    def close(self) -> None:
        if self.sql is not None:
            self.sql.close()


class BridgeConnection(bv.Connection):  # type: ignore[misc]
    """Makes one session per client connection."""

    def new_session(self) -> bv.Session:
        return BridgeSession()

    def parameters(self) -> dict[str, str]:
        return dict(PARAMETERS)


class Handler(bvpg.BuenaVistaHandler):  # type: ignore[misc]
    """buenavista's protocol handler, with TLS, clear-text password sign-in checked by Taehwa, the tenant from
    the database name, and errors that carry PostgreSQL severities and SQLSTATE codes."""

    server: SqlServer
    r: Any
    request: Any

    def handle_startup(self, conn: bv.Connection) -> bvpg.BVContext | None:
        length = self.r.read_uint32()
        if not 8 <= length <= MAX_STARTUP_BYTES:
            raise InvalidInput("malformed startup message", where="startup")
        code = self.r.read_uint32()
        if code == SSL_REQUEST:
            if self.server.tls is None:
                self.wfile.write(b"N")
            else:
                self.wfile.write(b"S")
                self.wfile.flush()
                self.request = self.server.tls.wrap_socket(self.request, server_side=True)
                self.setup()  # the reading and writing files, now over TLS
                self.r = bvpg.BVBuffer(self.rfile)
            return self.handle_startup(conn)
        if code == GSS_REQUEST:
            self.wfile.write(b"N")
            return self.handle_startup(conn)
        if code == CANCEL_REQUEST:
            pid, key = self.r.read_uint32(), self.r.read_uint32()
            ctx = self.server.ctxts.get(pid)
            if ctx is not None and ctx.secret_key == key and ctx.session.sql is not None:
                ctx.session.sql.interrupt()
            return None
        if code != PROTOCOL_3:
            raise InvalidInput(
                f"unsupported protocol {code >> 16}.{code & 0xFFFF}; use PostgreSQL protocol 3.0", where="startup"
            )
        raw = self.r.read_bytes(length - 8).split(b"\x00")
        words = [w.decode("utf-8", "replace") for w in raw]
        params = dict(zip(words[::2], words[1::2], strict=False))
        ctx = bvpg.BVContext(conn.create_session(), None, params)
        self.wfile.write(struct.pack("!cii", b"R", 8, 3))  # AuthenticationCleartextPassword
        return ctx

    def handle_md5_password(self, ctx: bvpg.BVContext, payload: bytes) -> None:
        """The password message (clear text, as asked): sign in, pick the tenant, make the session."""
        password = payload.rstrip(b"\x00").decode("utf-8", "replace")
        user = ctx.params.get("user", "")
        tenant = ctx.params.get("database") or user
        source = f"{self.client_address[0]}:{self.client_address[1]}"
        try:
            ctx.session.sql = self.server.open_session(user, password, tenant, source)
        except TaehwaError as exc:
            self.send_error(exc, fatal=True)
            raise _Closed from None
        self.send_authentication_ok()
        self.handle_post_auth(ctx)

    def handle_bind(self, ctx: bvpg.BVContext, payload: bytes) -> None:
        """Bind: parameter values decoded by the type the client declared for each (text, numbers, times)."""
        buf = bvpg.BVBuffer(io.BytesIO(payload))
        portal, stmt = _cstring(buf), _cstring(buf)
        formats = [buf.read_int16() for _ in range(buf.read_int16())]
        count = buf.read_int16()
        oids = ctx.stmts[stmt][1]
        values: list[Any] = []
        for i in range(count):
            size = buf.read_int32()
            raw = None if size < 0 else buf.read_bytes(size)
            fmt = formats[i] if len(formats) > 1 else (formats[0] if formats else 0)
            try:
                values.append(None if raw is None else _param(raw, oids[i] if i < len(oids) else 0, fmt))
            except (ValueError, struct.error):
                self.send_error(
                    InvalidInput(f"parameter ${i + 1} is not a valid value of type {oids[i]}", where="parameter"), ctx
                )
                return
        results = [buf.read_int16() for _ in range(buf.read_int16())]
        ctx.add_portal(portal, stmt, values, results)
        self.send_bind_complete()

    def handle(self) -> None:
        """buenavista's message loop, ending quietly when the client goes or its sign-in fails."""
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.request.settimeout(self.server.idle_timeout_s)
        self.r = bvpg.BVBuffer(self.rfile)
        ctx: bvpg.BVContext | None = None
        try:
            ctx = self.handle_startup(self.server.conn)
            if ctx is not None:
                self.server.ctxts[ctx.process_id] = ctx
            while ctx is not None:
                code = self.r.read_byte()
                if not code or code == bvpg.ClientCommand.TERMINATE:
                    break
                size = self.r.read_uint32()
                if not 4 <= size <= MAX_MESSAGE_BYTES:
                    raise InvalidInput(f"a message of {size} bytes", where="protocol")
                payload = self.r.read_bytes(size - 4) if size > 4 else b""
                self._dispatch(ctx, code, payload)
        except (_Closed, OSError, struct.error):
            pass
        except TaehwaError as exc:
            with contextlib.suppress(_Closed, OSError):
                self.send_error(exc, fatal=True)
        except Exception as exc:  # a malformed message buenavista's parser trips on
            log.warning("SQL port: closing a connection from %s: %s", self.client_address[0], exc)
            with contextlib.suppress(_Closed, OSError):
                self.send_error(InvalidInput("malformed message", where="protocol"), fatal=True)
        finally:
            if ctx is not None:
                self.server.conn.close_session(ctx.session)
                self.server.ctxts.pop(ctx.process_id, None)

    def finish(self) -> None:
        """Close the TLS socket too (the server closes only the plain one it handed over)."""
        with contextlib.suppress(OSError):
            super().finish()
        if isinstance(self.request, ssl.SSLSocket):
            with contextlib.suppress(OSError):
                self.request.close()

    def _dispatch(self, ctx: bvpg.BVContext, code: bytes, payload: bytes) -> None:
        cmd = bvpg.ClientCommand
        if not ctx.authenticated:
            if code != cmd.PASSWORD_MESSAGE:
                raise Unauthorized("sign in first: send the password", where="password")
            self.handle_md5_password(ctx, payload)
            return
        handlers = {
            cmd.QUERY: self.handle_query,
            cmd.PARSE: self.handle_parse,
            cmd.BIND: self.handle_bind,
            cmd.DESCRIBE: self.handle_describe,
            cmd.EXECUTE: self.handle_execute,
            cmd.CLOSE: self.handle_close,
        }
        if code in handlers:
            handlers[code](ctx, payload)
        elif code == cmd.SYNC:
            ctx.sync()
            self.send_ready_for_query(ctx)
        elif code == cmd.FLUSH:
            self.wfile.flush()
        else:
            raise InvalidInput(f"unknown message type {code!r}", where="protocol")

    def send_data_rows(self, query_result: bv.QueryResult, limit: int = 0) -> int:
        """DataRow messages built by Arrow, all columns at once, into one buffer written in a few writes
        (buenavista converts, packs and writes one value and row at a time: 12 ms of a tag-day's 1,440 rows)."""
        if not isinstance(query_result, ArrowResult):
            return int(super().send_data_rows(query_result, limit))
        table: pa.Table = query_result.table
        if limit > 0:
            table = table.slice(0, limit)
        count, rows = table.num_columns, table.num_rows
        if rows == 0:
            return 0
        fields = []
        for i in range(count):
            pgtype = bvpg.BVTYPE_TO_PGTYPE.get(query_result.column(i)[1], bvpg.PG_UNKNOWN)
            text = not query_result.result_format or query_result.result_format[i] == 0
            fields.append(_fields(table.column(i), query_result.types[i], pgtype[1] if text else pgtype[2], text))
        sizes = np.full(rows, 6, np.int64)
        for f in fields:
            sizes += pc.binary_length(f).to_numpy(zero_copy_only=False)
        head = np.empty(rows, dtype=[("D", "S1"), ("n", ">i4"), ("c", ">i2")])
        head["D"], head["n"], head["c"] = b"D", sizes, count
        heads = pa.FixedSizeBinaryArray.from_buffers(pa.binary(7), rows, [None, pa.py_buffer(head.tobytes())])
        joined = pc.binary_join_element_wise(heads.cast(pa.binary()), *fields, b"")
        offsets = np.frombuffer(joined.buffers()[1], np.int32, rows + 1, joined.offset * 4)
        data = joined.buffers()[2]
        chunk = 1 << 20
        at = int(offsets[0])
        while at < offsets[-1]:
            upto = int(offsets[min(int(np.searchsorted(offsets, at + chunk)), rows)])
            self.wfile.write(data[at:upto].to_pybytes())
            at = upto
        return int(rows)

    def send_error(self, exception: Any, ctx: bvpg.BVContext | None = None, *, fatal: bool = False) -> None:
        """An ErrorResponse with severity, SQLSTATE and message (and the place, for Taehwa's errors)."""
        if isinstance(exception, TaehwaError):
            code = next((c for k, c in SQLSTATE.items() if isinstance(exception, k)), "XX000")
            message = exception.message + (f" ({exception.where})" if exception.where else "")
        else:
            code, message = "XX000", str(exception)[:300] or "internal error"
            log.warning("SQL port: %s", message)
        fields = [
            (b"S", "FATAL" if fatal else "ERROR"),
            (b"V", "FATAL" if fatal else "ERROR"),
            (b"C", code),
            (b"M", message),
        ]
        body = b"".join(k + v.encode("utf-8") + b"\x00" for k, v in fields) + b"\x00"
        self.wfile.write(struct.pack("!ci", b"E", len(body) + 4) + body)
        if ctx is not None:
            ctx.mark_error()


_NULL = pa.scalar(b"\xff\xff\xff\xff", pa.binary())


def _fields(column: pa.ChunkedArray, bvtype: bv.BVType, convert: Callable[[Any], Any], text: bool) -> pa.Array:
    """One column as DataRow fields (a 4-byte length, then the bytes; length -1 for NULL): numbers, text and
    times as text by Arrow's own casts, anything else value by value as buenavista writes it."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    t = column.type
    values: pa.Array | None = None
    if text and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_string(t)):
        values = column.cast(pa.string())  # floats as their shortest exact text, as PostgreSQL sends them
    elif text and pa.types.is_boolean(t):
        values = pc.if_else(column, "true", "false")
    elif text and pa.types.is_timestamp(t) and t.tz is None and bvtype == bv.BVType.TIMESTAMP:
        us = column.cast(pa.timestamp("us")).cast(pa.int64())
        if pc.min(us).as_py() is not None and pc.min(us).as_py() >= 0:  # before 1970 by value (its rounding)
            seconds = pc.divide(us, 1_000_000).cast(pa.timestamp("s")).cast(pa.string())  # 2026-01-01 00:00:00
            micros = pc.subtract(us, pc.multiply(pc.divide(us, 1_000_000), 1_000_000))
            if pc.max(micros).as_py() == 0:
                values = seconds
            else:  # a fraction only where there is one, as datetime.isoformat writes it
                padded = pc.utf8_lpad(micros.cast(pa.string()), 6, "0")
                frac = pc.if_else(pc.equal(micros, 0), "", pc.binary_join_element_wise(".", padded, ""))
                values = pc.binary_join_element_wise(seconds, frac, "")
    if values is None:  # by value: buenavista's own conversion
        raw = column.to_pylist()
        if bvtype == bv.BVType.UNKNOWN:
            raw = [None if v is None else str(v) for v in raw]
        values = pa.array(
            [None if v is None else (convert(v).encode("utf-8") if text else convert(v)) for v in raw], pa.binary()
        )
    values = values.cast(pa.binary())
    lengths = pc.fill_null(pc.binary_length(values), 0).to_numpy(zero_copy_only=False).astype(">i4")
    prefix = pa.FixedSizeBinaryArray.from_buffers(pa.binary(4), len(values), [None, pa.py_buffer(lengths.tobytes())])
    return pc.fill_null(pc.binary_join_element_wise(prefix.cast(pa.binary()), values, b""), _NULL)


def _cstring(buf: bvpg.BVBuffer) -> str:
    out = bytearray()
    while (b := buf.read_byte()) not in (b"", b"\x00"):
        out += b
    return out.decode("utf-8", "replace")


_PG_EPOCH = datetime(2000, 1, 1)


def _param(raw: bytes, oid: int, fmt: int) -> Any:
    """One bound parameter as a Python value, by its declared type (unknown types stay text)."""
    if fmt == 1:  # binary
        if oid in (20, 21, 23):
            return int.from_bytes(raw, "big", signed=True)
        if oid in (700, 701):
            return struct.unpack("!f" if oid == 700 else "!d", raw)[0]
        if oid == 16:
            return raw != b"\x00"
        if oid in (1114, 1184):
            return _PG_EPOCH + timedelta(microseconds=int.from_bytes(raw, "big", signed=True))
        if oid in (0, 25, 1043, 705):
            return raw.decode("utf-8")
        raise InvalidInput(f"parameters of type {oid} are sent as text here; bind it as text", where="parameter")
    text = raw.decode("utf-8")
    if oid in (20, 21, 23):
        return int(text)
    if oid in (700, 701, 1700):
        return float(text)
    if oid == 16:
        return text.lower() in ("t", "true", "1", "on", "yes")
    if oid in (1114, 1184):
        value = datetime.fromisoformat(text.replace(" ", "T"))
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return text


class _Closed(Exception):
    """The connection ends here (a failed sign-in, or a client gone)."""


class SqlServer(socketserver.ThreadingTCPServer):
    """A thread per client; `verify_request` admits every address the listening socket accepts."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], port: SqlPort, tls: ssl.SSLContext | None) -> None:
        super().__init__(address, Handler)
        self.conn = BridgeConnection()
        self.rewriter = None
        self.extensions: dict[str, Any] = {}
        self.ctxts: dict[int, bvpg.BVContext] = {}
        self.auth: dict[str, str] = {}  # not buenavista's md5 table: `Handler` asks for the password itself
        self.port, self.tls = port, tls
        self.idle_timeout_s = 3600.0

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return True

    def open_session(self, user: str, password: str, tenant: str, source: str) -> SqlSession:
        """Sign a client in and make its session."""
        return self.port.open_session(user, password, tenant, source)


@dataclass(frozen=True)
class Credentials:
    """How a client signed in, kept to ask again before each query."""

    user: str
    token: str | None


class SqlPort:
    """The SQL port of a running platform: listens, signs clients in, gives each a session on its tenant."""

    def __init__(
        self,
        *,
        historian: Historian,
        twin: Twin,
        alerts: Alerts,
        tenants: TenantService,
        identity: IdentityService,
        audit: AuditLog,
        authenticate: Callable[[str, str | None], Principal],
        limits: Limits,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
    ) -> None:
        """The services the views read, sign-in (`authenticate`: a bearer token to its caller, as over HTTP;
        `identity`: user names and passwords), the tenant book, the audit log, per-query limits, and an optional TLS
        pair."""
        self.historian, self.twin, self.alerts, self.tenants = historian, twin, alerts, tenants
        self.identity, self.audit, self.authenticate, self.limits = identity, audit, authenticate, limits
        self.tls: ssl.SSLContext | None = None
        if tls_cert is not None and tls_key is not None:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(str(tls_cert), str(tls_key))
        self._server: SqlServer | None = None
        self._thread: threading.Thread | None = None

    def _caller(self, cred: Credentials, password: str | None, source: str) -> Principal:
        if cred.token is not None:
            return self.authenticate(cred.token, source)
        if password is not None:
            user = self.identity.login(cred.user, password, source=source)
        else:  # a later query of a password session: the user as it is now (disabled, roles changed)
            user = self.identity.get_user(cred.user)
            if user.disabled:
                raise Unauthorized(f"user {user.id!r} is disabled", where="user")
        return Principal(user.id, user.platform_admin, dict(user.roles), source=source)

    def open_session(self, user: str, password: str, tenant: str, source: str) -> SqlSession:
        """Check the password (an API token, or the user's own password), that the caller may read the tenant
        named as the database, and record the sign-in."""
        if not password:
            raise Unauthorized("send an API token (or your password) as the password", where="password")
        try:  # an API token (or the platform's own), whatever the user name
            cred = Credentials(user, password)
            principal = self._caller(cred, None, source)
        except Unauthorized:
            if password.startswith("thw_") or not user:
                raise
            cred = Credentials(user, None)
            principal = self._caller(cred, password, source)
        try:
            check_tenant(tenant)
        except InvalidInput:
            raise InvalidInput("name your tenant as the database (psql -d TENANT)", where="database") from None
        with acting_as(principal):
            check(tenant, "read")
            self.tenants.require(tenant)
            self.audit.append("sql.connect", tenant=tenant, target=principal.user, after={"source": source})

        def recheck() -> Principal:
            now = self._caller(cred, None, source)
            with acting_as(now):
                check(tenant, "read")
            return now

        sources = TenantSources(
            historian=self.historian, twin=self.twin, alerts=self.alerts, tenants=self.tenants, tenant=tenant
        )
        return SqlSession(sources=sources, audit=self.audit, principal=principal, recheck=recheck, limits=self.limits)

    def start(self, host: str, port: int) -> int:
        """Listen (port 0: any free one) and serve in a background thread; returns the port."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        SqlServer.address_family = family
        self._server = SqlServer((host, port), self, self.tls)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sql-port", daemon=True)
        self._thread.start()
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop listening, end the clients' sessions and write their queries' audit entries."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            for ctx in list(self._server.ctxts.values()):
                if ctx.session.sql is not None:
                    ctx.session.sql.interrupt()
            self._server = None
        try:  # the queries' deferred audit entries are written before the port is said closed
            self.audit.flush_deferred()
        except Exception:
            log.exception("SQL port: the deferred audit entries of its queries could not be written at close")
