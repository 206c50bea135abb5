import pytest

from redline.strategies import target


def test_params_come_from_key_value_pairs_and_are_checked():
    p = target.params("ema_cross", ["alpha=0.05", "every=10"])
    assert (p.alpha, p.every, p.qty) == (0.05, 10, 1)
    with pytest.raises(ValueError, match="key of ema_cross's: alpha, every, qty"):
        target.params("ema_cross", ["alhpa=0.05"])
    with pytest.raises(ValueError, match="alpha"):
        target.params("ema_cross", ["alpha=2"])  # above its bound of 1


def test_an_unknown_strategy_names_the_known_ones():
    with pytest.raises(
        ValueError, match="no strategy 'ema'; the strategies are ema_cross, market_maker"
    ):
        target.strategy("ema")
