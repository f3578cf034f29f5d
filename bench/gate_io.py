"""How fast the gate's outputs act, how true their timing is, what they cost at rest.

Run: .venv/bin/python -m bench.gate_io

On gpiozero's MockFactory with a pin class that stamps each change, measured against
bare gpiozero in the same run:
- decision to relay: `Outputs.granted()` until the relay pin changes, against a bare
  `OutputDevice.on()` (the cost of the plan, the lock and waking the timer);
- pulse length: how late the timer thread ends a 100 ms pulse, against how late a bare
  `threading.Event.wait(0.1)` returns (the floor the OS gives any timer);
- idle CPU of outputs and inputs with their timer threads, waiting for something to do.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable

from gpiozero import OutputDevice
from gpiozero.pins.mock import MockFactory, MockPin

from firmware.inputs import InputEvent, Inputs
from firmware.outputs import Outputs
from firmware.pins import Contact, InputPins, OutputPins

PINS = OutputPins(relay=17, green_led=23, red_led=24, buzzer=25)
INPUTS = InputPins(Contact(5), Contact(6, "open"), Contact(13))
GRANTS = 3000
PULSES = 15
PULSE_S = 0.1
IDLE_S = 2.0


# gpiozero ships no type information, so its classes are Any to mypy.
class StampedPin(MockPin):  # type: ignore[misc]
    """A mock pin that notes the perf_counter time of each change of state."""

    def __init__(self, *args: object) -> None:
        self.changed_at: list[float] = []
        super().__init__(*args)

    def _change_state(self, value: bool) -> bool:
        changed: bool = super()._change_state(value)
        if changed:
            self.changed_at.append(time.perf_counter())
        return changed


def latency_us(act: Callable[[], None], reset: Callable[[], None], pin: StampedPin) -> list[float]:
    """Microseconds from calling `act` to the pin changing, once per round."""
    samples = []
    for _ in range(GRANTS):
        reset()
        start = time.perf_counter()
        act()
        samples.append((pin.changed_at[-1] - start) * 1e6)
    return samples


def grant_latency() -> tuple[list[float], list[float]]:
    factory = MockFactory(pin_class=StampedPin)
    with Outputs(PINS, factory, pulse_s=10) as outputs:
        ours = latency_us(outputs.granted, outputs.safe_state, factory.pin(17))
    bare_factory = MockFactory(pin_class=StampedPin)
    relay = OutputDevice(17, initial_value=False, pin_factory=bare_factory)
    bare = latency_us(relay.on, relay.off, bare_factory.pin(17))
    relay.close()
    return ours, bare


def pulse_lateness_ms() -> tuple[list[float], list[float]]:
    factory = MockFactory(pin_class=StampedPin)
    relay = factory.pin(17)
    ours = []
    with Outputs(OutputPins(relay=17), factory, pulse_s=PULSE_S) as outputs:
        for _ in range(PULSES):
            outputs.pulse_relay()
            while outputs.snapshot().relay:
                time.sleep(0.01)
            on, off = relay.changed_at[-2:]
            ours.append((off - on - PULSE_S) * 1e3)
    event, bare = threading.Event(), []
    for _ in range(PULSES):
        start = time.perf_counter()
        event.wait(PULSE_S)
        bare.append((time.perf_counter() - start - PULSE_S) * 1e3)
    return ours, bare


def idle_cpu_percent() -> tuple[float, float]:
    factory = MockFactory()
    events: list[InputEvent] = []
    with Outputs(PINS, factory, pulse_s=0.8) as outputs:
        inputs = Inputs(INPUTS, factory, outputs, events.append)
        ours = cpu_while_sleeping()
        inputs.close()
    return ours, cpu_while_sleeping()


def cpu_while_sleeping() -> float:
    start_cpu, start = time.process_time(), time.perf_counter()
    time.sleep(IDLE_S)
    return (time.process_time() - start_cpu) / (time.perf_counter() - start) * 100


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def row(name: str, ours: float, bare: float, unit: str) -> str:
    ratio = f"{ours / bare:6.2f}" if bare > 0 else "     -"
    return f"{name:<36} {ours:>10.3f} {bare:>10.3f} {unit:<4} {ratio}"


def main() -> None:
    ours_grant, bare_grant = grant_latency()
    ours_late, bare_late = pulse_lateness_ms()
    ours_cpu, bare_cpu = idle_cpu_percent()
    print(f"{'measure':<36} {'qrgate':>10} {'baseline':>10} {'unit':<4} {'ratio':>6}")
    print(row("granted() -> relay, median", median(ours_grant), median(bare_grant), "us"))
    print(row("granted() -> relay, p99", p99(ours_grant), p99(bare_grant), "us"))
    print(row("pulse end lateness, median", median(ours_late), median(bare_late), "ms"))
    print(row("pulse end lateness, max", max(ours_late), max(bare_late), "ms"))
    print(row("idle CPU, outputs + inputs", ours_cpu, bare_cpu, "%"))
    print(
        f"\n{GRANTS} grants on MockFactory; baseline: bare OutputDevice.on(). {PULSES} pulses of "
        f"{PULSE_S * 1000:.0f} ms on the timer thread; baseline: Event.wait({PULSE_S}). "
        f"Idle over {IDLE_S:.0f} s; baseline: the same process with nothing open."
    )


if __name__ == "__main__":
    main()
