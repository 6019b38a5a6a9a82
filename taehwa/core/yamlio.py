"""Bounded reading of the YAML and JSON documents callers send (plant files, lab and academy specs, connector
definitions, CLI files): the one place they are parsed.

YAML values remember the line they came from, so a validation error can name it. Every document is refused,
cheaply and with the line where it went wrong, when it is larger than `MAX_DOCUMENT_BYTES`, nests deeper than
`MAX_DEPTH`, or uses aliases that would expand to more than `MAX_ALIAS_NODES` nodes (a 454-byte "billion laughs"
otherwise becomes gigabytes once walked), so a hostile document costs milliseconds and megabytes.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import yaml

from taehwa.core.errors import InvalidInput, Location, PayloadTooLarge

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
"""Largest YAML or JSON document read from a caller (bulk points have their own, larger limit)."""
MAX_DEPTH = 100
"""Deepest nesting of mappings and lists (a plant's asset tree of 30 levels is about 60)."""
MAX_ALIASES = 1_000
"""Most alias uses (*name, <<: *name) in one YAML document."""
MAX_ALIAS_NODES = 10_000
"""Most nodes all the aliases of one YAML document may add when expanded."""


class Located(dict[str, Any]):
    """A YAML mapping with the line it starts on and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        """The line a key is written on (the mapping's own line if the key is absent)."""
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    """A safe loader whose mappings are `Located`; duplicate keys are errors, not silently overwritten; nesting
    and alias expansion are counted while the document is composed, before anything is built from it."""

    def __init__(self, stream: str | bytes, max_depth: int = MAX_DEPTH) -> None:
        super().__init__(stream)
        self._max_depth = max_depth
        self._depth = 0
        self._aliases = 0
        self._alias_nodes = 0
        self._open: set[str] = set()  # anchors of the nodes being composed (an alias to one is a cycle)
        self._sizes: dict[int, int] = {}  # expanded size of each finished node, by id

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 (PyYAML's name)
        """`[` or `{`, refused past the depth limit already in the scanner: with thousands of open flow
        collections its look-ahead for simple keys grows quadratic (100k `[` took 3.5 s before the composer saw
        the first)."""
        if self.flow_level >= self._max_depth:
            raise yaml.scanner.ScannerError(None, None, f"nested deeper than {self._max_depth} levels", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        """One node, refused past the depth limit or when an alias is recursive or expands too far."""
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if event.anchor in self._open:
                raise yaml.composer.ComposerError(
                    None, None, f"alias *{event.anchor} refers to a node it is inside (a cycle)", event.start_mark
                )
            target = self.anchors.get(event.anchor) if event.anchor is not None else None
            if target is not None:
                self._count_alias(target, event.start_mark)
            return super().compose_node(parent, index)
        if self._depth >= self._max_depth:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {self._max_depth} levels", mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node

    def compose_sequence_node(self, anchor: Any) -> yaml.SequenceNode:
        """A sequence; its anchor is open (an alias to it would be a cycle) while its items are composed."""
        return self._composing(super().compose_sequence_node, anchor)  # type: ignore[no-any-return]

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:
        """A mapping; its anchor is open while its items are composed."""
        return self._composing(super().compose_mapping_node, anchor)  # type: ignore[no-any-return]

    def _composing(self, compose: Any, anchor: str | None) -> Any:
        if anchor is None:
            return compose(anchor)
        self._open.add(anchor)
        try:
            return compose(anchor)
        finally:
            self._open.discard(anchor)

    def _count_alias(self, target: yaml.Node, mark: yaml.Mark) -> None:
        """Add an alias use to the document's budget (count and expanded nodes)."""
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise yaml.composer.ComposerError(None, None, f"more than {MAX_ALIASES} aliases", mark)
        size = self._expanded_size(target, mark)
        self._alias_nodes += size
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases expand to more than {MAX_ALIAS_NODES} nodes; write the repeated part "
                "out or use fewer aliases",
                mark,
            )

    def _expanded_size(self, root: yaml.Node, mark: yaml.Mark) -> int:
        """Nodes in `root` once every alias inside it is expanded (memoised, so linear in the document)."""
        stack: list[tuple[yaml.Node, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            if id(node) in self._sizes:
                continue
            children = _children(node)
            if done:
                self._sizes[id(node)] = 1 + sum(self._sizes[id(c)] for c in children)
            else:
                stack.append((node, True))
                stack.extend((c, False) for c in children if id(c) not in self._sizes)
        return self._sizes[id(root)]

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value; one Python cannot build (a 5,000-digit integer, 2024-13-45) is an error at its line."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError) as exc:
            if isinstance(exc, yaml.YAMLError):
                raise
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read value: {_short(exc)}", node.start_mark
            ) from None


def _short(exc: BaseException) -> str:
    """The first line of an exception's message, cut short (it may quote the input)."""
    return str(exc).split("\n")[0][:120]


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly inside a node (keys and values of a mapping)."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    out = Located()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            )
        key = str(key)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def check_size(data: str | bytes, *, source: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> None:
    """Refuse a document over the size limit (413), before any parsing."""
    size = len(data.encode() if isinstance(data, str) and len(data) * 4 > max_bytes else data)
    if size > max_bytes:
        raise PayloadTooLarge(f"the document is {size} bytes, over the limit of {max_bytes}", where=source)


def load_yaml(text: str | bytes, *, source: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Parse YAML within the size, depth and alias limits; every error is InvalidInput naming the line and
    column (and never quoting more of the document than the offending token)."""
    check_size(text, source=source, max_bytes=max_bytes)
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except RecursionError:  # not reached within MAX_DEPTH; kept so a deep document can never be a 500
        raise InvalidInput(f"nested deeper than {MAX_DEPTH} levels", where=source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = Location(source, line=mark.line + 1, column=mark.column + 1) if mark else Location(source)
        raise InvalidInput(f"not valid YAML: {exc.problem or exc}", where=where) from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML: {exc}", where=source) from None


def load_yaml_file(path: Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Parse a YAML file within the limits (a file over the size limit is not read)."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise PayloadTooLarge(f"the file is {size} bytes, over the limit of {max_bytes}", where=path.name)
        with path.open("rb") as fh:
            text = fh.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read file: {exc.strerror}", where=path.name) from None
    return load_yaml(text, source=path.name, max_bytes=max_bytes)


def load_json(
    data: str | bytes, *, source: str, max_bytes: int = MAX_DOCUMENT_BYTES, max_depth: int = MAX_DEPTH
) -> Any:
    """Parse a JSON document within the size and depth limits; errors are InvalidInput naming the position."""
    check_size(data, source=source, max_bytes=max_bytes)
    try:
        doc = orjson.loads(data)  # in Rust, not recursive in Python; refuses more than 1,024 levels itself
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg or "recursion" in exc.msg:
            raise InvalidInput(f"nested deeper than {max_depth} levels", where=source) from None
        raise InvalidInput(
            f"not valid JSON: {exc.msg}", where=Location(source, line=exc.lineno, column=exc.colno)
        ) from None
    check_depth(doc, source=source, max_depth=max_depth)
    return doc


def check_depth(doc: Any, *, source: str, max_depth: int = MAX_DEPTH) -> None:
    """Refuse data (parsed JSON, a request body) that nests lists and mappings deeper than the limit; iterative,
    so it cannot itself run out of stack."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > max_depth:
            raise InvalidInput(f"nested deeper than {max_depth} levels", where=source)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, dict | list))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, dict | list))


def line_of(value: Any, key: str | None = None) -> int | None:
    """The line of a value read by `load_yaml` (None for values built in code, e.g. from JSON)."""
    if isinstance(value, Located):
        return value.line_of(key) if key else value.line
    return None


def dump_yaml(data: Any) -> str:
    """Readable YAML: keys in the order given, short leaf mappings and lists on one line, Unicode kept."""
    return yaml.dump(
        plain(data), Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True, width=120, default_flow_style=None
    )


def plain(value: Any) -> Any:
    """Plain data for YAML and JSON: text keys, lists for tuples, dates as ISO text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
