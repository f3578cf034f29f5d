"""`qrgate doctor`: is this gate ready to work, and if not, what to fix.

Each check is a small function of the configuration that returns a `Finding`: PASS, WARN
(not wrong, but worth knowing) or FAIL, what it found and, for a problem, the fix in plain
words. The part of a check that asks the machine is kept apart from a pure function that
judges the answer (`clock_finding`, `disk_finding`, `outbox_finding`, ...), so that each
judgement is tested on its own.

Checks look and never touch. The store is read through `open_snapshot`, which creates
and changes no file: doctor may run as root next to a gate that runs as another user.
The broker sees a client id of its own, so the running gate is not pushed off. Every
check is bounded in time: `run_checks` gives up on one that hangs and goes on.

Modules: `finding` (the result types), `checks` (the list of checks, the runner, and the
checks of keys, camera, decoder, pins, clock and disk), `broker`, `store`.
"""
