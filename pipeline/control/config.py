"""The `[control]` table of a graph: where its control endpoint listens and whom it lets in.

    [control]
    address = ""                       # empty: ipc in the run's private directory
    curve_secret_key_file = ""         # tcp only: the endpoint's key (`redline keys`)
    allowed_client_keys = []           # tcp only: Z85 public keys of `redline ctl` clients
    journal = ""                       # empty: STEM.control.jsonl beside the decision journal

tcp without a key and an allow-list is refused when the graph loads (never "any client").
"""

from __future__ import annotations

from redline.feeds.settings import Settings
from redline.pipeline.transport.address import address_problem
from redline.pipeline.transport.security import CurveKey


class ControlSpec(Settings):
    """The graph's control endpoint (`redline ctl`)."""

    enabled: bool = True
    address: str = ""  # empty: ipc in the run's private directory; or tcp://HOST:PORT
    curve_secret_key_file: str = ""  # the endpoint's key (`redline keys`); tcp only
    allowed_client_keys: tuple[CurveKey, ...] = ()  # Z85 public keys of `redline ctl` clients
    journal: str = ""  # command journal; empty: STEM.control.jsonl beside the decision journal

    def check(self) -> None:
        a = self.address
        if a and not a.startswith(("ipc://", "tcp://")):
            raise ValueError(f"field 'address' is {a!r}; use ipc://PATH or tcp://HOST:PORT")
        if a.startswith("tcp://") and (problem := address_problem(a)):
            raise ValueError(f"field 'address' is {a!r}; {problem}")
        if a.startswith("tcp://") and not (self.curve_secret_key_file and self.allowed_client_keys):
            raise ValueError(
                f"field 'address' is {a!r}: a tcp control endpoint needs curve_secret_key_file "
                "and allowed_client_keys (make pairs with `redline keys DIR`), or leave "
                "address empty for the private ipc endpoint"
            )
