"""`python train.py -m ...`: a Hydra sweep runs every job into its own folder under the sweep folder."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf
from train_helpers import run_train_py

pytestmark = pytest.mark.slow  # trains (and launches processes)


def test_multirun_gives_one_run_folder_per_job_whatever_is_swept(tmp_path):
    # Both jobs have the same run name (the learning rate is not part of it): the job number keeps them apart.
    run_train_py("rope=mrope", "optim.lr=1e-3,3e-3", "steps=1", "eval_every=1", f"hydra.sweep.dir={tmp_path}",
                 multirun=True)
    assert (tmp_path / "multirun.yaml").is_file()
    assert sorted(path.name for path in tmp_path.iterdir() if path.is_dir()) == ["tiny-mrope-seed0-job0",
                                                                                  "tiny-mrope-seed0-job1"]
    for job, lr in enumerate((1e-3, 3e-3)):
        run = tmp_path / f"tiny-mrope-seed0-job{job}"
        assert OmegaConf.load(run / "checkpoints" / "config.yaml").optim.lr == lr
        assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 1
        assert json.loads((run / "final_eval.json").read_text())["steps"] == 1
        assert "validation accuracy after 1 steps" in (run / "train.log").read_text()
