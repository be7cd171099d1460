"""Run-folder names of the training seeds of a data setting."""

from __future__ import annotations

import pytest

from multiref.data.settings import seeded_name, split_seed
from multiref.errors import ConfigError


def test_seeded_run_names_round_trip() -> None:
    assert seeded_name("hyp5", 0) == "hyp5" and seeded_name("gt+hyp5", 2) == "gt+hyp5_seed2"
    assert split_seed("gt+hyp5_seed2") == ("gt+hyp5", 2) and split_seed("gt") == ("gt", 0)
    assert split_seed("gt_steps_hyp5") == ("gt_steps_hyp5", 0)
    with pytest.raises(ConfigError, match="seed index must be >= 0"):
        seeded_name("gt", -1)
