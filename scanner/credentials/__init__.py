"""The kinds of credential a gate reads, one module each: what a payload is (`kinds`), and
for each kind how it is parsed and verified (`passes` with its signing `keys`, `badge`,
`cccd`, `vnqr`, `dcc`), and whether two of them name the same person (`person`).
Whether the holder may pass *here, now* is the decision package's question."""
