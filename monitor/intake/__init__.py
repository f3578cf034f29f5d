"""What comes in: one MQTT session that sees every gate (`subscriber`), what each message
means (`ingest`), whose events can be authenticated (`enrollment`), and what the monitor
knows right now for its views (`state`)."""
