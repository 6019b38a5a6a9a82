"""A local Mosquitto broker (Debian's `mosquitto` package) on loopback, with persistence, restartable on the same
port: for the MQTT tests and benchmark, and for trying the MQTT connector on one machine."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path

from taehwa.core.loopback import free_port

BINARY = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class Mosquitto:
    """`start`, `stop`, `start` again: the persistent sessions and their queued messages survive in `folder`."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        if BINARY is None:
            raise FileNotFoundError("mosquitto is not installed (apt-get install mosquitto)")
        self.port = port or free_port()
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        # as root Mosquitto would drop to user 'mosquitto', who cannot write the persistence file in a private folder
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {folder}/\nmax_inflight_messages 1000\n"
            f"max_queued_messages 0\nautosave_interval 1\nuser {getpass.getuser()}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert BINARY is not None
        self.proc = subprocess.Popen(
            [BINARY, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None
