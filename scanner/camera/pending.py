"""A camera that was not there when the gate started: tried a few more times, then given up.

The kernel looks for a CSI camera (Camera Module) at boot only: one missing then, from a
loose ribbon cable or a camera plugged in late, stays missing until the next boot however
often the service restarts. So the daemon does not exit for it, which systemd would answer
with a restart every few seconds for ever. It starts without a camera, tries to open it
again `ATTEMPTS - 1` times, `capture_timeout_s` apart (a USB webcam or a camera still being
set up by udev may come), and then gives up: `on_give_up` gets the alert to show in the
gate's status and health, and the source ends (`EndOfStream`), so the frame loop stops
restarting it. The gate meanwhile does everything that needs no camera: remote opening,
the exit button, events and health.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from scanner.camera import (
    CameraError,
    CameraTimeout,
    EndOfStream,
    Frame,
    FrameSource,
    open_source,
)

if TYPE_CHECKING:
    from scanner.config import CameraSection

log = logging.getLogger(__name__)

ATTEMPTS = 5  # opening attempts in all, the one at start included


def open_camera(
    camera: CameraSection, on_give_up: Callable[[str], None] | None = None
) -> FrameSource:
    """The configured camera; when it cannot be opened now, a `PendingCamera` for it.

    A replay is opened as it is: a missing file is a mistake, not a camera coming late.
    """
    if camera.source.startswith("replay:"):
        return open_source(camera)
    try:
        return open_source(camera)
    except CameraError as error:
        log.error("camera %s: %s; trying again %d times", camera.source, error, ATTEMPTS - 1)
        return PendingCamera(camera, error, on_give_up=on_give_up)


class PendingCamera:
    """A `FrameSource` for a camera that could not be opened yet (see the module)."""

    def __init__(
        self,
        camera: CameraSection,
        reason: CameraError,
        *,
        on_give_up: Callable[[str], None] | None = None,
        opener: Callable[[CameraSection], FrameSource] = open_source,
    ) -> None:
        self.name = camera.source
        self._settings = camera
        self._reason = str(reason)
        self._on_give_up = on_give_up
        self._opener = opener
        self._attempts = 1
        self._source: FrameSource | None = None
        self._closing = threading.Event()

    @property
    def attempts(self) -> int:
        return self._attempts

    @property
    def alert(self) -> str:
        return (
            f"no camera since the gate started ({self._attempts} attempts; {self._reason}). "
            "A Pi camera is found at boot only: check its ribbon cable, then reboot the gate "
            "(sudo reboot); a USB webcam: plug it in, then sudo systemctl restart qrgate"
        )

    def read(self) -> Frame:
        if self._source is not None:
            return self._source.read()
        if self._attempts >= ATTEMPTS:
            raise EndOfStream(f"camera {self.name}: given up: {self.alert}")
        if self._closing.wait(self._settings.capture_timeout_s):
            raise CameraError(f"camera {self.name}: closed")
        if self._try_to_open():
            return self.read()
        if self._attempts >= ATTEMPTS:
            self._give_up()
            raise EndOfStream(f"camera {self.name}: given up: {self.alert}")
        raise CameraTimeout(f"no camera yet ({self._reason})")

    def restart(self) -> None:
        """The frame loop's restart after a stall: a real camera restarts; attempts to open
        one are paced by `read()` alone."""
        if self._source is not None:
            self._source.restart()

    def close(self) -> None:
        self._closing.set()
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def _try_to_open(self) -> bool:
        self._attempts += 1
        try:
            source = self._opener(self._settings)
        except CameraError as error:
            self._reason = str(error)
            return False
        if self._closing.is_set():
            source.close()
            return False
        self._source = source
        self.name = source.name
        log.warning("camera %s opened at attempt %d", source.name, self._attempts)
        return True

    def _give_up(self) -> None:
        log.error("camera %s: %s", self.name, self.alert)
        if self._on_give_up is not None:
            try:
                self._on_give_up(self.alert)
            except Exception:
                log.exception("on_give_up failed")
