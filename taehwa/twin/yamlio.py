"""YAML reading that remembers where each value came from, so a validation error can name the line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from taehwa.errors import InvalidInput


class Located(dict[str, Any]):
    """A YAML mapping with the line it starts on and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        """The line a key is written on (the mapping's own line if the key is absent)."""
        return self.key_lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    """A safe loader whose mappings are `Located`; duplicate keys are errors, not silently overwritten."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> Located:
    loader.flatten_mapping(node)
    out = Located()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a plain value",
                                                    key_node.start_mark)
        key = str(key)
        if key in out:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice in one mapping",
                                                    key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(text: str | bytes, *, source: str) -> Any:
    """Parse YAML; syntax errors become InvalidInput naming the line and column."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{source}, line {mark.line + 1}, column {mark.column + 1}" if mark else source
        raise InvalidInput(f"not valid YAML: {exc.problem or exc}", where=where) from None
    except yaml.YAMLError as exc:
        raise InvalidInput(f"not valid YAML: {exc}", where=source) from None


def load_yaml_file(path: Path) -> Any:
    """Parse a YAML file."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read file: {exc.strerror}", where=str(path)) from None
    return load_yaml(text, source=path.name)


def line_of(value: Any, key: str | None = None) -> int | None:
    """The line of a value read by `load_yaml` (None for values built in code, e.g. from JSON)."""
    if isinstance(value, Located):
        return value.line_of(key) if key else value.line
    return None


def dump_yaml(data: Any) -> str:
    """Readable YAML: keys in the order given, short leaf mappings and lists on one line, Unicode kept."""
    return yaml.dump(plain(data), Dumper=yaml.SafeDumper, sort_keys=False, allow_unicode=True, width=120,
                     default_flow_style=None)


def plain(value: Any) -> Any:
    """Plain data for YAML and JSON: text keys, lists for tuples, dates as ISO text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value
