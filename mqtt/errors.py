"""The one exception base of the mqtt package."""


class MqttError(Exception):
    """Base of every error the mqtt package raises on purpose."""


class TopicError(MqttError, ValueError):
    """A topic level that would change the topic's shape (`/`, `+`, `#`, NUL, empty)."""
