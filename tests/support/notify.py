"""The systemd end of the notify protocol, for tests: a socket to point NOTIFY_SOCKET at.

with NotifySocket.abstract() as systemd:
    run_daemon(env={"NOTIFY_SOCKET": systemd.env_value, "WATCHDOG_USEC": "2000000"})
    assert b"READY=1" in systemd.messages()[0].split(b"\\n")
"""

from __future__ import annotations

import socket
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType


class NotifySocket:
    """A bound Unix datagram socket and the NOTIFY_SOCKET value that names it."""

    def __init__(
        self, address: str, env_value: str, folder: tempfile.TemporaryDirectory[str] | None = None
    ) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(address)
        self.env_value = env_value
        self._folder = folder

    @classmethod
    def path(cls) -> NotifySocket:
        """A socket file, as systemd uses (in a short folder: paths are capped at 107 bytes)."""
        folder = tempfile.TemporaryDirectory(prefix="sd-")
        address = str(Path(folder.name) / "notify")
        return cls(address, address, folder)

    @classmethod
    def abstract(cls) -> NotifySocket:
        """An abstract socket: no file; NOTIFY_SOCKET names it with a leading `@`."""
        name = f"qrgate-test-{uuid.uuid4().hex}"
        return cls("\0" + name, "@" + name)

    def messages(self, timeout_s: float = 2.0) -> list[bytes]:
        """Every datagram sent so far, waiting up to timeout_s for the first."""
        self.sock.settimeout(timeout_s)
        return [self.sock.recv(4096), *self.pending()]

    def pending(self) -> list[bytes]:
        """The datagrams already queued, without waiting."""
        self.sock.setblocking(False)
        received = []
        while True:
            try:
                received.append(self.sock.recv(4096))
            except BlockingIOError:
                return received

    def close(self) -> None:
        self.sock.close()
        if self._folder is not None:
            self._folder.cleanup()

    def __enter__(self) -> NotifySocket:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def notified(systemd: NotifySocket, key: bytes, seen: list[bytes], timeout_s: float) -> bool:
    """Wait until a datagram carrying `key` arrives; every datagram is kept in `seen`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen += systemd.pending()
        if any(key in message.split(b"\n") or message.startswith(key) for message in seen):
            return True
        time.sleep(0.05)
    return False
