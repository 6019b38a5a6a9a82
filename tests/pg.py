"""A throw-away PostgreSQL server for the tests (Debian's package, which `make test` installs when root): a new
cluster in a temporary folder, on a free loopback port, fast and unsafe (no fsync), gone when the tests end.
Postgres refuses to run as root, so as root it runs as the `postgres` user the package creates."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy as sa


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class TestServer:
    """One cluster; `database()` hands out a fresh, empty database per caller."""

    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError(
                "TAEHWA_TEST_DATABASE=postgresql, but PostgreSQL is not installed "
                "(apt-get install postgresql, or run make test as root)"
            )
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="taehwa-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-U", "taehwa", "--auth=trust", "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
        )
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self.root / "log"), "-w", "start")
        self.admin = sa.create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        self._n = 0
        with self.admin.connect() as c:  # a template with the schema at its newest: each new database copies it
            c.execute(sa.text("CREATE DATABASE taehwa_template"))
        from taehwa.migrate import make_engine

        make_engine(self.url("taehwa_template")).dispose()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True, cwd=self.root)

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://taehwa@127.0.0.1:{self.port}/{db}"

    def database(self, *, empty: bool = False) -> str:
        """A new database's URL: with the schema (a copy of the template), or empty."""
        self._n += 1
        name = f"t{os.getpid()}_{self._n}"
        with self.admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE {"template0" if empty else "taehwa_template"}'))
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    def stop(self) -> None:
        self.admin.dispose()
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
