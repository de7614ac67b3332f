"""`python train.py -m ...`: a Hydra sweep runs every job into its own folder under the sweep folder."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from train_helpers import run_train_py

pytestmark = pytest.mark.slow  # trains (and launches processes)


def test_multirun_gives_one_run_folder_per_job(tmp_path):
    run_train_py("rope=mrope,circle", "steps=1", "eval_every=1", f"hydra.sweep.dir={tmp_path}", multirun=True)
    assert (tmp_path / "multirun.yaml").is_file()
    for rope in ("mrope", "circle"):
        run = tmp_path / f"tiny-{rope}-seed0"  # the default run name, resolved per job
        assert OmegaConf.load(run / "checkpoints" / "config.yaml").rope.variant == rope
        assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 1
        assert json.loads((run / "final_eval.json").read_text())["steps"] == 1
