"""The analytics expression language: a small grammar parsed by Lark (LALR), never `eval`, into a tree of frozen
nodes that the checker resolves and the compiler turns into NumPy.

    flow * head * 9.81 / (power * 1000)          arithmetic over an asset's signals and attributes
    sum(children(Line).flow)                     aggregates over the children of a type (sum mean min max count)
    rolling_mean(flow, 10min) > 5 and not trip   windows, comparisons, logic
    discharge_pressure > high_warning for 60s    an event condition held for a duration
    state changes to 0                           an edge: the instant a signal becomes a value

Hostile input is bounded before Lark sees it: at most `MAX_CHARS` characters, parentheses nested at most
`MAX_DEPTH` deep, and at most `MAX_NODES` nodes, so a long or deep expression costs microseconds, never a
RecursionError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from taehwa.core.errors import InvalidInput
from taehwa.core.timeutil import parse_duration

MAX_CHARS = 2_000
"""Longest expression accepted."""
MAX_DEPTH = 32
"""Deepest nesting of parentheses and calls."""
MAX_NODES = 500
"""Most nodes in one expression's tree."""

GRAMMAR = r"""
?start: condition
?condition: expr
          | expr "for" DURATION                 -> held
?expr: or_expr
?or_expr: and_expr ("or" and_expr)*           -> or_
?and_expr: not_expr ("and" not_expr)*         -> and_
?not_expr: "not" not_expr                     -> not_
         | compare
?compare: sum
        | sum CMP sum                         -> cmp
        | sum "changes" "to" sum              -> changes_to
        | sum "changes"                       -> changes
?sum: product
    | sum ADD product                         -> binop
?product: unary
        | product MUL unary                   -> binop
?unary: "-" unary                             -> neg
      | "+" unary
      | power
?power: postfix
      | postfix POW unary                     -> binop
?postfix: atom
        | postfix "." NAME                    -> member
?atom: NUMBER                                 -> number
     | DURATION                               -> duration
     | NAME                                   -> name
     | NAME "(" [arg ("," arg)*] ")"          -> call
     | "(" expr ")"
?arg: expr

CMP: ">=" | "<=" | "==" | "!=" | ">" | "<"
ADD: "+" | "-"
MUL: "*" | "/" | "%"
POW: "^" | "**"
DURATION.3: /\d+(\.\d+)?(ms|s|min|h|d)(?![A-Za-z0-9_])/
NUMBER.2: /(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?(?![A-Za-z_])/
NAME: /(?!(and|or|not|for|changes|to)\b)[A-Za-z_][A-Za-z0-9_]*/
%import common.WS
%ignore WS
"""

_PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)


@dataclass(frozen=True)
class Node:
    """Any node of an expression tree."""


@dataclass(frozen=True)
class Num(Node):
    """A number literal."""

    value: float


@dataclass(frozen=True)
class Dur(Node):
    """A duration literal (10min), in microseconds."""

    us: int
    text: str


@dataclass(frozen=True)
class Name(Node):
    """A bare name: a signal, an attribute or a limit of the asset."""

    name: str
    col: int


@dataclass(frozen=True)
class Member(Node):
    """`base.name`: a signal of a child set (children(Line).flow) or a limit of a signal (pressure.high_alarm)."""

    base: Node
    name: str


@dataclass(frozen=True)
class Call(Node):
    """A function call."""

    fn: str
    args: tuple[Node, ...]
    col: int


@dataclass(frozen=True)
class BinOp(Node):
    """Arithmetic, comparison or logic between two operands."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Neg(Node):
    """Arithmetic negation."""

    operand: Node


@dataclass(frozen=True)
class Not(Node):
    """Logical negation."""

    operand: Node


@dataclass(frozen=True)
class Held(Node):
    """`condition for 60s`: true once the condition has been true for the duration (event conditions only)."""

    cond: Node
    us: int


@dataclass(frozen=True)
class Changes(Node):
    """`x changes` / `x changes to v`: true at the instant x takes a new value (or the value v)."""

    operand: Node
    to: Node | None


@v_args(inline=True)
class _Build(Transformer[Token, Node]):
    """Lark's parse tree into frozen nodes."""

    def number(self, tok: Token) -> Node:
        return Num(float(tok))

    def duration(self, tok: Token) -> Node:
        return Dur(_duration_us(str(tok)), str(tok))

    def name(self, tok: Token) -> Node:
        return Name(str(tok), (tok.column or 1))

    def member(self, base: Node, tok: Token) -> Node:
        return Member(base, str(tok))

    def call(self, tok: Token, *args: Node) -> Node:
        return Call(str(tok), tuple(args), (tok.column or 1))

    def binop(self, left: Node, op: Token, right: Node) -> Node:
        return BinOp("^" if str(op) == "**" else str(op), left, right)

    def cmp(self, left: Node, op: Token, right: Node) -> Node:
        return BinOp(str(op), left, right)

    def neg(self, operand: Node) -> Node:
        return Neg(operand)

    def not_(self, operand: Node) -> Node:
        return Not(operand)

    def or_(self, *items: Node) -> Node:
        return _chain("or", items)

    def and_(self, *items: Node) -> Node:
        return _chain("and", items)

    def held(self, cond: Node, tok: Token) -> Node:
        return Held(cond, _duration_us(str(tok)))

    def changes_to(self, operand: Node, to: Node) -> Node:
        return Changes(operand, to)

    def changes(self, operand: Node) -> Node:
        return Changes(operand, None)


def _chain(op: str, items: tuple[Node, ...]) -> Node:
    out = items[0]
    for item in items[1:]:
        out = BinOp(op, out, item)
    return out


def _duration_us(text: str) -> int:
    return int(parse_duration(text.replace("min", "m") if text.endswith("min") else text, field="duration"))


_WORD_OPS = re.compile(r"\b(not|and|or)\b")
_PREFIX_RUN = re.compile(r"(?:(?:\bnot\b|[-+])\s*){17,}")


def _bounded(text: str, where: str) -> None:
    if not isinstance(text, str):
        raise InvalidInput("an expression must be a text", where=where)
    if len(text) > MAX_CHARS:
        raise InvalidInput(f"the expression is {len(text)} characters long, over the limit of {MAX_CHARS}", where=where)
    if not text.strip():
        raise InvalidInput("the expression is empty", where=where)
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidInput(f"the expression nests parentheses deeper than {MAX_DEPTH} levels", where=where)
        elif ch == ")":
            depth -= 1
    if _PREFIX_RUN.search(text):
        raise InvalidInput("the expression has more than 16 signs or 'not's in a row", where=where)
    tokens = sum(1 for ch in text if ch in "+-*/%^<>=!,.") + len(_WORD_OPS.findall(text))
    if tokens > MAX_NODES:
        raise InvalidInput(f"the expression has more than {MAX_NODES} operators", where=where)


def parse(text: str, *, where: str = "expr", condition: bool = False) -> Node:
    """Parse one expression (a condition may end in `for <duration>`); InvalidInput says where it went wrong."""
    _bounded(text, where)
    try:
        return _parse(text, where, condition)
    except RecursionError:  # not reached within the bounds above; kept so no expression can be a 500
        raise InvalidInput(f"the expression nests deeper than {MAX_DEPTH} levels", where=where) from None


def _parse(text: str, where: str, condition: bool) -> Node:
    try:
        tree = _PARSER.parse(text)
    except UnexpectedCharacters as exc:
        raise InvalidInput(f"unexpected character {exc.char!r} at column {exc.column}", where=where) from None
    except UnexpectedEOF:
        raise InvalidInput("the expression ends too soon (an operand or a ')' is missing)", where=where) from None
    except UnexpectedToken as exc:
        tok = exc.token
        if tok.type == "$END":
            raise InvalidInput("the expression ends too soon (an operand or a ')' is missing)", where=where) from None
        raise InvalidInput(f"unexpected {str(tok)[:20]!r} at column {tok.column}", where=where) from None
    except (UnexpectedInput, LarkError) as exc:
        raise InvalidInput(f"not a valid expression: {str(exc).splitlines()[0][:80]}", where=where) from None
    try:
        node = _Build().transform(tree)
    except LarkError as exc:  # a duration that does not parse, raised inside the transformer
        cause = exc.__context__
        msg = cause.message if isinstance(cause, InvalidInput) else "not a valid expression"
        raise InvalidInput(msg, where=where) from None
    if size(node) > MAX_NODES:
        raise InvalidInput(f"the expression has more than {MAX_NODES} parts", where=where)
    if not condition and _has_condition_form(node):
        raise InvalidInput("'for' and 'changes' belong in event conditions, not in calculated signals", where=where)
    return node


def children_of(node: Node) -> tuple[Node, ...]:
    """The direct operands of a node."""
    if isinstance(node, Member):
        return (node.base,)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, BinOp):
        return (node.left, node.right)
    if isinstance(node, Neg | Not):
        return (node.operand,)
    if isinstance(node, Held):
        return (node.cond,)
    if isinstance(node, Changes):
        return (node.operand,) if node.to is None else (node.operand, node.to)
    return ()


def walk(node: Node) -> list[Node]:
    """Every node of a tree (iterative)."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(children_of(n))
    return out


def size(node: Node) -> int:
    """Nodes in a tree."""
    return len(walk(node))


def _has_condition_form(node: Node) -> bool:
    return any(isinstance(n, Held | Changes) for n in walk(node))
