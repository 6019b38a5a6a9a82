"""The course's notebooks (docs/lessons, English and Korean) run from top to bottom on a fresh data directory, as a
student would run them; each checks its own results as it goes (a failed assert fails the lesson)."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

LESSONS = Path(__file__).resolve().parents[1] / "docs" / "lessons"
# the English notebooks run; the Korean ones hold the same code cells (checked below), only their text differs
NOTEBOOKS = sorted(LESSONS.glob("en/*.ipynb"))


def _code(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_every_lesson_is_in_both_languages_with_the_same_code() -> None:
    stems = {lang: sorted(p.name for p in (LESSONS / lang).glob("*.ipynb")) for lang in ("en", "ko")}
    assert stems["en"] == stems["ko"] and len(stems["en"]) >= 3
    for name in stems["en"]:
        assert _code(LESSONS / "en" / name) == _code(LESSONS / "ko" / name)


def test_notebooks_match_their_source() -> None:
    """The notebooks are written by docs/lessons/build.py; an edit made to one side only is caught here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lessons_build", LESSONS / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for stem, cells in build.LESSONS:
        for lang in ("en", "ko"):
            on_disk = nbformat.read(LESSONS / lang / f"{stem}.ipynb", as_version=4)
            fresh = build.notebook(cells, lang)
            assert [c.source for c in on_disk.cells] == [c.source for c in fresh.cells], f"{lang}/{stem}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.stem}" for p in NOTEBOOKS])
def test_lesson_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from taehwa.core.settings import default_shared_data

    if not default_shared_data().exists():
        pytest.skip("../shared/data is not beside the checkout")
    monkeypatch.setenv("TAEHWA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TAEHWA_SHARED_DATA", str(default_shared_data()))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert str(tmp_path / "data") in outputs  # it used the directory it was given, not a running plant's
