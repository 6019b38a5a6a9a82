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


class ValidationFailed(InvalidInput):
    """A whole document (a plant model, a configuration) failed validation; every problem is listed.

    Each problem is (where, message), `where` a text or a `Location`: `problems` holds each as text, `locations`
    the structured ones (None where a problem has only a text)."""

    kind = "validation_failed"

    def __init__(self, problems: Sequence[tuple[str | Location, str]]) -> None:
        self.problems = [(str(w), m) for w, m in problems]
        self.locations = [w if isinstance(w, Location) else None for w, _ in problems]
        first_where, first_msg = problems[0]
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        super().__init__(first_msg + more, where=first_where)

    @classmethod
    def from_pydantic(
        cls, exc: _PydanticErrors, source: str, *, sep: str = ".", brackets: bool = False, skip: Collection[str] = ()
    ) -> ValidationFailed:
        """Every problem of a pydantic validation error, so that each names where it is: `where` is the source,
        then `sep` and the error's location (`deployment.target.assets`; with `sep=":"` `challenge:title`), list
        indexes as `items[3]` with `brackets`, the names in `skip` (a union's tags) left out, the source alone for
        the document as a whole; the message without pydantic's "Value error, " before a validator's own."""
        problems: list[tuple[str, str]] = []
        for error in exc.errors():
            where = source
            for i, part in enumerate(p for p in error.get("loc", ()) if p not in skip):
                if brackets and isinstance(part, int):
                    where += f"[{part}]"
                else:
                    where += ("" if not where else sep if i == 0 else ".") + str(part)
            problems.append((where, str(error.get("msg", "invalid")).removeprefix("Value error, ")))
        return cls(problems or [(source, "invalid")])

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["problems"] = [
            {"where": w, "message": m, **({"location": loc.to_dict()} if loc is not None else {})}
            for (w, m), loc in zip(self.problems, self.locations, strict=True)
        ]
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
