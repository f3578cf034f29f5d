"""Running many gates: provisioning broker accounts, ACLs and bridges (`provision`, `cli`),
enrolling their event keys (`gates_cli`), and asking them for what the store is missing
(`resend`)."""
