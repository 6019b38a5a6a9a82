"""The downsampling queries dashboards send, answered by the historian's own downsample (its minute, hour and day
summaries, as over HTTP) instead of a scan of the points: Grafana's time groups (`time_bucket(INTERVAL '1 minute',
time)`, or `floor(extract(epoch from time)/60)*60`) over `points`, for tags named by `tag = '…'` or `tag IN (…)`,
in a closed time range, with avg, min, max, sum or count of `value`, grouped by the bucket (and the tag).

Only that shape is recognised, from the query's syntax tree (sqlglot, which the protocol library already uses);
anything else in the query (another view, a join, a filter on the value, HAVING, LIMIT, a window) leaves it to
DuckDB. The answer's column names and types are DuckDB's own, from binding the query without running it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
import sqlglot.expressions as exp

from taehwa.core.timeutil import to_us

# bucket widths: DuckDB's time_bucket counts buckets from 2000-01-03, which is a whole number of them from the
# epoch (where the historian's buckets start) for any width dividing a day
_UNITS_US = {"MICROSECOND": 1, "MILLISECOND": 1_000, "SECOND": 1_000_000, "MINUTE": 60_000_000}
_UNITS_US |= {"HOUR": 3_600_000_000, "DAY": 86_400_000_000}
_DAY_US = 86_400_000_000
_AGGS: dict[type[exp.Expression], str] = {exp.Avg: "avg", exp.Min: "min", exp.Max: "max", exp.Sum: "sum"}
_AGGS[exp.Count] = "count"
_CLAUSES = {"expressions", "from_", "where", "group", "order"}  # a query with any other clause is DuckDB's
_POINT_COLUMNS = ("tag", "time", "value", "quality")
_BIN_ARGS = ("this", "expression")  # time_bucket(width, time): an offset or an origin moves the buckets
_UTC_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?(?:Z|\+00(?::?00)?)?")
MAX_CHARS = 20_000  # a dashboard's query is a few hundred characters; a longer text is DuckDB's, unparsed here


@dataclass(frozen=True)
class Downsampling:
    """A recognised query: the historian's downsample to run, and how its answer becomes the query's columns."""

    tags: tuple[str, ...]
    start_us: int
    end_us: int
    every_us: int
    columns: tuple[str, ...]  # per selected column: "bucket", "tag", or an aggregate's name
    epoch_seconds: bool  # the bucket as seconds since the epoch (floor(extract(epoch …))), else a timestamp
    order: tuple[tuple[str, bool], ...]  # ("bucket" | "tag", descending)

    @property
    def aggregates(self) -> list[str]:
        """The aggregates to ask the historian for, each once."""
        return list(dict.fromkeys(c for c in self.columns if c not in ("bucket", "tag")))


def recognise(sql: str) -> Downsampling | None:
    """The downsampling this query asks for, or None when it is any other query (DuckDB then answers it, or says
    what is wrong with it)."""
    if len(sql) > MAX_CHARS:
        return None
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
        return _recognise(tree)
    except (sqlglot.errors.SqlglotError, ValueError, RecursionError):  # sqlglot recurses per nesting level
        return None


def _recognise(tree: exp.Expr) -> Downsampling | None:
    if not isinstance(tree, exp.Select) or any(v for k, v in tree.args.items() if k not in _CLAUSES and v):
        return None
    source = tree.args.get("from_")
    if source is None or not isinstance(source.this, exp.Table) or source.this.name != "points":
        return None
    if source.this.args.get("db") or source.this.args.get("catalog"):
        return None
    alias = source.this.alias_or_name
    columns: list[str] = []
    names: dict[str, str] = {}  # an output alias → its column kind
    every = None
    epoch = False
    for item in tree.expressions:
        node = item.this if isinstance(item, exp.Alias) else item
        kind, width, is_epoch = _column(node, alias)
        if kind is None:
            return None
        if kind == "bucket":
            if every is not None and (width != every or is_epoch != epoch):
                return None
            every, epoch = width, is_epoch
        columns.append(kind)
        if isinstance(item, exp.Alias):
            names[item.alias] = kind
    if every is None or every <= 0 or _DAY_US % every:
        return None
    where = tree.args.get("where")
    bounds = _where(where.this, alias) if where is not None else None
    if bounds is None:
        return None
    tags, start, end = bounds
    group = tree.args.get("group")
    keys = [_key(g, columns, names, alias, every, epoch) for g in (group.expressions if group else [])]
    if None in keys or "bucket" not in keys or set(columns) - {"bucket", "tag"} == set():
        return None
    if "tag" in columns and "tag" not in keys:
        return None
    if "tag" not in keys and len(tags) != 1:  # one row per bucket over several tags: not a per-tag downsample
        return None
    order: list[tuple[str, bool]] = []
    order_by = tree.args.get("order")
    for o in order_by.expressions if order_by else []:
        key = _key(o.this, columns, names, alias, every, epoch, order=True)
        if key is None or key not in keys:
            return None
        order.append((key, bool(o.args.get("desc"))))
    return Downsampling(tuple(tags), start, end, every, tuple(columns), epoch, tuple(order))


def _is_column(node: exp.Expression, name: str, alias: str) -> bool:
    return isinstance(node, exp.Column) and node.name == name and node.table in ("", alias, "points")


def _column(node: exp.Expression, alias: str) -> tuple[str | None, int, bool]:
    """What a selected expression is: ("bucket", width µs, as epoch seconds), ("tag", …), an aggregate, or None."""
    if _is_column(node, "tag", alias):
        return "tag", 0, False
    width = _bucket(node, alias)
    if width is not None:
        return "bucket", width[0], width[1]
    for cls, name in _AGGS.items():
        if type(node) is cls and not node.args.get("distinct"):
            arg = node.this
            if _is_column(arg, "value", alias) or (name == "count" and isinstance(arg, exp.Star)):
                return name, 0, False
    return None, 0, False


def _bucket(node: exp.Expression, alias: str) -> tuple[int, bool] | None:
    """The bucket width (µs) of time_bucket(INTERVAL 'n unit', time) or of floor(extract(epoch from time)/n)*n."""
    extra = isinstance(node, exp.DateBin) and any(v is not None for k, v in node.args.items() if k not in _BIN_ARGS)
    if isinstance(node, exp.DateBin) and _is_column(node.expression, "time", alias) and not extra:  # no offset
        interval = node.this
        if isinstance(interval, exp.Interval) and isinstance(interval.this, exp.Literal) and interval.unit:
            unit = interval.unit.name.upper().rstrip("S")
            try:
                n = float(interval.this.this)
            except ValueError:
                return None
            if unit in _UNITS_US and n > 0 and (n * _UNITS_US[unit]).is_integer():
                return int(n * _UNITS_US[unit]), False
        return None
    if isinstance(node, exp.Mul) and isinstance(node.this, exp.Floor) and isinstance(node.this.this, exp.Div):
        div, n = node.this.this, node.expression
        extract = div.this
        if (
            isinstance(extract, exp.Extract)
            and extract.this.name.upper() == "EPOCH"
            and _is_column(extract.expression, "time", alias)
            and _number(div.expression) is not None
            and _number(div.expression) == _number(n)
        ):
            seconds = _number(n)
            assert seconds is not None
            if seconds > 0 and seconds.is_integer():  # whole seconds: the bucket start is then the same double
                return int(seconds * 1_000_000), True
    return None


def _number(node: exp.Expression) -> float | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this)
    return None


def _key(
    node: exp.Expression,
    columns: list[str],
    names: dict[str, str],
    alias: str,
    every: int,
    epoch: bool,
    *,
    order: bool = False,
) -> str | None:
    """What a GROUP BY or ORDER BY item stands for: a column's position, a name, or the expression itself. A bare
    name is bound as DuckDB binds it: in GROUP BY to a column of `points` before an alias of the select list, in
    ORDER BY to an alias first (`… AS time … GROUP BY time` groups by every point's time)."""
    if isinstance(node, exp.Literal) and not node.is_string:
        k = int(node.this) - 1 if str(node.this).isdigit() else -1
        return columns[k] if 0 <= k < len(columns) and columns[k] in ("bucket", "tag") else None
    if isinstance(node, exp.Column) and not node.table:
        if order and node.name in names:
            return names[node.name] if names[node.name] in ("bucket", "tag") else None
        if node.name in _POINT_COLUMNS:
            return "tag" if node.name == "tag" else None
        if node.name in names:
            return names[node.name] if names[node.name] in ("bucket", "tag") else None
    if _is_column(node, "tag", alias):
        return "tag"
    return "bucket" if _bucket(node, alias) == (every, epoch) else None


def _where(node: exp.Expression, alias: str) -> tuple[list[str], int, int] | None:
    """The tags and the [start, end) range of a WHERE that is only `tag = …` or `tag IN (…)` and time bounds."""
    terms: list[exp.Expression] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, exp.And):
            stack += [n.this, n.expression]
        elif isinstance(n, exp.Paren):
            stack.append(n.this)
        else:
            terms.append(n)
    tags: list[str] | None = None
    start: int | None = None
    end: int | None = None
    for t in terms:
        if isinstance(t, exp.EQ) and _is_column(t.this, "tag", alias) and _string(t.expression) is not None:
            found = [_string(t.expression)]
        elif isinstance(t, exp.In) and _is_column(t.this, "tag", alias) and not t.args.get("query"):
            found = [_string(e) for e in t.expressions]
        elif isinstance(t, exp.Between) and _is_column(t.this, "time", alias):
            lo, hi = _time(t.args["low"]), _time(t.args["high"])
            if lo is None or hi is None:
                return None
            start = lo if start is None else max(start, lo)
            end = hi + 1 if end is None else min(end, hi + 1)
            continue
        elif isinstance(t, (exp.GTE, exp.GT, exp.LT, exp.LTE)) and _is_column(t.this, "time", alias):
            at = _time(t.expression)
            if at is None:
                return None
            if isinstance(t, (exp.GTE, exp.GT)):
                lo = at + (1 if isinstance(t, exp.GT) else 0)
                start = lo if start is None else max(start, lo)
            else:
                hi = at + (1 if isinstance(t, exp.LTE) else 0)
                end = hi if end is None else min(end, hi)
            continue
        else:
            return None
        if tags is not None or None in found or not found:
            return None
        tags = [f for f in found if f is not None]
    if tags is None or start is None or end is None or end <= start or start < 0:
        return None
    return tags, start, end


def _string(node: exp.Expression) -> str | None:
    return str(node.this) if isinstance(node, exp.Literal) and node.is_string else None


def _time(node: exp.Expression) -> int | None:
    """A UTC time literal ('2026-01-01T00:00:00Z', with +00:00, or without an offset; TIMESTAMP '…') in µs."""
    if isinstance(node, exp.Cast) and node.to.this in (exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ):
        node = node.this
    text = _string(node)
    if text is None or not _UTC_TIME.fullmatch(text):  # what DuckDB reads as a timestamp, in UTC, and no more
        return None
    text = text.removesuffix("Z").split("+")[0]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        return None
    return to_us(parsed.replace(tzinfo=UTC))


_ARROW = {"TIMESTAMP": pa.timestamp("us"), "DOUBLE": pa.float64(), "BIGINT": pa.int64(), "VARCHAR": pa.string()}


def answer(shape: Downsampling, table: pa.Table, names: list[str], types: list[str]) -> pa.Table | None:
    """The historian's downsample (tag, time, one column per aggregate) as the query's own columns, named and typed
    as DuckDB binds them, in its ORDER BY; None when DuckDB would give a type this does not make."""
    arrow = [_ARROW.get(t) for t in types]
    if None in arrow or len(names) != len(shape.columns):
        return None
    if shape.order:
        table = table.sort_by(
            [("tag" if k == "tag" else "time", "descending" if d else "ascending") for k, d in shape.order]
        )
    columns = []
    for kind, kind_type in zip(shape.columns, arrow, strict=True):
        if kind == "bucket":
            times = table.column("time").cast(pa.timestamp("us"))
            column = pc.divide(times.cast(pa.int64()).cast(pa.float64()), 1e6) if shape.epoch_seconds else times
        else:
            column = table.column("tag" if kind == "tag" else kind)
        columns.append(column.cast(kind_type))
    return pa.Table.from_arrays(columns, names=names)
