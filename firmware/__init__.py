"""qrgate's hardware layer on gpiozero: relay, LEDs, buzzer, inputs, feedback patterns and
the safe state. Imports nothing else of qrgate; the pin factory is passed in.

- `firmware.pins`: where things are wired (`OutputPins`, `InputPins`, `Contact`) and
  `make_pin_factory`;
- `firmware.outputs.Outputs`: relay, LEDs and buzzer driven by decisions and modes;
- `firmware.inputs.Inputs`: exit button, door contact and fire alarm;
- `firmware.safe.safe_state`: every output inactive, for `qrgate safe-state`;
- `firmware.patterns`, `firmware.plan`, `firmware.scheduler`: what the outputs do over
  time, and the timers (real, or a manual clock for tests).
"""
