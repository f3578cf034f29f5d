"""A TCP link between a gate and its broker that loses what it is told to lose.

It listens on a loopback port of its own and forwards every connection to the broker.
While `cuts` is above zero, a chunk from the gate that carries an event (the bytes of
the events topic) is swallowed and the connection cut: the broker never sees that
event, nor anything sent with it, and the gate sees a connection lost with events in
flight, as on a link that drops what it carries and resets.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

from tests.support.broker import free_port


class FlakyLink:
    def __init__(self, broker_port: int, marker: bytes) -> None:
        self.port = free_port()
        self.broker_port = broker_port
        self.marker = marker
        self.cuts = 0
        self.cut = 0  # connections cut so far
        self.connections = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._thread = threading.Thread(target=self._serve, name="flaky-link", daemon=True)

    def start(self) -> FlakyLink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        self._thread.join(5)

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopping.is_set():
            try:
                gate, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            broker = socket.create_connection(("127.0.0.1", self.broker_port))
            threading.Thread(target=self._pipe, args=(gate, broker), daemon=True).start()

    def _pipe(self, gate: socket.socket, broker: socket.socket) -> None:
        with selectors.DefaultSelector() as selector, gate, broker:
            selector.register(gate, selectors.EVENT_READ, broker)
            selector.register(broker, selectors.EVENT_READ, gate)
            while not self._stopping.is_set():
                for key, _ in selector.select(0.1):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        chunk = source.recv(65536)
                    except OSError:
                        return
                    if not chunk or (source is gate and self._swallow(chunk)):
                        return
                    with contextlib.suppress(OSError):
                        key.data.sendall(chunk)

    def _swallow(self, chunk: bytes) -> bool:
        """Whether to lose this chunk from the gate, and cut its connection."""
        with self._lock:
            if self.cuts <= 0 or self.marker not in chunk:
                return False
            self.cuts -= 1
            self.cut += 1
            return True
