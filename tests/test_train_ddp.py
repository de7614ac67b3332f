"""Data parallel on 2 CPU processes (gloo) trains exactly like one process with the same global batch."""

from __future__ import annotations

import pytest
import torch
from train_helpers import compose_config, logged, metric_rows, run_train_py, single_thread  # noqa: F401 (autouse fixture)

from minivlm.train.run import train

pytestmark = pytest.mark.slow  # trains (and launches processes)

RUN = ("steps=3", "eval_every=2", "trainer.log_every_n_steps=1", "optim.warmup_steps=1", "data.mix=position")


def test_ddp_matches_one_process_with_the_same_global_batch(tmp_path):
    # Rank r's batch b holds stream positions (2b + r) * 2 ...: together the single run's batch b of 4.
    run_train_py("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
                 "data.batch_size=2", f"hydra.run.dir={tmp_path / 'ddp'}", *RUN)
    train(compose_config(*RUN, "data.batch_size=4"), tmp_path / "single")

    ddp, single = (logged(tmp_path / run, "train/loss") for run in ("ddp", "single"))
    assert list(ddp) == [0, 1, 2]
    # The loss is the mean over the global batch's answer tokens on both sides, not a mean of rank means.
    assert ddp == pytest.approx(single, rel=1e-5)
    assert logged(tmp_path / "ddp", "train/answer_tokens") == logged(tmp_path / "single", "train/answer_tokens")
    # Each task's loss pools both ranks' answer tokens of that task.
    per_task = {key for row in metric_rows(tmp_path / "single") for key, value in row.items()
                if key.startswith("train/loss/") and value}
    assert len(per_task) > 1
    for key in per_task:
        assert logged(tmp_path / "ddp", key) == pytest.approx(logged(tmp_path / "single", key), rel=1e-5)
    assert list(logged(tmp_path / "ddp", "val/acc")) == [1]  # validated across ranks, counts summed
    weights = [torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
               for run in ("ddp", "single")]
    # AdamW divides each gradient by its own running scale, so a summation-order difference of 1e-9 in a
    # near-zero gradient can move a weight by a few 1e-6; 1e-5 is still 1 % of one step at lr 1e-3.
    for name, value in weights[1].items():
        torch.testing.assert_close(weights[0][name], value, rtol=1e-4, atol=1e-5)
    assert (tmp_path / "ddp" / "final_eval.json").is_file() and (tmp_path / "ddp" / "export").is_dir()
