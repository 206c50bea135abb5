"""How every setting in redline is declared: frozen msgspec Structs with constraints in the types.

One config system for the whole tree: the graph TOML, the arbiter and its breakers, the
strategy and the workers all declare their settings as `Settings` subclasses:

    class BreakerConfig(Settings):
        heartbeat_timeout_ns: DurationNs = 50_000_000
        slow_window: Annotated[int, Meta(ge=1, le=4096)] = 32

        def check(self) -> None:          # rules across fields, if any
            if self.slow_max_misses > self.slow_window: raise ValueError("...")

- Frozen, keyword-only, unknown fields refused.
- Bounds live in the field's type (`Meta(gt=..., le=...)`), and the upper bounds say what the
  runtime can hold (an int64 nanosecond stamp, a ZeroMQ high-water mark), so a value that loads
  never fails later on the first event.
- A graph TOML is decoded with `msgspec.convert` (pipeline/graph/config.py turns its errors into
  one line naming node, field, value and what is valid). A value built in code is checked the same
  way: `__post_init__` round-trips the struct through `msgspec.convert`, because msgspec checks
  types and bounds only when decoding.
"""

from __future__ import annotations

import re
import threading
from typing import Annotated

import msgspec
import msgspec.inspect

INT64_MAX = 2**63 - 1
HOUR_NS = 3_600_000_000_000

# Field types shared across the tree. Durations are bounded by an hour: far above any budget or
# timeout that makes sense, far below the int64 stamps they are added to (2^63 ns is 292 years).
PositiveInt = Annotated[int, msgspec.Meta(gt=0, le=2**31 - 1)]
NonNegativeInt = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]
DurationNs = Annotated[int, msgspec.Meta(gt=0, le=HOUR_NS)]
DurationUs = Annotated[int, msgspec.Meta(gt=0, le=HOUR_NS // 1000)]
DurationMs = Annotated[int, msgspec.Meta(gt=0, le=HOUR_NS // 1_000_000)]
NonNegativeNs = Annotated[int, msgspec.Meta(ge=0, le=HOUR_NS)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0.0)]
InstrumentId = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]  # uint32 in every record
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]

_checking = threading.local()  # set while a struct is being re-decoded by __post_init__


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every settings struct; see the module docstring."""

    def __post_init__(self) -> None:
        if getattr(_checking, "active", False):  # inside the round trip below
            self.check()
            return
        _checking.active = True
        raw = msgspec.to_builtins(self)
        try:
            msgspec.convert(raw, type(self))
        except msgspec.ValidationError as exc:
            raise ValueError(f"{type(self).__name__}: {plain(str(exc), raw, type(self))}") from None
        finally:
            _checking.active = False

    def check(self) -> None:
        """Rules across fields; raise ValueError naming the fields. Bounds are in the types."""


def plain(msg: str, raw: object = None, typ: type | None = None) -> str:
    """msgspec's "Expected `int` >= 1 - at `$.hwm`" -> "field 'hwm' is 0; expected int >= 1"
    (the value read from `raw`, the data that was decoded, when it holds that path; the valid
    choices of an enum or literal field from `typ`, the type decoded into)."""
    text, sep, at = msg.rpartition(" - at ")
    if not sep:
        text, at = msg, ""
    field = at.strip("`").removeprefix("$").lstrip(".")
    text = text.replace("`", "")
    if text.startswith(("Expected", "Invalid")):
        text = text[0].lower() + text[1:]
    choices = _choices(typ, field) if typ is not None and text.startswith("invalid") else None
    if choices:
        text += f"; valid: {', '.join(map(str, choices))}"
    if not field:
        return text
    value = value_at(raw, field)
    shown = "" if value is MISSING else f" is {value!r}"
    return f"field '{field}'{shown}; {text}"


MISSING = object()


def value_at(raw: object, path: str) -> object:
    """The value at a msgspec path like `workers[1].heartbeat_us` in decoded data, or MISSING."""
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        try:
            raw = raw[int(part[1:-1])] if part.startswith("[") else raw[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError, ValueError):
            return MISSING
    return raw


def _choices(typ: type, path: str) -> tuple | None:
    """The values an enum or Literal field at `path` of `typ` accepts, if it is one."""
    info = msgspec.inspect.type_info(typ)
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        while isinstance(info, msgspec.inspect.UnionType):  # X | None: look into X
            info = next(t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
        if part.startswith("["):
            info = getattr(info, "item_type", None)
        elif isinstance(info, msgspec.inspect.StructType):
            info = next((f.type for f in info.fields if f.encode_name == part), None)
        else:
            return None
    if isinstance(info, msgspec.inspect.EnumType):
        return tuple(m.value for m in info.cls)
    if isinstance(info, msgspec.inspect.LiteralType):
        return info.values
    return None
