"""The one exception base of the monitor package."""


class MonitorError(Exception):
    """Base of every error the monitor package raises on purpose."""
