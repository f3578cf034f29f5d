"""The one exception base of the firmware package."""


class FirmwareError(Exception):
    """Base of every error the firmware package raises on purpose."""
