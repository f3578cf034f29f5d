"""The private mosquitto the tests start (see scanner.localbroker, which the demo uses too)."""

from scanner.localbroker import Mosquitto, free_port, mosquitto_binary, port_open

__all__ = ["Mosquitto", "free_port", "mosquitto_binary", "port_open"]
