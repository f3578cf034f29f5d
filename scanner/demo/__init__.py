"""`qrgate demo`: a whole gate on this machine, no hardware and no config needed."""
