"""gpiozero's lgpio pins, changed so that an output never shows a level it was not asked for.

gpiozero's `LGPIOPin` makes a pin an output in two steps: `gpio_claim_output(handle,
pin)` with lg's default level 0, which drives the line low at once, then a write of the
wanted level. On an active-low relay module (the usual cheap one) that low is the relay
energised for a moment: at every start of the gate, at `qrgate safe-state` after every
stop, and again when a closed pin (made a floating input) is claimed once more. Here:

- `output_with_state` claims the line at the wanted level in one step (lg's
  `gpio_claim_output(handle, pin, level)`), or only writes it when lg already drives it
  (lg ignores the level of a line that is an output already);
- `close` leaves an output driven at its level, instead of turning it into a floating
  input: the owner drives it inactive before closing (`Outputs.close`), and it stays so.

Everything else is gpiozero's own code. lgpio is imported with this module, so import it
only when the lgpio pin factory is asked for (see `firmware.pins`).
"""

from __future__ import annotations

from typing import Any

import gpiozero.pins.lgpio as gpiozero_lgpio
import lgpio

# The classes keep gpiozero's names: what they are, to people reading `qrgate doctor`.


class LGPIOPin(gpiozero_lgpio.LGPIOPin):  # type: ignore[misc]  # gpiozero is untyped
    def output_with_state(self, state: Any) -> None:
        handle, number = self.factory._handle, self._number
        level = int(bool(state))
        if lgpio.gpio_get_mode(handle, number) & self.GPIO_IS_LG_OUTPUT:
            lgpio.gpio_write(handle, number, level)
            return
        callback: Any = getattr(self, "_callback", None)
        if callback is not None:  # as gpiozero's function change does
            callback.cancel()
            self._callback = None
        lgpio.gpio_claim_output(handle, number, level)

    def close(self) -> None:
        if self.factory._handle is None:
            return
        if self._pwm:
            self.frequency = None  # software PWM ends; the line keeps its last level
        if lgpio.gpio_get_mode(self.factory._handle, self._number) & self.GPIO_IS_LG_OUTPUT:
            return  # stays driven at its level; the line is freed with the chip handle
        super().close()


class LGPIOFactory(gpiozero_lgpio.LGPIOFactory):  # type: ignore[misc]  # gpiozero is untyped
    """gpiozero's `LGPIOFactory` (the chip of this board, or `chip`) with the pins above."""

    def __init__(self, chip: int | None = None) -> None:
        super().__init__(chip)
        self.pin_class = LGPIOPin
