"""A failure that repeats is logged once, then now and then with how many were held back:
a gate retrying against a full disk must not write a line per attempt onto that disk."""

from __future__ import annotations

import logging

import pytest

from mqtt.throttle import Throttle

log = logging.getLogger("tests.throttle")


def test_a_repeating_failure_is_logged_first_then_once_a_minute_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    throttle = Throttle(60.0, clock=lambda: now[0])
    with caplog.at_level(logging.ERROR, logger=log.name):
        for step in range(121):  # one attempt a second for two minutes
            now[0] = float(step)
            throttle.error(log, "full", "cannot delete: %s", "disk full")
            throttle.error(log, "other", "another failure")
    lines = [record.getMessage() for record in caplog.records]
    assert [line for line in lines if "delete" in line] == [
        "cannot delete: disk full",
        "cannot delete: disk full (59 more like it not logged)",
        "cannot delete: disk full (59 more like it not logged)",
    ]
    assert sum(line.startswith("another") for line in lines) == 3


def test_the_exception_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    error = RuntimeError("a bug")
    with caplog.at_level(logging.ERROR, logger=log.name):
        Throttle().error(log, "bug", "unexpected error", exc_info=error)
    (record,) = caplog.records
    assert record.exc_info is not None
    assert record.exc_info[1] is error
