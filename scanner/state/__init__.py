"""What a gate remembers locally: allowlist, revocations, passages and mode (`store`), and
the allowlist's CSV import (`allowcsv`)."""
