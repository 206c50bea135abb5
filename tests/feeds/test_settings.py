from typing import Literal

import msgspec
import pytest

from redline.feeds.settings import DurationNs, PositiveInt, Settings


class Inner(Settings):
    low: PositiveInt = 1
    high: PositiveInt = 2

    def check(self) -> None:
        if self.low > self.high:
            raise ValueError(f"need low ({self.low}) <= high ({self.high})")


class Outer(Settings):
    mode: Literal["a", "b"] = "a"
    timeout_ns: DurationNs = 1_000
    inner: Inner = Inner()


def test_settings_built_in_code_are_checked_like_decoded_ones():
    with pytest.raises(ValueError, match=r"Outer: field 'timeout_ns' is 0; expected int >= 1$"):
        Outer(timeout_ns=0)
    with pytest.raises(ValueError, match=r"expected int <= 3600000000000"):
        Outer(timeout_ns=2**63 - 1)  # an int64 stamp plus this would overflow
    with pytest.raises(
        ValueError, match=r"field 'mode' is 'c'; invalid enum value 'c'; valid: a, b"
    ):
        Outer(mode="c")
    with pytest.raises(ValueError, match=r"Inner: need low \(3\) <= high \(2\)"):
        Inner(low=3)
    with pytest.raises(
        msgspec.ValidationError, match=r"need low \(3\) <= high \(2\) - at `\$.inner`"
    ):
        msgspec.convert({"inner": {"low": 3}}, Outer)


def test_settings_are_frozen_and_refuse_unknown_fields():
    s = Outer(inner=Inner(high=5))
    assert s.inner.high == 5 and s.timeout_ns == 1_000
    with pytest.raises(AttributeError):
        s.mode = "b"
    with pytest.raises(msgspec.ValidationError, match="unknown field `hgih`"):
        msgspec.convert({"inner": {"hgih": 3}}, Outer)
