"""Image folders as teams have them: odd file names, high-bit and transparent images, through the CLI."""

from __future__ import annotations

import os
import sys

import pytest

from .conftest import REPO_ROOT, assert_one_line_error, invoke, make_image, tree_digest

QUICK = ["--config", REPO_ROOT / "configs" / "quick.toml", "--workers", 0]


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="the file system there only stores UTF-8 names")
def test_a_file_name_that_is_not_utf8_is_bad_data_naming_the_file(tiny_dataset, tmp_path):
    # Latin-1 names from an old archive: Python hands them over with surrogate escapes that
    # no Parquet or CSV output can hold (an internal error, exit 4, before).
    folder = os.fsencode(tiny_dataset / "train" / "cat")
    make_image(tmp_path / "x.png", 99).rename(os.path.join(folder, b"caf\xe9.png").decode("utf-8", "surrogateescape"))
    before = tree_digest(tiny_dataset)
    result = invoke("audit", tiny_dataset, "--out", tmp_path / "run", *QUICK)
    assert_one_line_error(result, 3, "not valid UTF-8", "train/cat/caf\\xe9.png", "rename")
    assert tree_digest(tiny_dataset) == before
