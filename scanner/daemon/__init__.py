"""`qrgate run`: the gate assembled from its config (`assemble`, `hardware`), its decision
path and events (`gate`), the centre's commands (`remote`), systemd (`sdnotify`) and the
daemon's life from start to stop (`service`)."""
