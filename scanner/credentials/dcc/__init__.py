"""EU Digital COVID Certificates ("HC1:"), Vietnam's vaccine passport among them, verified
offline as a pipeline of small pure steps, each giving a value or the reason it stops:

    unprefix -> base45 -> inflate (size cap) -> COSE_Sign1 -> CWT claims     (`chain`)
    -> signature against the trust list -> key usage -> time                 (`verifier`)
    -> the certificate's content by the DCC schema                           (`certificate`)
    -> revocation hashes (`revocation`) and health rules as data (`rules`)

The trust list is loaded and indexed by kid in `trustlist`; `cose` holds the two
signature algorithms; `subject` the keyed hash that stands for a certificate in events;
`issue` makes test certificates with a throwaway signer. Whether the holder may pass
here and now is the decision package's question (`scanner.decision.dcc`).
"""
