"""What the gate does with a scanned code, an input, a command: decide, persist, act.

Every action keeps the same order (RELIABILITY.md rule 1): the decision is taken, its
event is committed to the outbox (fsynced), and only then do the outputs move; the
publisher is woken last. When the event cannot be persisted (outbox full, store not
writable) a scan that would have been granted is denied as `store_full` (`store_error`
when the database is damaged or could not be opened) and the gate shows the fault
pattern: a gate that cannot record who passed does not let anyone pass. A decision whose
event the schema refuses (a value no credential should carry) is recorded as denied,
without the refused values, rather than raised.

Health: the gate reports how long its durable appends take (p50/p99 of recent ones: a
dying SD card shows there first), and a decision or event waiting for the store longer
than `STUCK_AFTER_S` (a hung write), which also stops the watchdog's pings.

Inputs are the exception by design: the firmware opens for the exit button and the fire
alarm by itself (a door must never wait for a disk), and the gate records afterwards.

On a gate that pairs health certificates with identity codes, the first code of a pair
makes no event: the LEDs ask for the second. A timer ends a first code left alone as
denied (`pair_timeout`), recorded and shown, even when nothing more is scanned.

`Gate` is called from several threads (the frame loop, input callbacks, the publisher's
command handlers); one lock orders the clock reading and the append, so `ts` and `seq`
agree.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Unpack

from firmware.patterns import Mode
from firmware.scheduler import REAL_TIME, Scheduler
from mqtt.clock import SANE_FLOOR, ClockTrust
from mqtt.errors import InvalidEventError, StoreUnavailableError
from mqtt.errors import StoreError as OutboxStoreError
from mqtt.events import EventType, format_ts
from mqtt.outbox import EventFields, Outbox
from scanner.decision.policy import Decision, Policy, Waiting
from scanner.state.store import StoreError

if TYPE_CHECKING:
    from firmware.inputs import InputEvent
    from firmware.outputs import Outputs
    from scanner.camera import Frame
    from scanner.clock import Clock
    from scanner.vision.decode import Code

log = logging.getLogger(__name__)

# Decisions that say "this is not a code we can read" get the third feedback pattern.
UNREADABLE_REASONS = frozenset({"unknown_format", "too_large"})
PAIR_TIMER_MIN_S = 0.001  # a timer deadline lies after now
# A decision or event waiting this long for the store is stuck (a hung write).
STUCK_AFTER_S = 3.0
COMMIT_SAMPLES = 256  # commit latency figures are over this many recent appends


@dataclass(frozen=True)
class Fault:
    message: str
    since: float  # wall clock
    at: float  # monotonic clock, when it was first raised


class Faults:
    """The gate's active faults by area (camera, outbox, outputs...), for health."""

    def __init__(self) -> None:
        self._active: dict[str, Fault] = {}
        self._lock = threading.Lock()

    def raise_(self, area: str, message: str, now: float, at: float = 0.0) -> bool:
        """Note a fault (`now` wall clock, `at` monotonic); True when the area was not
        faulty before."""
        with self._lock:
            old = self._active.get(area)
            self._active[area] = (
                Fault(message, now, at) if old is None else replace(old, message=message)
            )
            return old is None

    def clear(self, area: str) -> Fault | None:
        """End a fault; the fault that ended, if there was one."""
        with self._lock:
            return self._active.pop(area, None)

    def get(self, area: str) -> Fault | None:
        with self._lock:
            return self._active.get(area)

    def active(self) -> dict[str, str]:
        with self._lock:
            return {area: fault.message for area, fault in self._active.items()}


@dataclass(frozen=True)
class LastScan:
    ts: float
    result: str
    reason: str


class Gate:
    """The decision path and the gate's events, wired to its policy, outbox and outputs."""

    def __init__(
        self,
        policy: Policy,
        outbox: Outbox,
        outputs: Outputs,
        clock: Clock,
        trust: ClockTrust,
        *,
        wake: Callable[[], None] = lambda: None,
        scheduler: Scheduler = REAL_TIME,
    ) -> None:
        self.policy = policy
        self.outputs = outputs
        self.faults = Faults()
        self._outbox = outbox
        self._clock = clock
        self._trust = trust
        self._wake = wake
        self._record_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._last_scan: LastScan | None = None
        self._denied_while_full = 0
        self._commit_s: deque[float] = deque(maxlen=COMMIT_SAMPLES)
        self._busy_lock = threading.Lock()
        self._busy: dict[int, float] = {}  # thread -> monotonic start of its store work
        self._pairing_timer = (
            scheduler.start(self._end_lone_codes, "qrgate-pairing") if policy.pairs else None
        )

    def close(self) -> None:
        """Stop the pairing timer (the outputs and the outbox are their owners' to close)."""
        if self._pairing_timer is not None:
            self._pairing_timer.stop()

    # -- scans ------------------------------------------------------------------------

    def on_codes(self, frame: Frame, codes: list[Code]) -> None:
        """The frame loop's callback: every code read in a frame, in order."""
        for code in codes:
            self.scan(code.payload, captured=frame.captured)

    def scan(self, payload: bytes, captured: float | None = None) -> Decision | Waiting | None:
        """Decide on one payload, persist its event, then act; None for a repeat, Waiting
        (no event yet) for the first code of a pair."""
        with self._busy_with_store():
            return self._scan(payload, captured)

    def _scan(self, payload: bytes, captured: float | None) -> Decision | Waiting | None:
        try:
            decision = self.policy.decide(payload)
        except StoreError as error:
            self.fault("store", f"cannot read the local store: {error}")
            decision = unreadable_store(payload)
        else:
            self.clear_fault("store")
        if decision is None:
            return None
        if isinstance(decision, Waiting):
            self._await_second(decision)
            return decision
        latency_ms = None if captured is None else (self._clock.monotonic() - captured) * 1000
        return self._finish(decision, latency_ms)

    def _finish(self, decision: Decision, latency_ms: float | None) -> Decision:
        decision, failure = self._record_scan(decision, latency_ms)
        if failure is None:
            self._act(decision)
            # Last: a woken publisher takes the GIL from the frame thread, so waking it
            # before the outputs would delay the relay by the publisher's work.
            self._wake()
        else:
            decision = self._refuse_unrecorded(decision, failure)
        self._note_scan(decision)
        return decision

    def _record_scan(
        self, decision: Decision, latency_ms: float | None
    ) -> tuple[Decision, OutboxStoreError | None]:
        """Commit the decision's event: the decision as recorded, and why it could not
        be (None when it was)."""
        fields: EventFields = {
            "result": decision.result,
            "reason": decision.reason,
            "credential": decision.credential,
            "subject": decision.subject,
            "name": decision.name,
            "code_sha256": decision.code_sha256,
            "latency_ms": None if latency_ms is None else round(latency_ms, 3),
            "cert_type": decision.cert_type,
            "cert_country": decision.cert_country,
        }
        try:
            return decision, self._commit("scan", **fields)
        except InvalidEventError as error:
            log.error("%s: recorded as denied without its subject and name", error)
            decision = replace(
                decision, result="denied", reason="store_error", subject=None, name=None
            )
            fields = {
                **fields,
                "result": "denied",
                "reason": "store_error",
                "subject": None,
                "name": None,
                "detail": str(error)[:512],
            }
            return decision, self._commit("scan", **fields)

    def _act(self, decision: Decision) -> None:
        if decision.granted:
            self.outputs.granted()
        elif decision.reason in UNREADABLE_REASONS:
            self.outputs.unreadable()
        else:
            self.outputs.denied()
        if self._pairing_timer is not None:
            self.outputs.awaiting(self.policy.awaiting_s())  # others may still wait

    # -- pairs --------------------------------------------------------------------------

    def _await_second(self, waiting: Waiting) -> None:
        log.info("%s taken: waiting for the second code", waiting.credential)
        self.outputs.awaiting(self.policy.awaiting_s(), prompt=True)
        if self._pairing_timer is not None:
            self._pairing_timer.wake()

    def _end_lone_codes(self, now: float) -> float | None:
        """The pairing timer: each first code whose partner did not come in time is
        denied, recorded and shown; then when to look again."""
        try:
            for decision in self.policy.expire_pairs():
                with self._busy_with_store():
                    self._finish(decision, None)
        except Exception:  # the timer must outlive any one failure
            log.exception("cannot end a first code left without its partner")
        due = self.policy.pairs_due_in()
        return None if due is None else now + max(due, PAIR_TIMER_MIN_S)

    def _refuse_unrecorded(self, decision: Decision, failure: OutboxStoreError) -> Decision:
        self._denied_while_full += 1
        self.outputs.fault()
        log.error("scan of %s denied: its event cannot be recorded", decision.credential)
        if isinstance(failure, StoreUnavailableError):
            return replace(decision, result="denied", reason="store_error")
        return replace(decision, result="denied", reason="store_full")

    def _note_scan(self, decision: Decision) -> None:
        log.info(
            "%s: %s %s (%s)",
            decision.result,
            decision.credential,
            decision.subject or "-",
            decision.reason,
        )
        self._counts[decision.result] += 1
        self._last_scan = LastScan(self._clock.now(), decision.result, decision.reason)

    # -- other events -----------------------------------------------------------------

    def on_input(self, event: InputEvent) -> None:
        """The inputs' callback: the firmware has acted already; record what happened."""
        if event.kind == "fire_alarm":
            state = "active: gate held open" if event.active else "cleared"
            self.record("mode", detail=f"{self.outputs.mode} (fire alarm {state})")
        elif event.kind == "door_held":
            detail = "door held open" if event.active else "door closed again"
            self.record("door_held", detail=detail)
        elif event.kind == "exit_request":
            self.record("exit_request", reason="button")
        else:
            self.record("door_forced", detail="door opened without a grant")

    def open(self, seconds: float | None, by: str) -> str:
        """A remote opening: recorded, then one pulse or `seconds` of release."""
        how = f"opened for {seconds:g} s" if seconds else "opened for one pulse"
        if not self.record("exit_request", reason="remote", detail=f"{how} by {by}"[:512]):
            return "not opened: its event cannot be recorded"
        self.outputs.pulse_relay(seconds)
        return how

    def set_mode(self, mode: Mode, by: str) -> str:
        """Change the gate mode: persisted, recorded, then shown on the outputs."""
        self.policy.set_mode(mode)
        self.record("mode", detail=f"{mode} by {by}")
        self.outputs.set_mode(mode)
        return f"mode {mode}"

    def fault(self, area: str, message: str) -> None:
        """Raise a fault: logged, in health, and recorded as a `fault` event when new."""
        if self.faults.raise_(area, message, self._clock.now(), self._clock.monotonic()):
            log.error("fault: %s: %s", area, message)
            self.record("fault", detail=f"{area}: {message}"[:512])

    def clear_fault(self, area: str) -> None:
        ended = self.faults.clear(area)
        if ended is not None:
            log.warning("recovered: %s (%s)", area, ended.message)
            self.record("fault", detail=f"{area}: recovered after: {ended.message}"[:512])

    def record(self, type: EventType, **fields: Unpack[EventFields]) -> bool:
        """Commit one event to the outbox and wake the publisher; False if it could not be."""
        try:
            with self._busy_with_store():
                failure = self._commit(type, **fields)
        except InvalidEventError as error:
            log.error("a %s event could not be recorded: %s", type, error)
            return False
        if failure is not None:
            return False
        self._wake()
        return True

    def _commit(self, type: EventType, **fields: Unpack[EventFields]) -> OutboxStoreError | None:
        """Commit one event to the outbox; why it could not be, or None when it was.
        InvalidEventError, with nothing recorded, for fields that make no valid event."""
        with self._record_lock:
            ts, fields["ts_trusted"] = self._trust.now()
            started = time.perf_counter()
            try:
                self._note_outbox_recovery(ts, fields["ts_trusted"])
                self._outbox.append(type, ts=ts, **fields)
            except OutboxStoreError as error:
                self._note_outbox_fault(str(error))
                return error
            self._commit_s.append(time.perf_counter() - started)
        return None

    @contextmanager
    def _busy_with_store(self) -> Iterator[None]:
        """Mark this thread busy with a decision or an event, for `stuck_for`."""
        thread = threading.get_ident()
        with self._busy_lock:
            outermost = thread not in self._busy
            if outermost:
                self._busy[thread] = self._clock.monotonic()
        try:
            yield
        finally:
            if outermost:
                with self._busy_lock:
                    del self._busy[thread]

    def stuck_for(self) -> float:
        """Seconds the oldest decision or event in progress has been waiting (0: none)."""
        with self._busy_lock:
            oldest = min(self._busy.values(), default=None)
        return 0.0 if oldest is None else max(0.0, self._clock.monotonic() - oldest)

    def not_stuck(self) -> bool:
        """For the watchdog: no decision waits for the store longer than STUCK_AFTER_S."""
        return self.stuck_for() < STUCK_AFTER_S

    def check_clock(self) -> None:
        """A wall clock before SANE_FLOOR (a reset to 1970) is a fault: every pass and
        command looks not yet valid until it is set (docs/operations.md)."""
        now = self._clock.now()
        if now >= SANE_FLOOR:
            self.clear_fault("clock")
            return
        self.fault(
            "clock",
            f"the wall clock reads {time.strftime('%Y-%m-%d', time.gmtime(now))}: passes and "
            "commands are refused as not yet valid until it is set (docs/operations.md)",
        )

    def _note_outbox_fault(self, message: str) -> None:
        if self.faults.raise_("outbox", message, self._clock.now()):
            log.error("fault: outbox: %s", message)

    def _note_outbox_recovery(self, ts: float, trusted: bool) -> None:
        """Under the record lock, before an append: when the outbox was failing, record
        first that it failed and how many scans were turned away (raises while it still
        fails)."""
        fault = self.faults.get("outbox")
        if fault is None:
            return
        detail = (
            f"outbox: recovered after: {fault.message}; "
            f"{self._denied_while_full} scans denied meanwhile"
        )
        self._outbox.append("fault", ts=ts, ts_trusted=trusted, detail=detail[:512])
        self.faults.clear("outbox")
        self._denied_while_full = 0
        log.warning("recovered: %s", detail)

    # -- health -----------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        """The gate's part of the health report."""
        outputs = self.outputs.snapshot()
        last = self._last_scan
        return {
            "mode": outputs.mode,
            "scans": {"granted": self._counts["granted"], "denied": self._counts["denied"]},
            "last_scan": format_ts(last.ts) if last else None,
            "last_result": f"{last.result} {last.reason}" if last else None,
            "faults": self._faults_now(),
            "commit_ms": commit_figures(list(self._commit_s)),
            "outputs": {
                "relay": outputs.relay,
                "green": outputs.green,
                "red": outputs.red,
                "buzzer": outputs.buzzer,
                "fire_alarm": outputs.fire_alarm,
                "door_alarm": outputs.door_alarm,
            },
        }

    def _faults_now(self) -> dict[str, str]:
        faults = self.faults.active()
        unusable = self._outbox.unusable
        if unusable is not None and "database" not in faults:
            faults["outbox"] = f"{unusable}: every scan is denied -> run sudo qrgate doctor"
        stuck = self.stuck_for()
        if stuck >= STUCK_AFTER_S:
            faults["decision"] = f"a decision has waited {stuck:.0f} s for the store (a hung write)"
        return faults


def commit_figures(samples: list[float]) -> dict[str, float | int | None]:
    """p50 and p99 in ms of recent durable appends, and how many they are over."""
    if not samples:
        return {"p50": None, "p99": None, "n": 0}
    ordered = sorted(samples)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000, 2)

    return {"p50": at(0.5), "p99": at(0.99), "n": len(ordered)}


def unreadable_store(payload: bytes) -> Decision:
    """The decision when the allowlist and revocations cannot be read: denied."""
    digest = hashlib.sha256(payload).hexdigest()
    return Decision("denied", "store_error", "unknown", None, None, digest)
