"""Resolved expressions (plans): every name bound to what it means on an asset type (a signal read from a tag, an
attribute, a limit, an aggregate over children), calculated signals inlined, units inferred, and every problem
(unknown name, wrong arguments, unit mismatch, cycle) collected with where it is.

The checker reports the problems; the compiler evaluates the plans. One resolver serves both, so what is checked is
what runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from taehwa.analytics import units as u
from taehwa.analytics.expr import (
    BinOp,
    Call,
    Changes,
    Dur,
    Held,
    Member,
    Name,
    Neg,
    Node,
    Not,
    Num,
    parse,
)
from taehwa.core.errors import InvalidInput
from taehwa.twin.types import LIMIT_KEYS, AssetType

POINTWISE: dict[str, tuple[int, int]] = {  # name → (least, most) arguments
    "abs": (1, 1),
    "sqrt": (1, 1),
    "log": (1, 1),
    "exp": (1, 1),
    "round": (1, 1),
    "min": (2, 16),
    "max": (2, 16),
    "clip": (3, 3),
    "if": (3, 3),
}
AGGREGATES = ("sum", "mean", "avg", "min", "max", "count")
WINDOWS = ("rolling_mean", "rolling_min", "rolling_max", "rolling_sum", "integral", "rate", "delta", "time_in_state")
MAX_WINDOW_US = 31 * 24 * 3600 * 1_000_000
"""Longest window (a month): a window is history kept in memory for live computation."""
MAX_INLINED = 2_000
"""Most nodes of a plan once calculated signals it uses are inlined."""


@dataclass(frozen=True)
class P:
    """A plan node."""


@dataclass(frozen=True)
class Const(P):
    """A number."""

    value: float


@dataclass(frozen=True)
class Sig(P):
    """A signal of the asset, read from its tag (a sensor, or a derived signal written by a model)."""

    role: str


@dataclass(frozen=True)
class Attr(P):
    """An attribute of the asset (a number; per asset)."""

    name: str


@dataclass(frozen=True)
class Limit(P):
    """A limit of one of the asset's signals, as in force for that asset."""

    signal: str
    key: str


@dataclass(frozen=True)
class Func(P):
    """An operator or a pointwise function."""

    fn: str
    args: tuple[P, ...]


@dataclass(frozen=True)
class Window(P):
    """A function of the argument's values over the last `us` microseconds at each time."""

    fn: str
    arg: P
    us: int


@dataclass(frozen=True)
class Edge(P):
    """True at the times the argument takes a new value (or the value `to`)."""

    arg: P
    to: P | None


@dataclass(frozen=True)
class Agg(P):
    """An aggregate over the asset's children (or descendants) of a type, of a plan on each of them."""

    fn: str
    type: str
    deep: bool
    each: P


@dataclass
class Resolved:
    """A plan with its inferred unit (None: unknown) and its history need."""

    plan: P
    unit: u.Unit | None
    held_us: int = 0  # a condition's `for` duration
    problems: list[tuple[str, str]] = field(default_factory=list)


class Resolver:
    """Binds expressions of one plant's types; `problems` collects what is wrong (with `where`)."""

    def __init__(self, types: dict[str, AssetType]) -> None:
        self.types = types
        self.problems: list[tuple[str, str]] = []
        self._cache: dict[tuple[str, str], tuple[P, u.Unit | None] | None] = {}

    def calc(
        self, t: AssetType, signal: str, stack: tuple[tuple[str, str], ...] = ()
    ) -> tuple[P, u.Unit | None] | None:
        """The plan of a calculated signal of a type (None when it has problems, recorded once)."""
        key = (t.name, signal)
        if key in stack:
            chain = " → ".join(f"{n}.{s}" for n, s in (*stack[stack.index(key) :], key))
            spec = t.signals[signal]
            self.problems.append((spec.where or f"type {t.name}", f"calculated signals form a cycle: {chain}"))
            return None
        if key in self._cache:
            return self._cache[key]
        spec = t.signals[signal]
        where = spec.where or f"type {t.name}, signal {signal}"
        self._cache[key] = None
        try:
            node = parse(spec.expr or "", where=f"{where} ({t.name}.{signal})")
        except InvalidInput as exc:
            self.problems.append((exc.where or where, exc.message))
            return None
        before = len(self.problems)
        plan, unit = self._node(node, t, f"{where} ({t.name}.{signal})", (*stack, key))
        if len(self.problems) > before or plan is None:
            return None
        declared = u.parse_unit(spec.unit)
        if unit is not None and declared is not None and unit != declared:
            self.problems.append(
                (where, f"{t.name}.{signal} is declared in {spec.unit!r} but its expression gives {u.show(unit)}")
            )
            return None
        if _count(plan) > MAX_INLINED:
            self.problems.append(
                (
                    where,
                    f"{t.name}.{signal} is over {MAX_INLINED} parts once the calculated "
                    "signals it uses are written out",
                )
            )
            return None
        out = (plan, declared if declared is not None else unit)
        self._cache[key] = out
        return out

    def condition(self, t: AssetType, text: str, where: str) -> Resolved | None:
        """An event condition (may end in `for <duration>`) on a type."""
        try:
            node = parse(text, where=where, condition=True)
        except InvalidInput as exc:
            self.problems.append((exc.where or where, exc.message))
            return None
        held = 0
        if isinstance(node, Held):
            held, node = node.us, node.cond
        before = len(self.problems)
        plan, unit = self._node(node, t, where, ())
        if plan is None or len(self.problems) > before:
            return None
        return Resolved(plan, unit, held)

    def signal(self, t: AssetType, name: str, where: str) -> P | None:
        """A signal of a type by name, as a plan (for event statistics)."""
        plan, _ = self._node(Name(name, 1), t, where, ())
        return plan

    # -- nodes ------------------------------------------------------------------------------------------------
    def _bad(self, where: str, msg: str) -> tuple[None, None]:
        self.problems.append((where, msg))
        return None, None

    def _node(
        self, n: Node, t: AssetType, where: str, stack: tuple[tuple[str, str], ...]
    ) -> tuple[P | None, u.Unit | None]:
        if isinstance(n, Num):
            return Const(n.value), None
        if isinstance(n, Dur):
            return self._bad(
                where, f"a duration ({n.text}) is only the window of a function like rolling_mean(flow, 10min)"
            )
        if isinstance(n, Name):
            return self._name(n, t, where, stack)
        if isinstance(n, Member):
            return self._member(n, t, where)
        if isinstance(n, Neg):
            p, unit = self._node(n.operand, t, where, stack)
            return (Func("neg", (p,)), unit) if p is not None else (None, None)
        if isinstance(n, Not):
            p, _ = self._node(n.operand, t, where, stack)
            return (Func("not", (p,)), u.DIMENSIONLESS) if p is not None else (None, None)
        if isinstance(n, BinOp):
            return self._binop(n, t, where, stack)
        if isinstance(n, Changes):
            p, _ = self._node(n.operand, t, where, stack)
            to = None
            if n.to is not None:
                to, _ = self._node(n.to, t, where, stack)
                if to is None:
                    return None, None
            return (Edge(p, to), u.DIMENSIONLESS) if p is not None else (None, None)
        if isinstance(n, Held):
            return self._bad(where, "'for <duration>' may only end a whole condition")
        if isinstance(n, Call):
            return self._call(n, t, where, stack)
        return self._bad(where, "not a valid expression")

    def _name(
        self, n: Name, t: AssetType, where: str, stack: tuple[tuple[str, str], ...]
    ) -> tuple[P | None, u.Unit | None]:
        if n.name in t.signals:
            spec = t.signals[n.name]
            if spec.derived and spec.expr is not None:
                got = self.calc(t, n.name, stack)
                return got if got is not None else (None, None)
            return Sig(n.name), u.parse_unit(spec.unit)
        if n.name in t.attributes:
            attr = t.attributes[n.name]
            if attr.kind not in ("number", "integer", "boolean"):
                return self._bad(
                    where, f"attribute {n.name!r} of {t.name} is a {attr.kind}, not a number (column {n.col})"
                )
            return Attr(n.name), u.parse_unit(attr.unit)
        if n.name in LIMIT_KEYS:
            return self._bad(
                where,
                f"{n.name} alone does not say whose limit it is: write signal.{n.name}, or "
                f"compare it with a signal (column {n.col})",
            )
        known = sorted([*t.signals, *t.attributes])
        return self._bad(
            where,
            f"unknown name {n.name!r} at column {n.col}: {t.name} has "
            f"{', '.join(known[:30]) or 'no signals or attributes'}",
        )

    def _member(self, n: Member, t: AssetType, where: str) -> tuple[P | None, u.Unit | None]:
        if isinstance(n.base, Name) and n.name in LIMIT_KEYS:
            if n.base.name not in t.signals:
                return self._bad(where, f"unknown signal {n.base.name!r} at column {n.base.col}")
            return Limit(n.base.name, n.name), u.parse_unit(t.signals[n.base.name].unit)
        return self._bad(
            where, f".{n.name} is a child signal (sum(children(Type).{n.name})) or a limit ({', '.join(LIMIT_KEYS)})"
        )

    def _binop(
        self, n: BinOp, t: AssetType, where: str, stack: tuple[tuple[str, str], ...]
    ) -> tuple[P | None, u.Unit | None]:
        left, right = n.left, n.right
        if n.op in ("<", "<=", ">", ">=", "==", "!="):  # a bare limit takes the signal on the other side
            left, right = _limit_of(left, right), _limit_of(right, left)
        a, ua = self._node(left, t, where, stack)
        b, ub = self._node(right, t, where, stack)
        if a is None or b is None:
            return None, None
        if n.op in ("+", "-", "<", "<=", ">", ">=", "==", "!="):
            if ua is not None and ub is not None and ua != ub:
                verb = "adds" if n.op == "+" else "subtracts" if n.op == "-" else "compares"
                return self._bad(where, f"the expression {verb} {u.show(ua)} and {u.show(ub)}")
            unit = (ua if ua is not None else ub) if n.op in ("+", "-") else u.DIMENSIONLESS
            return Func(n.op, (a, b)), unit
        if n.op in ("and", "or"):
            return Func(n.op, (a, b)), u.DIMENSIONLESS
        if n.op in ("*", "/"):
            unit = u.multiply(ua, ub, 1 if n.op == "*" else -1) if ua is not None and ub is not None else None
            return Func(n.op, (a, b)), unit
        if n.op == "%":
            return Func("%", (a, b)), ua
        return Func("^", (a, b)), (u.DIMENSIONLESS if ua == u.DIMENSIONLESS else None)

    def _call(
        self, n: Call, t: AssetType, where: str, stack: tuple[tuple[str, str], ...]
    ) -> tuple[P | None, u.Unit | None]:
        fn = n.fn
        if fn in AGGREGATES and len(n.args) == 1 and isinstance(n.args[0], Member):
            return self._aggregate(n, n.args[0], t, where, stack)
        if fn in AGGREGATES and fn not in ("min", "max"):
            return self._bad(
                where, f"{fn}() takes the signal of a child set, as in {fn}(children(Line).flow) (column {n.col})"
            )
        if fn in ("children", "descendants"):
            return self._bad(
                where,
                f"{fn}(Type) is a set of assets: name one of their signals, as in "
                f"sum({fn}(Type).flow) (column {n.col})",
            )
        if fn in WINDOWS:
            if len(n.args) != 2 or not isinstance(n.args[1], Dur):
                return self._bad(
                    where, f"{fn}(signal, window) takes a signal and a duration like 10min (column {n.col})"
                )
            us = n.args[1].us
            if not 0 < us <= MAX_WINDOW_US:
                return self._bad(where, f"{fn}: the window must be above 0 and at most 31 days (column {n.col})")
            p, wunit = self._node(n.args[0], t, where, stack)
            if p is None:
                return None, None
            if fn == "integral":
                wunit = u.multiply(wunit, u.SECOND) if wunit is not None else None
            elif fn == "rate":
                wunit = u.multiply(wunit, u.SECOND, -1) if wunit is not None else None
            elif fn == "time_in_state":
                wunit = u.SECOND
            return Window(fn, p, us), wunit
        if fn not in POINTWISE:
            return self._bad(
                where,
                f"unknown function {fn!r} at column {n.col}; use "
                f"{', '.join(sorted({*POINTWISE, *AGGREGATES, *WINDOWS}))}",
            )
        least, most = POINTWISE[fn]
        if not least <= len(n.args) <= most:
            count = str(least) if least == most else f"{least} to {most}"
            return self._bad(where, f"{fn}() takes {count} arguments, got {len(n.args)} (column {n.col})")
        parts = [self._node(a, t, where, stack) for a in n.args]
        if any(p is None for p, _ in parts):
            return None, None
        plans = tuple(p for p, _ in parts if p is not None)
        us_ = [x for _, x in parts]
        unit: u.Unit | None = None
        if fn in ("abs", "round"):
            unit = us_[0]
        elif fn in ("min", "max", "clip", "if"):
            same = us_[1:] if fn == "if" else us_
            known = [x for x in same if x is not None]
            if any(x != known[0] for x in known):
                return self._bad(where, f"{fn}() mixes units {', '.join(sorted({u.show(x) for x in known}))}")
            unit = known[0] if known else None
        elif fn in ("log", "exp"):
            unit = u.DIMENSIONLESS
        return Func(fn, plans), unit

    def _aggregate(
        self, n: Call, arg: Member, t: AssetType, where: str, stack: tuple[tuple[str, str], ...]
    ) -> tuple[P | None, u.Unit | None]:
        base = arg.base
        if not (
            isinstance(base, Call)
            and base.fn in ("children", "descendants")
            and len(base.args) == 1
            and isinstance(base.args[0], Name)
        ):
            return self._bad(
                where, f"{n.fn}() takes children(Type).signal or descendants(Type).signal (column {n.col})"
            )
        type_name = base.args[0].name
        child = self.types.get(type_name)
        if child is None:
            return self._bad(where, f"unknown type {type_name!r} in {base.fn}() (column {base.col})")
        if arg.name not in child.signals:
            return self._bad(
                where,
                f"type {type_name} has no signal {arg.name!r}; it has "
                f"{', '.join(sorted(child.signals)[:30]) or 'none'}",
            )
        each, unit = self._name(Name(arg.name, base.col), child, where, stack)
        if each is None:
            return None, None
        fn = "mean" if n.fn == "avg" else n.fn
        return Agg(fn, type_name, base.fn == "descendants", each), (u.DIMENSIONLESS if fn == "count" else unit)


def _limit_of(node: Node, other: Node) -> Node:
    """A bare limit name compared with a signal means that signal's limit."""
    if isinstance(node, Name) and node.name in LIMIT_KEYS and isinstance(other, Name):
        return Member(other, node.name)
    return node


def _count(plan: P) -> int:
    return sum(1 for _ in nodes(plan))


def nodes(plan: P) -> list[P]:
    """Every node of a plan (iterative)."""
    out, stack = [], [plan]
    while stack:
        p = stack.pop()
        out.append(p)
        if isinstance(p, Func):
            stack.extend(p.args)
        elif isinstance(p, Window):
            stack.append(p.arg)
        elif isinstance(p, Edge):
            stack.append(p.arg)
            if p.to is not None:
                stack.append(p.to)
    return out


def history_us(plan: P) -> int:
    """How far back values must be kept to evaluate a plan at a time: the longest chain of nested windows."""
    if isinstance(plan, Window):
        return plan.us + history_us(plan.arg)
    if isinstance(plan, Func):
        return max((history_us(a) for a in plan.args), default=0)
    if isinstance(plan, Edge):
        return max(history_us(plan.arg), history_us(plan.to) if plan.to is not None else 0)
    if isinstance(plan, Agg):
        return history_us(plan.each)
    return 0


def roles(plan: P) -> tuple[set[str], set[tuple[str, bool, str]]]:
    """The asset's own signals a plan reads, and (type, deep, signal) of the children's."""
    own: set[str] = set()
    kids: set[tuple[str, bool, str]] = set()
    stack = [plan]
    while stack:
        p = stack.pop()
        if isinstance(p, Sig):
            own.add(p.role)
        elif isinstance(p, Agg):
            sub_own, _ = roles(p.each)
            kids.update((p.type, p.deep, r) for r in sub_own)
        else:
            stack.extend(n for n in _kids(p))
    return own, kids


def _kids(p: P) -> tuple[P, ...]:
    if isinstance(p, Func):
        return p.args
    if isinstance(p, Window):
        return (p.arg,)
    if isinstance(p, Edge):
        return (p.arg,) if p.to is None else (p.arg, p.to)
    return ()
