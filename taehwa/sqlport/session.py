"""One SQL client's session: its own DuckDB connection, locked down (no files, no network, no extensions, no
settings, no Python variables), whose views show the caller's tenant; every query checked, bounded and audited."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from taehwa.core.errors import InvalidInput, NotFound, TaehwaError, Unavailable
from taehwa.sqlport import shortcut
from taehwa.sqlport.guard import judge
from taehwa.sqlport.sources import TenantSources
from taehwa.tenancy.access import Principal, acting_as
from taehwa.tenancy.audit import AuditLog

log = logging.getLogger(__name__)
QUERY_TIMEOUT_S = 120.0  # a query still running then is interrupted
MEMORY_LIMIT = "2GB"  # of one client's connection


@dataclass(frozen=True)
class Limits:
    """How much one query may take."""

    max_rows: int = 1_000_000
    timeout_s: float = QUERY_TIMEOUT_S
    memory_limit: str = MEMORY_LIMIT
    threads: int = 0


@dataclass
class Answer:
    """What a statement gave: a table of rows, or only a command tag (BEGIN, SET, …)."""

    table: pa.Table | None
    status: str


class SqlSession:
    """The state of one client connection: its caller, its tenant, its connection and transaction flag."""

    def __init__(
        self,
        *,
        sources: TenantSources,
        audit: AuditLog,
        principal: Principal,
        recheck: Callable[[], Principal],
        limits: Limits,
    ) -> None:
        """`recheck` asks again who the caller is (a revoked token or a role taken away ends access at the next
        query); `sources` fill the views as that caller."""
        self.sources, self.audit, self.principal, self.recheck = sources, audit, principal, recheck
        self.limits = limits
        self.tenant = sources.tenant
        self.in_transaction = False
        self._lock = threading.Lock()
        self.con = self._connect()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, Any] = {
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": self.limits.memory_limit,
        }
        if self.limits.threads:
            config["threads"] = self.limits.threads
        con = duckdb.connect(config=config)
        con.execute("SET python_enable_replacements = false")  # no query may read a Python variable by its name
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        self.sources.install(con, self._as_caller)
        con.execute("SET lock_configuration = true")  # nothing a client sends can change a setting back
        return con

    def _as_caller(self, call: Callable[[], Any]) -> Any:
        with acting_as(self.principal):
            return call()

    def interrupt(self) -> None:
        """Stop the running query (a client's cancel request, or its time limit)."""
        with contextlib.suppress(duckdb.Error):
            self.con.interrupt()

    def close(self) -> None:
        """Release the connection."""
        with contextlib.suppress(duckdb.Error):
            self.con.close()

    def execute(self, sql: str, params: list[Any] | None = None) -> Answer:
        """Run what a client sent (the last statement's answer comes back); refused, failed and answered queries
        alike are recorded in the audit log."""
        started = time.perf_counter()
        self.audit.check_deferred()  # a query whose entry could not be written is not run
        self.principal = self.recheck()
        with acting_as(self.principal):
            try:
                answer = self._execute(sql, params)
            except TaehwaError as exc:
                self._record(sql, started, error=exc.message)
                raise
            except duckdb.Error as exc:
                message = _duckdb_message(exc)
                self._record(sql, started, error=message)
                raise InvalidInput(message, where="sql") from None
            self._record(sql, started, rows=answer.table.num_rows if answer.table is not None else None)
            return answer

    def _execute(self, sql: str, params: list[Any] | None) -> Answer:
        statements = judge(sql)
        answer = Answer(None, "EMPTY")
        for st in statements:
            if st.kind == "begin":
                self.in_transaction = True
                answer = Answer(None, "BEGIN")
            elif st.kind == "commit":
                word = st.sql.strip().split()[0].upper()
                self.in_transaction = False
                answer = Answer(None, "ROLLBACK" if word in ("ROLLBACK", "ABORT") else "COMMIT")
            elif st.kind == "ignored":
                answer = Answer(None, "SET")
            else:
                self.sources.require()
                answer = Answer(self._query(st.sql, params if len(statements) == 1 else None), "SELECT")
        return answer

    def _query(self, sql: str, params: list[Any] | None) -> pa.Table:
        shape = None if params else shortcut.recognise(sql)
        if shape is not None:
            with self._lock:
                table = self._downsampled(sql, shape)
            if table is not None:
                return table
        with self._lock, contextlib.ExitStack() as stack:
            self.sources.fill(self.con, sql, stack)
            timer = threading.Timer(self.limits.timeout_s, self.con.interrupt)
            timer.daemon = True
            timer.start()
            try:
                relation = self.con.sql(sql, params=params or None)
                if relation is None:
                    return pa.table({})
                reader = relation.to_arrow_reader(65_536)
                batches, rows = [], 0
                for batch in reader:
                    rows += batch.num_rows
                    if rows > self.limits.max_rows:
                        raise self._too_many_rows()
                    batches.append(batch)
                return pa.Table.from_batches(batches, schema=reader.schema)
            except duckdb.InterruptException:
                raise Unavailable(
                    f"the query ran past {self.limits.timeout_s:g} s (or was cancelled) and was stopped", where="sql"
                ) from None
            finally:
                timer.cancel()

    def _downsampled(self, sql: str, shape: shortcut.Downsampling) -> pa.Table | None:
        """A dashboard's downsampling query answered by the historian's downsample (see `shortcut`); None leaves
        it to DuckDB (a type this does not make, or a tag that does not exist: DuckDB answers no rows)."""
        relation = self.con.sql(sql)  # bound, not run: the answer's column names and types as DuckDB gives them
        if relation is None:
            return None
        try:
            table = self.sources.downsampled(shape)
        except (NotFound, InvalidInput):  # a tag that does not exist, or a bucket count over max_query_points (a
            return None  # sparse tag may still have few rows): DuckDB answers from the points
        out = shortcut.answer(shape, table, list(relation.columns), [str(t) for t in relation.types])
        if out is not None and out.num_rows > self.limits.max_rows:
            raise self._too_many_rows()
        return out

    def _too_many_rows(self) -> InvalidInput:
        return InvalidInput(
            f"the answer has more than {self.limits.max_rows} rows; aggregate (downsample) or narrow the time range",
            where="sql",
        )

    def _record(self, sql: str, started: float, *, rows: int | None = None, error: str | None = None) -> None:
        after: dict[str, Any] = {"ms": round((time.perf_counter() - started) * 1000, 2), "via": "sql"}
        if rows is not None:
            after["rows"] = rows
        if error is not None:
            after["error"] = error[:300]
        # written with others within a fraction of a second (`AuditLog.append_deferred`): a read waits for no commit
        self.audit.append_deferred("sql.query", tenant=self.tenant, target=sql[:1000], after=after)


def _duckdb_message(exc: duckdb.Error) -> str:
    """A DuckDB error as one line for the client (its first line: what was wrong and where)."""
    text = str(exc).strip().splitlines()
    line = (text[0] if text else type(exc).__name__)[:500]
    if "_thw_" in line:  # a failure inside the views' own sources: their file names are not the client's business
        log.warning("SQL port: reading the views' sources failed: %s", line)
        return "the historian could not read its stored points for this query; see the server's log"
    return line
