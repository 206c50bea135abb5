"""`key=value,key=value` text (as `--latency`, `--risk` and `--orders` take it) into a checked
Settings struct, with one-line errors that name the flag, the bad part and the valid keys."""

from __future__ import annotations

from typing import TypeVar

import msgspec

from redline.feeds.settings import Settings, plain

S = TypeVar("S", bound=Settings)


def settings_from_pairs(flag: str, text: str, cls: type[S], keys: dict[str, str]) -> S:
    """`keys` maps each key the user types to its field of `cls`; missing keys keep defaults."""
    values = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or key.strip() not in keys:
            raise ValueError(
                f"{flag} {text!r}: {part!r} is not key=value with a key of {', '.join(keys)}"
            )
        values[keys[key.strip()]] = value.strip()
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"{flag} {text!r}: {plain(str(exc), values, cls)}") from None
