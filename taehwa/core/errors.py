"""One exception hierarchy for the whole platform, mapped once to HTTP status codes and CLI exit codes.

Every message says what was wrong and where (file, row, column, field), so a plant engineer can fix the input
without reading the code.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Location:
    """Where in its input a problem is, each part when known: the `file` (a file's name, or what the input was:
    `body`, `input`), the `line` of a text document (YAML, JSON, 1-based), the `row` of a table (1-based, counted
    from the first data row of the whole file), the `column` (a table's column name, or a character position in a
    line), and the `field` (a document's key or dotted path).

    Its text is an error's `where`: `Location("body", row=1, column="value")` is "body, row 1, column 'value'"."""

    file: str | None = None
    line: int | None = None
    row: int | None = None
    column: str | int | None = None
    field: str | None = None

    def __str__(self) -> str:
        column = repr(self.column) if isinstance(self.column, str) else self.column
        parts = (
            self.file,
            None if self.line is None else f"line {self.line}",
            None if self.row is None else f"row {self.row}",
            None if column is None else f"column {column}",
            self.field,
        )
        return ", ".join(p for p in parts if p)

    def to_dict(self) -> dict[str, str | int]:
        """The parts that are known (what an API error body's `location` holds)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Any) -> Location | None:
        """A location from an API error body's `location` (what `to_dict` wrote); a part of the wrong type or an
        unknown key is left out, and anything that is not a mapping with a known part is None."""
        if not isinstance(data, dict):
            return None

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        def number(key: str) -> int | None:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        found = cls(text("file"), number("line"), number("row"), text("column") or number("column"), text("field"))
        return found if found != cls() else None


class TaehwaError(Exception):
    """Base of every error Taehwa raises on purpose.

    `where` says where the problem is: a text (a field's name, a path), or a `Location` (file, line, row, column,
    field), kept as `location` beside its text in `where`."""

    http_status = 500
    exit_code = 1
    kind = "error"

    def __init__(self, message: str, *, where: str | Location | None = None) -> None:
        self.message = message
        self.location = where if isinstance(where, Location) else None
        self.where = (str(where) or None) if isinstance(where, Location) else where
        super().__init__(f"{self.where}: {message}" if self.where else message)

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an HTTP client gets for this error."""
        body: dict[str, Any] = {"error": self.kind, "message": self.message}
        if self.where:
            body["where"] = self.where
        if self.location is not None:
            body["location"] = self.location.to_dict()
        return body


class InvalidInput(TaehwaError):
    """The caller sent something malformed; nothing was stored."""

    http_status = 422
    exit_code = 2
    kind = "invalid_input"


class PayloadTooLarge(InvalidInput):
    """A body or file over the configured size limit."""

    http_status = 413
    kind = "payload_too_large"


class UnsupportedMediaType(InvalidInput):
    """A body in a format the endpoint does not read."""

    http_status = 415
    kind = "unsupported_media_type"


class Unauthorized(TaehwaError):
    """No credentials, or credentials that are not valid."""

    http_status = 401
    exit_code = 5
    kind = "unauthorized"


class Forbidden(TaehwaError):
    """Valid credentials that do not allow this action."""

    http_status = 403
    exit_code = 5
    kind = "forbidden"


class NotFound(TaehwaError):
    """The named tenant, tag or object does not exist (or is not visible to the caller)."""

    http_status = 404
    exit_code = 3
    kind = "not_found"


class Conflict(TaehwaError):
    """The action clashes with the current state (already exists, store held by another writer)."""

    http_status = 409
    exit_code = 4
    kind = "conflict"


class Unavailable(TaehwaError):
    """A part the call needs is down or closed; retrying later may succeed."""

    http_status = 503
    exit_code = 6
    kind = "unavailable"


class TooManyRequests(TaehwaError):
    """A caller sent more requests than its rate allows; it may retry after a moment."""

    http_status = 429
    exit_code = 6
    kind = "too_many_requests"


class _PydanticErrors(Protocol):
    """What `from_pydantic` reads: pydantic's ValidationError, FastAPI's RequestValidationError."""

    def errors(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Problem:
    """One problem of a validated document: what is wrong (`message`), where as text (`where`) and, when known, as
    a `Location`; for a document checked against a schema, `path` is the field's path inside it (`("items", 3)`)."""

    where: str
    message: str
    location: Location | None = None
    path: tuple[str | int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """What an API error body says of this problem."""
        body: dict[str, Any] = {"where": self.where, "message": self.message}
        if self.location is not None:
            body["location"] = self.location.to_dict()
        return body


def field_path(path: Sequence[str | int], *, brackets: bool = False) -> str:
    """A field's path as text, `target.assets`, with list indexes as `items[3]` when `brackets`."""
    text = ""
    for part in path:
        if brackets and isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def _line_at(doc: Any, path: Sequence[str | int]) -> int | None:
    """The line of the deepest part of `path` found in a YAML document whose mappings know their lines (see
    core.yamlio.Located: a key's line, a list item's own), None for a document without lines."""

    def own(node: Any) -> int | None:
        line = getattr(node, "line", None)
        return line if isinstance(line, int) and line > 0 else None

    line = own(doc)
    node = doc
    for part in path:
        if isinstance(node, dict):
            line_of = getattr(node, "line_of", None)
            if callable(line_of) and isinstance(part, str):
                line = line_of(part) or line
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
            line = own(node) or line
        else:
            break
    return line


class ValidationFailed(InvalidInput):
    """A whole document (a plant model, a configuration) failed validation; every problem is listed.

    Each problem is a `Problem`, or (where, message) with `where` a text or a `Location`: `details` holds them as
    Problems, `problems` each as (where text, message), `locations` the structured ones (None where a problem has
    only a text)."""

    kind = "validation_failed"

    def __init__(self, problems: Sequence[Problem | tuple[str | Location, str]]) -> None:
        self.details = [
            p if isinstance(p, Problem) else Problem(str(p[0]), p[1], p[0] if isinstance(p[0], Location) else None)
            for p in problems
        ]
        self.problems = [(p.where, p.message) for p in self.details]
        self.locations = [p.location for p in self.details]
        first = self.details[0]
        n = len(self.details)
        more = f" (and {n - 1} more problem{'s' if n > 2 else ''})" if n > 1 else ""
        super().__init__(first.message + more, where=first.where)
        self.location = first.location

    @classmethod
    def from_pydantic(
        cls,
        exc: _PydanticErrors,
        source: str,
        *,
        sep: str = ".",
        brackets: bool = False,
        skip: Collection[str] = (),
        doc: Any = None,
    ) -> ValidationFailed:
        """Every problem of a pydantic validation error as a `Problem`: its `path` is the error's location with the
        names in `skip` (a union's tags) left out, its `Location` the `source` (file) and that path as text (field,
        list indexes as `items[3]` with `brackets`), with the line of the field when `doc` (what was validated) is
        a YAML document that knows its lines; its text the source, `sep` and the field (`deployment.target.assets`,
        with `sep=":"` `challenge:title`), the source alone for the document as a whole; the message without
        pydantic's "Value error, " before a validator's own."""
        problems: list[Problem] = []
        for error in exc.errors():
            path = tuple(p for p in error.get("loc", ()) if p not in skip)
            field = field_path(path, brackets=brackets)
            where = source + (sep if source and field and not field.startswith("[") else "") + field
            location = Location(source or None, line=_line_at(doc, path), field=field or None)
            message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
            problems.append(Problem(where, message, location, path))
        return cls(problems or [Problem(source, "invalid", Location(source or None))])

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["problems"] = [p.to_dict() for p in self.details]
        return body

    def __str__(self) -> str:
        return "\n".join(f"{w}: {m}" for w, m in self.problems)


class StorageFull(Unavailable):
    """A disk the call writes to is full (ENOSPC or a quota): nothing of the call was stored, what was stored
    before stays; writes resume by themselves once space is freed."""

    http_status = 507
    kind = "storage_full"

    def __init__(self, message: str, *, where: str | None = None, path: str | None = None) -> None:
        self.path = path  # the folder on the full disk (for the operator's log and the probe; not sent to callers)
        super().__init__(message, where=where)
