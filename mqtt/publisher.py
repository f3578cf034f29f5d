"""The publisher: one thread owns the broker connection and drains the outbox into it.

It connects with a last will (`offline`, retained), announces `online`, subscribes to the
gate's commands, then sends events from a bounded window over the outbox, oldest first,
only while connected; a row leaves the outbox when the broker accepts it (PUBACK below
0x80). It publishes a retained health report every `heartbeat_s`, reconnects with
backoff, and on `stop()` announces `stopped` and disconnects cleanly.

Nothing on the frame path waits for it: the daemon appends to the outbox and calls
`wake()`. The daemon pings the systemd watchdog only while `alive` holds.

No single message and no failing disk may take the connection down or spin the thread:
a command is answered whatever it holds; acknowledged rows that cannot be deleted keep
the connection up and are deleted as soon as the disk allows (see `mqtt.window`); an
unexpected error backs off before the next try, and repeated failures are logged now
and then, not once per try. Events parked after lost connections are sent again once the
link has stayed up for `settings.release_parked_after_s`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mqtt.checkpointer import Checkpointer
from mqtt.errors import StoreError
from mqtt.events import format_ts
from mqtt.health import HealthReport, LinkStats, State, cpu_temperature_c, status_payload
from mqtt.link import (
    Acked,
    Connected,
    Link,
    LinkError,
    Lost,
    Received,
    Signal,
    Subscribed,
    Waker,
    Will,
)
from mqtt.outbox import Depth, Outbox, Pending
from mqtt.settings import PublisherSettings
from mqtt.throttle import Throttle
from mqtt.topics import GateTopics
from mqtt.window import LOST, Round, Window

if TYPE_CHECKING:  # the intake's module loads only on gates that take commands
    from mqtt.commands import CommandIntake

log = logging.getLogger(__name__)

POLL_S = 1.0  # the longest nap: keepalive, heartbeats, rows appended by another process
STOP_WAIT_S = 3.0  # how long `stop()` waits for the broker to take the `stopped` status
WEDGED_AFTER_S = 20.0  # a loop not come round for this long (beyond a connect) is stuck
MIN_ACK_TIMEOUT_S = 10.0
# The outbox's write-ahead log is folded into the database in small steps (after this many
# changes, or this long after one), so that appends never wait for it; the checkpoints
# run on a thread of their own (`mqtt.checkpointer`), since a hung sync must not hang this one.
CHECKPOINT_EVERY = 64
CHECKPOINT_S = 2.0
# Unexpected errors back off from the first retry delay up to this, and the backoff
# starts over once the loop has run this long without one.
ERROR_BACKOFF_MAX_S = 30.0
ERROR_QUIET_S = 60.0
RELEASE_BACKOFF_MAX_S = 3600.0  # parked events released again at most this far apart
FORGET_EVERY_S = 60.0  # kept events past `keep_acked_s` are deleted this often


class Backoff:
    """Delays that double from `low` to `high`, with jitter so that many gates
    restarting with their broker do not all knock at the same instant."""

    def __init__(self, low: float, high: float) -> None:
        self._low, self._high = low, high
        self._delay = low

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._high, delay * 2)
        return min(self._high, delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter

    def peek(self) -> float:
        """The next delay, without jitter and without moving on."""
        return self._delay

    def reset(self) -> None:
        self._delay = self._low


class Publisher:
    """Drains `outbox` to the broker in its own thread; see the module doc."""

    def __init__(
        self,
        settings: PublisherSettings,
        topics: GateTopics,
        outbox: Outbox,
        health: Callable[[], Mapping[str, Any]] = dict,
        commands: CommandIntake | None = None,
        *,
        version: str,
        clock: Callable[[], float] = time.time,
        fault: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.topics = topics
        self.outbox = outbox
        self._gate_health = health
        self._commands = commands
        self._version = version
        self._clock = clock
        self._fault = fault  # a fault that keeps the gate from working, told in its status
        self._announced_fault: str | None = None
        self._signals: queue.Queue[Signal] = queue.Queue()
        self._waker = Waker()
        self._window = Window(outbox, settings.window)
        self._checkpointer = Checkpointer(outbox)
        self._link: Link | None = None
        self._links = 0
        self._online = False
        self._reported: str | None = None  # the failure logged since the last connection
        self.stats = LinkStats()
        self._connect_backoff = Backoff(settings.retry_min_s, settings.retry_max_s)
        self._refusal_backoff = Backoff(settings.retry_min_s, settings.retry_max_s)
        self._retry_at = self._resume_at = self._connect_deadline = self._next_health = 0.0
        self._next_checkpoint = self._forget_at = 0.0
        self._error_backoff = Backoff(settings.retry_min_s, ERROR_BACKOFF_MAX_S)
        self._last_error_at = 0.0
        self._throttle = Throttle()
        self._blocked: str | None = None  # why acknowledged rows cannot leave, as logged
        self._connected_at = 0.0
        self._release = Backoff(settings.release_parked_after_s, RELEASE_BACKOFF_MAX_S)
        self._release_at = 0.0
        self._started = self._beat = time.monotonic()
        self._stopping = threading.Event()
        self._final_state: State = "stopped"
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)

    def start(self) -> None:
        self._started = self._beat = time.monotonic()
        self._checkpointer.start()
        self._thread.start()

    def stop(self, state: State = "stopped", timeout_s: float | None = None) -> None:
        """Announce `state` (retained), disconnect cleanly and end the thread; wait at most
        `timeout_s` for that (default: long enough for a connect and the status ack)."""
        self._final_state = state
        self._stopping.set()
        self._waker.wake()
        if timeout_s is None:
            timeout_s = STOP_WAIT_S + self.settings.broker.connect_timeout_s + 2
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def wake(self) -> None:
        """A row was appended: send it now rather than at the next poll."""
        self._waker.wake()

    @property
    def connected(self) -> bool:
        return self._online

    @property
    def alive(self) -> bool:
        """The thread runs and its loop came round lately (for the systemd watchdog)."""
        stale_after = WEDGED_AFTER_S + self.settings.broker.connect_timeout_s
        return self._thread.is_alive() and time.monotonic() - self._beat < stale_after

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._beat = time.monotonic()
            try:
                self._step(self._beat)
            except Exception as error:  # noqa: BLE001 - nothing may end this thread: _recover logs
                self._recover_or_pause(error)
        try:
            self._shutdown()
        except Exception:  # stopping anyway; the will says offline
            log.exception("error while stopping the publisher")
        self._checkpointer.stop()
        self._waker.close()

    def _step(self, now: float) -> None:
        self._handle_signals()
        self._checkpoint_due(now)
        self._forget_acked_due(now)
        if self._link is None:
            if now >= self._retry_at:
                self._connect(now)
        elif self._online:
            self._publish_due(now)
        elif now > self._connect_deadline:
            self._fail("no answer (CONNACK) from the broker")
        self._pump(now)

    def _checkpoint_due(self, now: float) -> None:
        appended = self.outbox.appended_since_checkpoint
        if appended >= CHECKPOINT_EVERY or (appended and now >= self._next_checkpoint):
            self._next_checkpoint = now + CHECKPOINT_S
            self._checkpointer.request()

    def _forget_acked_due(self, now: float) -> None:
        """Now and then, kept events older than the outbox keeps them go."""
        if now < self._forget_at:
            return
        self._forget_at = now + FORGET_EVERY_S
        try:
            self.outbox.forget_acked()
        except StoreError as error:
            self._throttle.error(log, "forget", "%s", error)

    def _pump(self, now: float) -> None:
        """Wait for the network, a wake-up or the next deadline, whichever comes first."""
        if self._link is None:
            self._waker.wait(min(POLL_S, max(0.0, self._retry_at - now)))
            return
        deadlines = [now + POLL_S]
        if self._online:
            deadlines.append(self._next_health)
            if self._resume_at > now:  # paused after refusals: resume on time
                deadlines.append(self._resume_at)
        self._link.pump(max(0.0, min(deadlines) - now), self._waker)

    def _connect(self, now: float) -> None:
        self._links += 1
        will = Will(self.topics.status, status_payload("offline", self._clock(), self._version))
        window = self.settings.window + 8  # room for status, health and replies
        try:
            link = Link(self.settings.broker, self._signals, self._links, will, window)
            link.open()
        except LinkError as error:
            self._fail(str(error))
            return
        self._link = link
        self._connect_deadline = now + self.settings.broker.connect_timeout_s

    def _publish_due(self, now: float) -> None:
        assert self._link is not None
        self._release_parked_when_stable(now)
        if now >= self._resume_at:
            for row in self._window.due():
                mid = self._link.publish(self._events_topic(row), row.payload)
                if mid is None:
                    break  # the connection is gone; its Lost signal follows
                self._window.sent(mid, row, now)
        stuck = self._window.overdue(now, max(MIN_ACK_TIMEOUT_S, self.settings.broker.keepalive_s))
        if stuck is not None:
            self._fail(f"no acknowledgement for event seq {stuck.seq}")
        elif now >= self._next_health:
            self._publish_health(now)

    def _events_topic(self, row: Pending) -> str:
        if (row.site, row.gate) == (self.topics.site, self.topics.gate):
            return self.topics.events
        # Recorded before the gate was renamed: it goes out under the name it was taken with.
        return GateTopics(self.topics.prefix, row.site, row.gate).events

    def _publish_health(self, now: float) -> None:
        assert self._link is not None
        self._next_health = now + self.settings.heartbeat_s
        self._publish_status_on_change()
        report = HealthReport(
            ts=self._clock(),
            version=self._version,
            uptime_s=now - self._started,
            outbox=self._depth(),
            link=self.stats,
            gate=self._gate_figures(),
            cpu_temp_c=cpu_temperature_c(),
        )
        self._link.publish(self.topics.health, report.to_json(), retain=True)

    def _publish_status_on_change(self) -> None:
        """A fault that came (or went) since the status was published: say it there too."""
        assert self._link is not None
        fault = self._fault()
        if fault != self._announced_fault:
            self._announced_fault = fault
            status = status_payload("online", self._clock(), self._version, fault)
            self._link.publish(self.topics.status, status, retain=True)

    def _depth(self) -> Depth | None:
        """The outbox's depth, or None when the store cannot tell (health goes out anyway)."""
        try:
            return self.outbox.depth()
        except StoreError as error:
            self._throttle.error(log, "depth", "%s", error)
            return None

    def _gate_figures(self) -> Mapping[str, Any]:
        try:
            return dict(self._gate_health())
        except Exception as error:  # a broken figure must not stop the report
            log.exception("the gate's health figures failed")
            return {"health_error": f"{type(error).__name__}: {error}"}

    def _handle_signals(self) -> None:
        while True:
            try:
                signal = self._signals.get_nowait()
            except queue.Empty:
                break
            if signal.link == self._links:  # others belong to abandoned connections
                self._handle(signal)
        finished = self._window.settle()
        self._note_blocked()
        if finished is not None:
            self._pause_after(finished)

    def _note_blocked(self) -> None:
        """Log when acknowledged rows start and stop being stuck in the outbox."""
        blocked = self._window.blocked
        if blocked == self._blocked:
            return
        if blocked is not None:
            self.stats.last_error = f"acknowledged events cannot leave the outbox: {blocked}"
            log.error("%s; sending paused, trying again every step", self.stats.last_error)
        else:
            log.warning("acknowledged events leave the outbox again; sending resumes")
        self._blocked = blocked

    def _handle(self, signal: Signal) -> None:
        match signal:
            case Connected(refused=None):
                self._connected(signal)
            case Connected(refused=reason):
                self._fail(f"the broker refused the connection: {reason}")
            case Lost(reason=reason):
                self._fail(f"connection lost: {reason}")
            case Acked():
                self._acked(signal)
            case Received():
                self._command(signal)
            case Subscribed(refused=refused) if refused:
                self.stats.last_error = f"the broker refused the command subscription: {refused}"
                log.error("%s: commands cannot reach this gate", self.stats.last_error)

    def _connected(self, signal: Connected) -> None:
        assert self._link is not None
        self._online = True
        self._reported = None
        self._connect_backoff.reset()
        self.stats.connects += 1
        self.stats.connected_since = format_ts(self._clock())
        self._connected_at = time.monotonic()
        self._release_at = max(self._release_at, self._connected_at + self._release.peek())
        self._window.restart(signal.receive_maximum)
        self._announced_fault = self._fault()
        status = status_payload("online", self._clock(), self._version, self._announced_fault)
        self._link.publish(self.topics.status, status, retain=True)
        if self._commands is not None:
            self._link.subscribe(self.topics.command_filters)
        self._next_health = time.monotonic()
        depth = self._depth()
        log.info(
            "connected to %s; %s events waiting",
            self.settings.broker.address,
            "unknown" if depth is None else depth.rows,
        )

    def _acked(self, signal: Acked) -> None:
        row = self._window.answer(signal.mid, signal.accepted, signal.reason)
        if signal.accepted:
            return
        if row is None:
            log.warning("the broker refused a status, health or reply message: %s", signal.reason)
            return
        self.stats.refused += 1
        self.stats.last_refusal = f"seq {row.seq}: {signal.reason} (0x{signal.code:02x})"

    def _pause_after(self, finished: Round) -> None:
        if finished.accepted:
            self._refusal_backoff.reset()
        pause = self._refusal_backoff.next()
        self._resume_at = time.monotonic() + pause
        reasons = ", ".join(sorted(set(finished.refused.values())))
        log.warning(
            "the broker refused %d event(s) (%s); they stay in the outbox, next try in %.1f s",
            len(finished.refused),
            reasons,
            pause,
        )

    def _command(self, signal: Received) -> None:
        if self._commands is None or self._link is None:
            return
        try:
            reply = self._commands.handle(signal.topic, signal.payload, retained=signal.retain)
            payload = reply.to_json()
        except Exception:  # one message must never take the connection down
            log.exception("a message on %r could not be answered", signal.topic)
            return
        self._link.publish(self.topics.reply, payload)

    def _release_parked_when_stable(self, now: float) -> None:
        """Parking is for what the broker refuses: events parked because connections
        kept dropping while they were sent alone go out again once the link has stayed
        up for a while (then after twice as long, if they were parked again)."""
        if now < self._release_at or now - self._connected_at < self._release.peek():
            return
        try:
            released = self.outbox.release(reason_prefix=LOST)
        except StoreError as error:
            self._throttle.error(log, "release", "%s", error)
            return
        if released:
            log.warning("sending %d event(s) parked after lost connections again", released)
            self._release_at = now + self._release.next()
        else:
            self._release.reset()
            self._release_at = now + self._release.peek()

    def _fail(self, reason: str) -> None:
        """The connection failed or ended: spool on, and try again after a backoff."""
        if reason != self._reported:  # once per kind of failure, not once per retry
            log.warning("%s; events are kept in the outbox meanwhile", reason)
            self._reported = reason
        self.stats.last_error = reason
        self._drop_link()
        self._window.lost(reason)
        self._retry_at = time.monotonic() + self._connect_backoff.next()

    def _recover_or_pause(self, error: Exception) -> None:
        """`_recover`, and should recovering fail too (a link that cannot even be closed, a
        broken waker), a pause before the next step: the thread lives on either way."""
        try:
            self._recover(error)
        except Exception:  # noqa: BLE001 - the thread must outlive its own recovery
            with contextlib.suppress(Exception):
                self._drop_link()
            self._link, self._online = None, False
            self._window.restart()
            self._stopping.wait(self._error_backoff.next())

    def _recover(self, error: Exception) -> None:
        """After an unexpected error: forget the connection, keep every row, and wait
        (longer each time the error comes back soon) before trying again."""
        now = time.monotonic()
        if now - self._last_error_at > ERROR_QUIET_S:
            self._error_backoff.reset()
        self._last_error_at = now
        self.stats.last_error = f"{type(error).__name__}: {error}"
        delay = self._error_backoff.next()
        self._throttle.error(
            log,
            f"unexpected {type(error).__name__}",
            "unexpected error in the publisher; reconnecting in %.1f s",
            delay,
            exc_info=error,
        )
        self._drop_link()
        self._window.restart()
        self._retry_at = now + delay
        self._waker.wait(delay)

    def _drop_link(self) -> None:
        link, self._link = self._link, None
        self._links += 1  # whatever the dropped link still signals is stale from now on
        self._online = False
        self.stats.connected_since = None
        if link is not None:
            try:
                link.close()
            except Exception as error:  # noqa: BLE001 - forgotten all the same: a new one comes
                log.warning("the old connection did not close cleanly: %s", error)

    def _shutdown(self) -> None:
        link = self._link
        if link is not None and self._online:
            payload = status_payload(self._final_state, self._clock(), self._version)
            mid = link.publish(self.topics.status, payload, retain=True)
            self._await_ack(link, mid)
        self._window.settle()
        self._drop_link()

    def _await_ack(self, link: Link, mid: int | None) -> None:
        deadline = time.monotonic() + STOP_WAIT_S
        while mid is not None and time.monotonic() < deadline and self._link is link:
            link.pump(0.05, self._waker)
            while not self._signals.empty():
                signal = self._signals.get_nowait()
                if signal.link == self._links:
                    self._handle(signal)
                if isinstance(signal, Acked) and signal.mid == mid:
                    return
