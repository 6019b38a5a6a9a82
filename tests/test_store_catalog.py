"""Tag ids per row (`TagCatalog.ensure_column`): new tags created once, few or many at a time, ids equal to the
stored ones, and the older per-name `ensure` agreeing."""

from __future__ import annotations

import pyarrow as pa
import pytest

from taehwa.core.errors import InvalidInput
from taehwa.historian.store import Historian


def test_ensure_column_creates_few_or_many_tags_with_the_stored_ids(hist: Historian) -> None:
    cat = hist.catalog
    many = pa.chunked_array([pa.array([f"c/{i}" for i in range(300)]), pa.array(["c/1", "c/299"])])
    ids, distinct = cat.ensure_column("acme", many)
    assert distinct == 300 and len(ids) == 302
    for k in range(3):  # a few new tags beside many known: their ids alone are read back
        col = pa.array([f"n/{k}/{i}" for i in range(5)] + ["c/5", f"n/{k}/0", "c/7"])
        got, distinct = cat.ensure_column("acme", col)
        stored = cat.ids("acme", refresh=True)
        assert got.tolist() == [stored[n] for n in col.to_pylist()] and distinct == 7
        assert cat.name("acme", int(got[1])) == f"n/{k}/1"
        assert cat.ensure("acme", [f"n/{k}/4", "c/5"]) == {f"n/{k}/4": stored[f"n/{k}/4"], "c/5": stored["c/5"]}
    stored = cat.ids("acme")
    assert ids.tolist() == [stored[n] for n in many.to_pylist()]
    assert len(stored) == 315
    assert cat.ensure_column("rival", pa.array(["c/1"]))[0][0] not in stored.values()  # tenants apart
    with pytest.raises(InvalidInput, match="invalid tag"):
        cat.ensure_column("acme", pa.array(["ok/1", "bad//tag"]))
    assert "ok/1" not in cat.ids("acme", refresh=True)  # nothing of a refused batch is created
