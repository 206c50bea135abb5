"""key=value text into Settings: one-line errors naming the flag and the keys."""

import pytest

from redline.venue.latency import Latency
from redline.venue.pairs import settings_from_pairs


def test_keys_map_to_fields_and_errors_name_the_part():
    keys = {"entry": "entry_us"}
    assert settings_from_pairs("--x", "entry=5", Latency, keys) == Latency(entry_us=5)
    with pytest.raises(ValueError, match="--x 'entry5': 'entry5' is not key=value"):
        settings_from_pairs("--x", "entry5", Latency, keys)
