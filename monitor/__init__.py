"""qrgate's central side: subscribe to every gate, store events once, report who was where."""
