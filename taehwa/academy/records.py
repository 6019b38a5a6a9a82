"""The shapes of what the academy answers (a challenge, a submission, the leaderboard), as typed dictionaries: the
JSON the API sends and the CLI and web pages read, checked by mypy where they are used.

TypedDicts from typing_extensions, so FastAPI can describe (and check) them as the routes' response models, keys in
the order the service writes them. No `from __future__ import annotations` here, so which keys are required is
known at run time too. Parts of a challenge's definition kept as the author wrote them (its summary, limits,
published figures) stay free-form; scores are `int | float` (a published figure may be whole).
"""

from typing import Any, NotRequired

from typing_extensions import TypedDict


class Challenge(TypedDict):
    """A challenge as a participant sees it: its task and metric, its state, its limits, what its data holds (its
    title and notes in each language, rows by part)."""

    id: str
    owner: str
    title: dict[str, str]
    summary: Any
    task: str
    metric: str
    lower_is_better: bool
    state: str
    closes_at: str
    inputs_public: bool
    limits: dict[str, Any]
    audience: list[str] | None
    published: list[dict[str, Any]]
    published_note: dict[str, str] | None
    signals: list[str]
    classes: Any
    units: Any
    rows: dict[str, int]
    scored_rows: dict[str, int] | None
    train_range: list[str] | None
    inputs_range: list[str] | None
    submission_kinds: list[str]


class ChallengeListing(Challenge):
    """A challenge in the list, with how many people took part."""

    participants: int


class Submission(TypedDict):
    """A submission as its participant sees it (the hidden score and figures only once the board is final)."""

    id: str
    challenge: str
    user: str
    kind: str
    label: str | None
    reference: bool
    state: str
    verdict: str | None
    message: str | None
    log: str | None
    public_score: int | float | None
    final_score: int | float | None
    metrics: dict[str, Any]
    sandbox: Any
    seconds: int | float | None
    created_at: str
    finished_at: str | None


class BoardEntry(TypedDict):
    """A participant's best submission on the board (`rank` for participants, not for the platform's baselines)."""

    user: str
    label: str | None
    submission: str
    kind: str
    public_score: int | float | None
    final_score: int | float | None
    submissions: int
    submitted_at: str
    rank: NotRequired[int]


class PublishedFigure(TypedDict):
    """A figure published elsewhere for the same data, to stand beside the board."""

    name: Any
    score: Any
    source: Any


class Board(TypedDict):
    """The leaderboard: public scores while the challenge runs, the hidden ones once it is final."""

    challenge: str
    metric: str
    lower_is_better: bool
    phase: str
    entries: list[BoardEntry]
    baselines: list[BoardEntry]
    published: list[PublishedFigure]
    published_note: dict[str, str] | None
