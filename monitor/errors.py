"""The one exception base of the monitor package, and the store's errors."""


class MonitorError(Exception):
    """Base of every error the monitor package raises on purpose."""


class StoreError(MonitorError):
    """The event store cannot be opened or used (bad URL, missing file, no schema)."""


class StoreUnavailableError(StoreError):
    """The store failed for a reason that passes (locked, disk full, connection lost):
    the same write is tried again later, and the broker keeps the messages meanwhile."""


class StoreConflictError(StoreUnavailableError):
    """A write met another monitor's (a deadlock PostgreSQL broke, a serialization
    failure): nothing of it was kept, and trying it again at once is right."""


class StoreRefusedError(StoreError):
    """The store refused the data itself (a value it cannot hold): retrying cannot help."""
