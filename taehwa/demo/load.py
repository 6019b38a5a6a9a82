"""`taehwa demo load` as one sequence: the SKAB runs and their labels, the demo plant's labelled history, the demo's
models trained, promoted and deployed, and the academy's ready challenges. Each step is skipped when already done.

The sequence says what it does through a `Feedback` (the CLI's progress bars and status lines; nothing by default),
so it runs the same from the CLI, a test or another front end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

from taehwa.demo import DEMO_TENANT, label_skab, load_skab
from taehwa.demo.history import demo_model_lines, deploy_demo_models, load_plant_history
from taehwa.server.platform import Platform


class Feedback(Protocol):
    """How the sequence shows its progress: a line said, a step counted in parts, a step with a changing status."""

    def say(self, line: str) -> None:
        """One line of what was done."""

    def counting(self, title: str) -> AbstractContextManager[Callable[[int, int], None]]:
        """A step that reports (done, total) as it goes."""

    def status(self, text: str) -> AbstractContextManager[Callable[[str], None]]:
        """A long step whose status text changes as it goes."""


class Quiet:
    """Feedback that shows nothing."""

    def say(self, line: str) -> None:
        """Nothing is said."""

    @contextmanager
    def counting(self, title: str) -> Iterator[Callable[[int, int], None]]:
        """Counts go nowhere."""
        yield lambda done, total: None

    @contextmanager
    def status(self, text: str) -> Iterator[Callable[[str], None]]:
        """Status texts go nowhere."""
        yield lambda text: None


def load_demo(platform: Platform, shared: Path, *, force: bool = False, feedback: Feedback | None = None) -> None:
    """Load the demo from the data sets in `shared` into tenant 'demo', once (`force`: the SKAB runs again). A
    TaehwaError of any step stops the sequence; the steps done before it stay done."""
    fb = feedback or Quiet()
    hist = platform.historian
    if (
        not force
        and any(t.id == DEMO_TENANT for t in platform.tenants.list())
        and any(n.startswith("skab/") for n in hist.catalog.ids(DEMO_TENANT))
    ):
        added = label_skab(platform.labels, shared)
        fb.say(
            "SKAB runs already loaded (tenant 'demo'); --force loads them again"
            + (f"; added {added} anomaly labels" if added else "")
        )
    else:
        with fb.counting("load SKAB") as tick:
            n = load_skab(hist, shared, progress=tick)
        labelled = label_skab(platform.labels, shared)
        fb.say(f"loaded {n} points and {labelled} anomaly labels of the SKAB pump test bed into tenant 'demo'")
    with fb.counting("load plant history") as tick:
        done = load_plant_history(platform, shared, DEMO_TENANT, progress=tick)
    fb.say(
        f"demo plant history: {done['points']} points and {done['labels']} labels added (ready specs: taehwa lab specs)"
        if done["labels"]
        else "demo plant history already loaded"
    )
    with fb.status("live scoring: training the demo's models and promoting them through the gate…") as show:
        deployed = deploy_demo_models(
            platform, DEMO_TENANT, progress=lambda name: show(f"live scoring: training {name}…")
        )
    for line in demo_model_lines(deployed):
        fb.say(line)
    with fb.status("academy: cutting the ready challenges and running their baselines…"):
        made = platform.academy.install_ready()
    if made:
        fb.say(
            f"academy: ready challenges {', '.join(c['id'] for c in made)} installed, each with the "
            "platform's baseline on its board (taehwa academy list)"
        )
