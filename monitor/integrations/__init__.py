"""The monitor seen from other systems: Prometheus metrics (`metrics`) and Home Assistant
through MQTT discovery (`homeassistant`)."""
