"""Folding the outbox's write-ahead log into the database, on a thread of its own.

A checkpoint syncs the database file. When syncs hang (a dying SD card, an fsync stuck
for a minute), a checkpoint run by the publisher would hang the publisher with it: no
health report would say what is wrong, and acknowledged events would stop leaving. Run
here, with a connection of its own, a hung checkpoint holds up only itself; the
publisher asks for the next one and goes on with its work. Afterwards the disk reserve
is made again when it was given up and the disk has room once more.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from mqtt import db
from mqtt.errors import StoreError
from mqtt.outbox import Outbox
from mqtt.throttle import Throttle

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self._throttle = Throttle()
        self._thread = threading.Thread(target=self._run, name="outbox-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        """Checkpoint soon; returns at once (a checkpoint already running is not waited for)."""
        self._outbox.appended_since_checkpoint = 0
        self._wanted.set()

    def stop(self, timeout_s: float = 1.0) -> None:
        """End the thread; a checkpoint stuck in the kernel is left behind (daemon thread)."""
        self._stopping.set()
        self._wanted.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            connection = db.connect(self._outbox.path, "NORMAL")
        except StoreError as error:
            log.error("no checkpoints of the outbox: %s", error)
            return
        try:
            while self._wanted.wait() and not self._stopping.is_set():
                self._wanted.clear()
                self._checkpoint(connection)
        finally:
            connection.close()

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as error:  # the next one may work; appends do not need it
            failed = f"cannot checkpoint the outbox in {self._outbox.path}: {error}"
            self._throttle.error(log, "checkpoint", "%s", failed)
        if not self._outbox.reserve.held:
            self._outbox.reserve.ensure()
