"""Test and benchmark support: a private mosquitto, QR frame rendering, a notify socket."""
