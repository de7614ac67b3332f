"""python train.py --help: every group, every choice with its header, the main keys with their comments."""

from __future__ import annotations

import subprocess
import sys

import pytest
from train_helpers import CONFIGS, REPO

from minivlm.train.help import help_text


def test_the_help_lists_every_group_and_choice_with_its_header_and_marks_the_defaults():
    text = help_text()
    for group in ("data", "experiment", "model", "rope", "trainer"):
        assert f"\n{group}:\n" in text
        for path in (CONFIGS / group).glob("*.yaml"):
            assert f"\n  {path.stem:<20} " in text, path
    assert "  tiny                 (default) tiny: the laptop size (LM 256 x 4, ViT 192 x 3, 8 px patches)" in text
    assert "(default) The learning recipe" in text and "schema" not in text  # the dataclass node is no choice


def test_the_help_quotes_the_main_keys_with_their_comments():
    text = help_text()
    for line in (CONFIGS / "train.yaml").read_text().splitlines():
        if line.startswith(("seed:", "steps:", "  lr:", "ckpt_path:")):
            assert f"  {line}\n" in text
    assert "  max_pixels: 4096          # larger images are downscaled" in text  # data/mix.yaml
    assert "\n  hydra:" not in text and "\n  defaults:" not in text  # the parts that are not keys


@pytest.mark.slow
def test_train_py_help_prints_it():
    done = subprocess.run([sys.executable, "train.py", "--help"], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout == help_text().replace("$$", "$") + "\n"
