"""Claims of README.md, run as a new user runs them, where the product had not done what the
README says."""

from __future__ import annotations

import pytest

import datacheck

from .conftest import assert_one_line_error, invoke


def test_out_of_range_detector_value_is_exit_2_even_for_a_detector_not_selected(tiny_dataset, tmp_path):
    # README, `--config FILE`: "non_iid `n_permutations` <= 10,000: a value out of range is exit 2
    # before any work". non_iid is opt-in, so an audit of the default or other checks had run
    # (exit 0) with this file, while a wrong type in the same table was already exit 2.
    config = tmp_path / "c.toml"
    config.write_text("[detectors.non_iid]\nn_permutations = 10001\n")
    out = tmp_path / "run"
    result = invoke("audit", tiny_dataset, "--checks", "image_properties", "--config", config, "--out", out, "-q")
    assert_one_line_error(result, 2, "non_iid.n_permutations", "10001")
    assert not out.exists()
    # The bound itself is accepted.
    config.write_text("[detectors.non_iid]\nn_permutations = 10000\n")
    assert invoke("audit", tiny_dataset, "--checks", "image_properties", "--config", config, "--out", out, "-q").exit_code == 0


def test_out_of_range_value_in_a_config_dict_is_refused_by_the_python_api(tiny_dataset):
    with pytest.raises(datacheck.UsageError, match=r"outliers\.k must be an integer in \[1, 1000\], got 1001"):
        datacheck.audit(tiny_dataset, checks="image_properties", config={"detectors": {"outliers": {"k": 1001}}})
