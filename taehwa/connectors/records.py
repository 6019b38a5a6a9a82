"""The shapes of what the connector service answers (a connector's status, the list, one connector), as typed
dictionaries: the JSON the API sends and the CLI and web pages read, checked by mypy where they are used.

TypedDicts from typing_extensions, so FastAPI can describe (and check) them as the routes' response models; no
`from __future__ import annotations` here, so which keys are required is known at run time too.
"""

from typing import Any, NotRequired

from typing_extensions import TypedDict


class ConnectorStatus(TypedDict):
    """A connector's status as JSON (the API's, the CLI's, `status.json`'s): a running link gives every field;
    one that is not running only its name, state ("not running") and the backlog its queue still holds."""

    name: str
    state: str
    protocol: NotRequired[str]
    since: NotRequired[str | None]
    last_value_time: NotRequired[str | None]
    points_total: NotRequired[int]
    points_s: NotRequired[float]
    backlog: NotRequired[int]
    rejected: NotRequired[int]
    last_error: NotRequired[str | None]
    last_error_time: NotRequired[str | None]
    detail: NotRequired[dict[str, Any]]


class ConnectorSummary(TypedDict):
    """A connector in the list: its name, protocol, whether it is enabled, how many items it maps, its status."""

    name: str
    protocol: str
    enabled: bool
    items: int
    status: ConnectorStatus


class ConnectorView(TypedDict):
    """One connector: its definition (passwords left out) and its status."""

    definition: dict[str, Any]
    status: ConnectorStatus
