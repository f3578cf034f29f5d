"""qrgate's MQTT side: topic layout, event schema, the durable outbox, the publisher and
signed commands. Imports nothing else of qrgate: handlers and sources are passed in."""
