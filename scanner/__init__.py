"""qrgate's application: configuration, camera, decoding, decisions, the daemon and the CLI.

Sub-modules are imported where they are used, so that light commands such as
`qrgate safe-state` start without loading the camera or the decoders.
"""

from scanner._version import __version__

__all__ = ["__version__"]
