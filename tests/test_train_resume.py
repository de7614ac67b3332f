"""Checkpoints: an interrupted run resumes exactly, and only under its own settings; a non-finite or
diverged loss stops with the last good one kept."""

from __future__ import annotations

import math
import re

import pytest
import torch
from train_helpers import compose_config, finite, logged, single_thread  # noqa: F401 (autouse fixture)

from minivlm.model import VLM
from minivlm.train.module import LossGuard, LossGuardError
from minivlm.train.optim import warmup_cosine
from minivlm.train.resume import check_resume
from minivlm.train.run import build_run, train

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
    for total in ("train/tokens", "train/flops"):  # the run's totals go on counting across the resume
        assert logged(tmp_path / "split", total) == logged(tmp_path / "whole", total)
    seconds = logged(tmp_path / "split", "train/time")
    assert all(seconds[step] < seconds[step + 1] for step in range(STEPS - 1))
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
    assert f"last good checkpoint: {last} (step 2)" in str(stop.value) and "resume.weights_only=true" in str(stop.value)
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["global_step"] == 2  # written by the validation after step 2
    assert all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())
    assert list(logged(tmp_path, "train/loss")) == [0, 1]
    assert not (tmp_path / "final_eval.json").exists() and not (tmp_path / "export").exists()


def test_a_diverging_loss_stops_like_a_nan_and_keeps_the_last_good_checkpoint(tmp_path):
    # lr 50 (warmup 2): the loss goes from 6.1 to about 1e4 at step 1, without becoming NaN for 20 steps.
    with pytest.raises(SystemExit, match=r"training loss is [\d.e+]+ at step 1, above divergence_factor=3.0 times "
                                         r"6\.\d+, the loss of a uniform guess \(ln of the vocabulary size\): "
                                         r"training diverged") as stop:
        train(compose_config("steps=6", "eval_every=1", "optim.lr=50", "optim.warmup_steps=2"), tmp_path)
    assert f"last good checkpoint: {tmp_path / 'checkpoints' / 'last.ckpt'} (step 1)" in str(stop.value)
    assert not (tmp_path / "final_eval.json").exists()


def test_the_guard_scales_with_a_uniform_guess_so_a_fine_tunes_new_kind_of_batch_is_no_divergence():
    # A run from trained weights starts at 0.70; a curriculum stage of longer videos took one batch to 2.44.
    guard = LossGuard(3.0, vocab_size=512)  # stops above 3 ln 512 = 18.7
    bad = [bool(guard.update(torch.tensor(loss), step)) for step, loss in enumerate([0.70, 2.44, 18.0, 19.0, math.nan])]
    assert bad == [False, False, False, True, True]
    with pytest.raises(LossGuardError, match=r"training loss is 19 at step 3, above divergence_factor=3.0 times 6.238"):
        guard.check(*[value.item() for value in guard.record()])


FIRST = ("steps=4", "eval_every=2", "optim.warmup_steps=1")


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory):
    """A run stopped after 2 of its 4 steps: the checkpoint that the resume checks are made against."""
    run_dir = tmp_path_factory.mktemp("two_steps")
    train(compose_config(*FIRST, "trainer.max_steps=2"), run_dir)
    return run_dir


@pytest.mark.parametrize("overrides, fields", [
    (["rope=circle"], [r"rope.variant: checkpoint 'mrope_interleaved', this run 'circle'"]),
    (["optim.lr=3e-3", "optim.betas=[0.8,0.9]"], [r"optim.betas: checkpoint \[0.9, 0.95\], this run \[0.8, 0.9\]",
                                                  r"optim.lr: checkpoint 0.001, this run 0.003"]),
    (["model.lm_dim=128", "model.lm_heads=2"], [r"model.lm_dim: checkpoint 64, this run 128", "model.lm_heads"]),
])
def test_resume_refuses_other_settings_naming_the_fields(two_steps, overrides, fields):
    with pytest.raises(ValueError, match="was trained with other settings than this run") as error:
        train(compose_config(*FIRST, "ckpt_path=last", *overrides), two_steps)
    for field in fields:
        assert re.search(field, str(error.value)), str(error.value)
    assert "resume.weights_only=true" in str(error.value)
    assert torch.load(two_steps / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 2  # untouched


def test_a_checkpoint_from_before_a_model_field_existed_resumes_at_that_fields_default(two_steps, tmp_path):
    older = tmp_path / "older.ckpt"
    checkpoint = torch.load(two_steps / "checkpoints" / "last.ckpt", weights_only=False)
    del checkpoint["hyper_parameters"]["model_config"]["qk_norm"]  # as written before the field was added
    del checkpoint["hyper_parameters"]["model_config"]["rope"]["partner"]
    torch.save(checkpoint, older)
    check_resume(older, build_run(compose_config(*FIRST), tmp_path / "same").module, weights_only=False)
    with pytest.raises(ValueError, match=r"model.qk_norm: checkpoint True, this run False"):
        check_resume(older, build_run(compose_config(*FIRST, "model.qk_norm=false"), tmp_path / "other").module,
                     weights_only=False)


def test_a_checkpoint_from_before_lr_scale_existed_resumes_unscaled_only(two_steps, tmp_path):
    older = tmp_path / "older.ckpt"
    checkpoint = torch.load(two_steps / "checkpoints" / "last.ckpt", weights_only=False)
    del checkpoint["hyper_parameters"]["optim"]["lr_scale"]  # as written before the setting was added
    torch.save(checkpoint, older)
    check_resume(older, build_run(compose_config(*FIRST), tmp_path / "same").module, weights_only=False)
    with pytest.raises(ValueError, match=r"optim.lr_scale.merger: checkpoint None, this run 0.1"):
        check_resume(older, build_run(compose_config(*FIRST, "optim.lr_scale.merger=0.1"), tmp_path / "other").module,
                     weights_only=False)


def test_weights_only_starts_a_new_schedule_from_the_weights(two_steps, tmp_path):
    checkpoint = two_steps / "checkpoints" / "last.ckpt"
    run = build_run(compose_config(*FIRST, "rope=circle", "optim.lr=3e-3"), tmp_path)
    check_resume(checkpoint, run.module, weights_only=True)
    saved = torch.load(checkpoint, weights_only=False)["state_dict"]
    assert all(torch.equal(run.module.state_dict()[name], value) for name, value in saved.items())

    train(compose_config(*FIRST, f"ckpt_path={checkpoint}", "resume.weights_only=true", "optim.lr=3e-3",
                         "trainer.log_every_n_steps=1"), tmp_path / "new")
    assert list(logged(tmp_path / "new", "train/loss")) == [0, 1, 2, 3]  # a whole new schedule
    assert logged(tmp_path / "new", "lr")[0] == pytest.approx(3e-3)  # warmup of 1 step: the new peak at once
    bigger = build_run(compose_config(*FIRST, "model.lm_dim=128", "model.lm_heads=2"), tmp_path / "big")
    with pytest.raises(ValueError, match=r"do not fit this run's model \(model fields that differ: model.lm_dim"):
        check_resume(checkpoint, bigger.module, weights_only=True)


def test_unreadable_checkpoints_are_value_errors_naming_the_file(two_steps, tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes((two_steps / "checkpoints" / "last.ckpt").read_bytes()[:5000])
    stranger = tmp_path / "other.ckpt"
    torch.save({"weights": torch.zeros(2)}, stranger)
    for path, message in [(truncated, "cannot be read"), (stranger, "not a minivlm training checkpoint"),
                          (tmp_path / "missing.ckpt", "is not a file")]:
        with pytest.raises(ValueError, match=message) as error:
            train(compose_config(*FIRST, f"ckpt_path={path}"), tmp_path / "run")
        assert str(path) in str(error.value)
