"""Store-and-forward: every connector writes through a durable queue on local disk before the historian.

A batch is committed to the queue (SQLite in WAL mode, fsync on commit) before its source is acknowledged — an MQTT
QoS 1 message, a file moved aside — so a point the source handed over survives a crash, a SIGKILL or a historian that
refuses writes. The forwarder writes batches into the historian in queue order and deletes them only after the
historian's write has returned (durable). A crash between the two replays the batch; the historian keeps one value
per (tag, time), so a replayed point is stored exactly once.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pyarrow as pa

from taehwa.core.errors import Unavailable


class DurableQueue:
    """An on-disk FIFO of Arrow tables (tag, time, value), safe across process kills; one process may put while
    another takes out (SQLite's WAL lets them)."""

    def __init__(self, path: Path, *, max_points: int = 50_000_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_points = max_points
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "points INTEGER NOT NULL, body BLOB NOT NULL)"
        )
        self._backlog = 0
        self._recount()

    def put(self, table: pa.Table) -> int:
        """Append one batch durably; returns its sequence number. Refused (Unavailable) when the queue is full, so
        the source keeps the data (unacknowledged) rather than the disk filling up."""
        if table.num_rows == 0:
            return 0
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        body = sink.getvalue().to_pybytes()
        with self._lock:
            if self._backlog + table.num_rows > self.max_points:
                self._recount()  # another process (the server's forwarder) may have taken some out
            if self._backlog + table.num_rows > self.max_points:
                raise Unavailable(
                    f"store-and-forward queue full ({self._backlog} points waiting)", where=str(self.path)
                )
            cur = self._db.execute("INSERT INTO batches (points, body) VALUES (?, ?)", (table.num_rows, body))
            self._backlog += table.num_rows
            return int(cur.lastrowid or 0)

    def peek(self, max_batches: int = 64) -> list[tuple[int, pa.Table]]:
        """The oldest batches, in order, without removing them."""
        with self._lock:
            rows = self._db.execute("SELECT seq, body FROM batches ORDER BY seq LIMIT ?", (max_batches,)).fetchall()
        return [(int(seq), pa.ipc.open_stream(body).read_all()) for seq, body in rows]

    def ack(self, upto: int) -> None:
        """Remove every batch up to and including sequence `upto` (they are in the historian)."""
        with self._lock:
            row = self._db.execute("SELECT COALESCE(SUM(points), 0) FROM batches WHERE seq <= ?", (upto,)).fetchone()
            self._db.execute("DELETE FROM batches WHERE seq <= ?", (upto,))
            self._backlog -= int(row[0])

    def note_put(self, points: int) -> None:
        """Count points another process (a connector's own process) put into this queue."""
        with self._lock:
            self._backlog += points

    def _recount(self) -> None:
        row = self._db.execute("SELECT COALESCE(SUM(points), 0) FROM batches").fetchone()
        self._backlog = int(row[0])

    @property
    def backlog(self) -> int:
        """Points waiting to be written into the historian (never below 0: the forwarder may take a batch out
        before it hears that another process put it in)."""
        return max(0, self._backlog)

    def close(self) -> None:
        with self._lock:
            self._db.close()
