"""Serving the dashboard: uvicorn in a thread of the monitor's process, started and
stopped with it (the monitor's other threads are paho's and the store writer's).

Binds to loopback unless told otherwise, and refuses a non-loopback address without TLS
(its own certificate, or a TLS reverse proxy in front on loopback) unless `--insecure`
says the network is trusted: passwords and health data must not cross a network in
clear text.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from monitor.dashboard.errors import DashboardError

log = logging.getLogger(__name__)

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Bind:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Bind:
        """HOST:PORT, [IPv6]:PORT; DashboardError if not."""
        host, separator, port = text.rpartition(":")
        host = host.strip("[]")
        if not separator or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise DashboardError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")
        return cls(host, int(port))

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class Tls:
    cert_file: Path
    key_file: Path


def check_exposure(bind: Bind, tls: Tls | None, insecure: bool) -> None:
    if bind.loopback or tls is not None:
        return
    if not insecure:
        raise DashboardError(
            f"refusing to serve the dashboard on {bind.host} without TLS: give --tls-cert and "
            "--tls-key, or serve on 127.0.0.1 behind a TLS reverse proxy (docs/monitor.md), "
            "or say --insecure on a network you trust"
        )
    log.warning("serving the dashboard on %s without TLS (--insecure)", bind.host)


class WebServer:
    """uvicorn on its own thread and event loop; `start()` returns once it listens."""

    def __init__(
        self,
        app: Starlette,
        bind: Bind,
        tls: Tls | None = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        config = uvicorn.Config(
            app,
            host=bind.host,
            port=bind.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            # X-Forwarded-Proto and -For are believed from a proxy on this machine only.
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1,::1",
            timeout_graceful_shutdown=3,
            ssl_certfile=str(tls.cert_file) if tls else None,
            ssl_keyfile=str(tls.key_file) if tls else None,
        )
        self.bind = bind
        self.on_stop = on_stop
        self.scheme = "https" if tls else "http"
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="dashboard-http", daemon=True)

    def start(self) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise DashboardError(
                    f"cannot serve the dashboard on {self.bind.host}:{self.bind.port}"
                    " (address in use or not available?)"
                )
            time.sleep(0.02)
        log.info("dashboard on %s", self.url)
        return self

    @property
    def port(self) -> int:
        for server in self.server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.bind.port

    @property
    def url(self) -> str:
        host = f"[{self.bind.host}]" if ":" in self.bind.host else self.bind.host
        return f"{self.scheme}://{host}:{self.port}"

    def stop(self) -> None:
        """Open streams end first (`on_stop`): uvicorn waits for open connections."""
        if self.on_stop is not None:
            self.on_stop()
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(STOP_TIMEOUT_S)
