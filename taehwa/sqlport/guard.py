"""What a SQL client may send: read-only queries, the transaction statements drivers send, and a few session
settings that drivers set on connecting (accepted and ignored). Everything else is refused before DuckDB runs it."""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from taehwa.core.errors import Forbidden, InvalidInput

MAX_SQL_CHARS = 100_000
# settings drivers and tools send on connecting; accepted, but none of them changes anything here
IGNORED_SETTINGS = frozenset(
    {
        "application_name",
        "extra_float_digits",
        "datestyle",
        "client_encoding",
        "client_min_messages",
        "search_path",
        "statement_timeout",
        "intervalstyle",
        "bytea_output",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
    }
)
_SET = re.compile(r"^\s*set\s+(?:session\s+|local\s+)?([a-z_]+)\s*(?:=|\bto\b)", re.IGNORECASE)
_TIMEZONE = re.compile(r"^\s*set\s+(?:session\s+)?time\s*zone\s+'?(utc|gmt|etc/utc|z)'?\s*;?\s*$", re.IGNORECASE)
_TRANSACTION = re.compile(r"^\s*(begin|start\s+transaction|commit|end|rollback|abort)\b[\w\s]*;?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    """One statement a client sent, as the guard judged it: run it ('query'), or answer it without running."""

    kind: str  # query | begin | commit | ignored
    sql: str


def judge(sql: str) -> list[Statement]:
    """Split a client's text into statements and say what each is; refuse the whole text if any statement
    writes, changes the session or reaches outside the views (COPY, ATTACH, INSTALL, LOAD, SET, PRAGMA, …)."""
    if len(sql) > MAX_SQL_CHARS:
        raise InvalidInput(f"the query text has {len(sql)} characters, over the limit of {MAX_SQL_CHARS}", where="sql")
    if not sql.strip().strip(";").strip():
        return []
    out: list[Statement] = []
    for part in _split(sql):
        out.append(_judge_one(part))
    return out


def _split(sql: str) -> list[str]:
    """The statements of a text, split by DuckDB's own parser (so quoting and comments are read as it reads them)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        if _SET.match(sql) or _TIMEZONE.match(sql) or _TRANSACTION.match(sql):
            return [sql]  # PostgreSQL spellings DuckDB does not parse (SET TIME ZONE 'UTC'): judged below
        raise InvalidInput(f"cannot parse the query: {str(exc).splitlines()[0][:300]}", where="sql") from None
    return [s.query for s in statements]


def _judge_one(sql: str) -> Statement:
    if _TRANSACTION.match(sql):
        word = sql.strip().split()[0].lower()
        return Statement("begin" if word in ("begin", "start") else "commit", sql)
    if _TIMEZONE.match(sql):
        return Statement("ignored", sql)  # the session's time zone is UTC already
    setting = _SET.match(sql)
    if setting:
        name = setting.group(1).lower()
        if name in IGNORED_SETTINGS:
            return Statement("ignored", sql)
        raise Forbidden(f"setting {name!r} cannot be changed over the SQL port", where="sql")
    try:
        parsed = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InvalidInput(f"cannot parse the query: {str(exc).splitlines()[0][:300]}", where="sql") from None
    if len(parsed) != 1:
        raise InvalidInput("one statement at a time", where="sql")
    kind = parsed[0].type
    if kind in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
        return Statement("query", sql)
    name = str(kind).rsplit(".", 1)[-1]
    raise Forbidden(
        f"the SQL port is read-only: a {name} statement is refused; send SELECT queries over the "
        "views points, latest, tags, assets, signals and alerts",
        where="sql",
    )
