"""The dashboard's errors: under the monitor's one exception base."""

from monitor.errors import MonitorError


class DashboardError(MonitorError):
    """The dashboard cannot be set up as asked (bad address, account, key)."""
