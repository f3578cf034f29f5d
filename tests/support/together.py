"""Processes that open one file at the same moment, as a daemon and a command-line tool
started together do: what each of them raised."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

PROCESSES = 3
JOIN_TIMEOUT_S = 60


def opened_together(open_and_close: Callable[[str], None], targets: list[str]) -> list[str]:
    """For each target in turn, PROCESSES processes call `open_and_close(target)` at once;
    the errors they raised, as text (and a process that did not exit cleanly is one)."""
    processes = multiprocessing.get_context("fork")
    failures = processes.SimpleQueue()
    for target in targets:
        barrier = processes.Barrier(PROCESSES)
        starters = [
            processes.Process(target=attempt, args=(open_and_close, target, barrier, failures))
            for _ in range(PROCESSES)
        ]
        for starter in starters:
            starter.start()
        for starter in starters:
            starter.join(JOIN_TIMEOUT_S)
            if starter.exitcode != 0:
                failures.put(f"a process opening {target} ended with {starter.exitcode}")
    reported = []
    while not failures.empty():
        reported.append(failures.get())
    return reported


def attempt(
    open_and_close: Callable[[str], None], target: str, barrier: Any, failures: Any
) -> None:
    barrier.wait()
    try:
        open_and_close(target)
    except Exception as error:  # reported by the parent
        failures.put(repr(error))
