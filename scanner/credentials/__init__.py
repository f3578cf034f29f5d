"""The kinds of credential a gate reads, one module each: what a payload is (`kinds`), and
for each kind how it is parsed and verified (`passes` with its signing `keys`, `badge`,
`cccd`, `vnqr`, `dcc`), and whether two of them name the same person (`person`).
Whether the holder may pass *here, now* is the decision package's question.

A kind's module, and the libraries only it needs (PyJWT and cryptography for passes),
load only when the gate's config accepts that kind: the policy imports it where it builds
the kind's verifier (`Policy.from_config`), never at the top of a module `qrgate run`
imports. Every kind added later keeps to this, so that a gate pays in memory only for the
kinds it accepts (`bench.gate` lists what `qrgate run` imports; a test checks the rule)."""
