"""Checkpoints: an interrupted run resumes exactly; a non-finite loss stops with the last good one kept."""

from __future__ import annotations

import pytest
import torch
from train_helpers import compose_config, finite, logged, single_thread  # noqa: F401 (autouse fixture)

from minivlm.model import VLM
from minivlm.train.optim import warmup_cosine
from minivlm.train.run import train

pytestmark = pytest.mark.slow  # trains (and launches processes)

STEPS = 5
RUN = ("steps=5", "eval_every=2", "trainer.log_every_n_steps=1", "optim.warmup_steps=1", "optim.lr=3e-3")


def test_interrupted_run_resumes_exactly(tmp_path):
    whole = train(compose_config(*RUN), tmp_path / "whole")
    # Stopped after step 3 (between validations), with the cosine still planned for 5 steps.
    train(compose_config(*RUN, "trainer.max_steps=3"), tmp_path / "split")
    assert torch.load(tmp_path / "split" / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 3
    resumed = train(compose_config(*RUN, "ckpt_path=last"), tmp_path / "split")

    losses = logged(tmp_path / "whole", "train/loss")
    assert list(losses) == list(range(STEPS)) and finite(losses.values())
    assert logged(tmp_path / "split", "train/loss") == losses  # same values at the same steps: bit-exact
    lrs = logged(tmp_path / "split", "lr")
    assert lrs == logged(tmp_path / "whole", "lr")
    assert lrs == pytest.approx({step: 3e-3 * warmup_cosine(step, 1, STEPS, 0.1) for step in range(STEPS)})
    assert resumed["steps"] == STEPS and resumed["accuracy"] == whole["accuracy"]
    final = [torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
             for run in ("whole", "split")]
    assert all(torch.equal(final[0][name], final[1][name]) for name in final[0])


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    forward, training_calls = VLM.forward, []

    def inf_at_step_3(self, batch, *args, **kwargs):
        output = forward(self, batch, *args, **kwargs)
        if output.loss is not None:  # a training step (generation passes no labels)
            training_calls.append(1)
            if len(training_calls) == 3:
                output.loss = output.loss * float("inf")
        return output

    monkeypatch.setattr(VLM, "forward", inf_at_step_3)
    with pytest.raises(SystemExit, match=r"training loss is inf at step 2; stopped before the optimizer step") as stop:
        train(compose_config("steps=4", "eval_every=2", "trainer.log_every_n_steps=1"), tmp_path)
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert f"last good checkpoint: {last}" in str(stop.value) and "ckpt_path=last" in str(stop.value)
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["global_step"] == 2  # written by the validation after step 2
    assert all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())
    assert list(logged(tmp_path, "train/loss")) == [0, 1]
    assert not (tmp_path / "final_eval.json").exists() and not (tmp_path / "export").exists()
