"""The one exception base of the firmware package, and the errors it raises."""

from __future__ import annotations


class FirmwareError(Exception):
    """Base of every error the firmware package raises on purpose."""


class PinFactoryError(FirmwareError):
    """No GPIO pin library could be loaded; `attempts` maps each library tried to why."""

    def __init__(self, message: str, attempts: dict[str, str]) -> None:
        super().__init__(message)
        self.attempts = attempts
