"""qrgate's hardware layer on gpiozero: relay, LEDs, buzzer, inputs, feedback patterns and
the safe state. Imports nothing else of qrgate; the pin factory is passed in."""
