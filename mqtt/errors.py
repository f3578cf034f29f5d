"""The one exception base of the mqtt package."""


class MqttError(Exception):
    """Base of every error the mqtt package raises on purpose."""


class TopicError(MqttError, ValueError):
    """A topic level that would change the topic's shape (`/`, `+`, `#`, NUL, empty)."""


class StoreError(MqttError):
    """The gate's database cannot be opened, migrated or written (disk full, read-only...)."""


class EventKeyError(StoreError):
    """The gate's event signing key, in its state directory, cannot be made or read."""


class StoreUnavailableError(StoreError):
    """The database cannot take events at all: it could not be opened, or it is damaged."""


class OutboxFullError(StoreError):
    """The outbox holds its configured maximum: the event was NOT recorded.

    The gate must then refuse the scan (nothing is let through unrecorded) and report
    the fault; old events are never dropped to make room.
    """


class InvalidEventError(MqttError, ValueError):
    """Fields that do not make a valid version 1 event (e.g. a subject over 256 characters)."""


class CommandRejectedError(MqttError):
    """A command that must not run: its reply says `rejected: <reason>`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
