"""Who may join a graph's tcp edges and tcp worker links: the `[security]` table, made real.

    [security]
    curve_secret_key_file = "keys/graph.secret"   # `redline keys keys --name graph`
    allowed_keys = []                              # more peers' public keys, if any
    insecure = false                               # true: tcp without CURVE (loopback tests)

Every process of the graph holds the same secret key file; a peer without it (or a key in
`allowed_keys`) is refused and counted (zap.py).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from redline.feeds.settings import Settings
from redline.pipeline.transport.curve import Z85_KEY_PATTERN, Curve, read_public, read_secret

CurveKey = Annotated[str, msgspec.Meta(pattern=Z85_KEY_PATTERN)]  # a public key, Z85


class SecuritySpec(Settings):
    """The data plane's CURVE settings of one graph."""

    curve_secret_key_file: str = ""  # the graph's key pair (`redline keys`)
    allowed_keys: tuple[CurveKey, ...] = ()  # more peers' public keys (the graph's own always)
    insecure: bool = False  # tcp edges without CURVE: loopback tests only

    def curve(self) -> Curve | None:
        """The key pair and allow-list tcp edges use, or None when no key file is set."""
        if not self.curve_secret_key_file:
            return None
        public, secret = read_secret(self.curve_secret_key_file)
        return Curve(public, secret, frozenset({public, *map(read_public, self.allowed_keys)}))
