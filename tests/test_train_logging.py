"""What a run logs: loss, learning rate, accuracy, tokens/s and FLOPs (CSV always, TensorBoard, W&B)."""

from __future__ import annotations

import importlib.util
import itertools
import warnings

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.utils.flop_counter import FlopCounterMode
from train_helpers import compose_config, logged, metric_rows, single_thread  # noqa: F401 (autouse fixture)

from minivlm.data.tasks import MIXES
from minivlm.train.flops import forward_flops, training_flops
from minivlm.train.optim import warmup_cosine
from minivlm.train.run import build_run, build_trainer, train


@pytest.mark.slow
def test_csv_log_has_loss_lr_accuracy_tokens_and_flops(tmp_path, tokenizer):
    cfg = compose_config("data.mix=position", "steps=4", "eval_every=4", "trainer.log_every_n_steps=2",
                         "optim.warmup_steps=1", "optim.lr=3e-3")
    train(cfg, tmp_path)
    # One row per logging interval (steps 2 and 4), under the index of its last batch.
    assert list(logged(tmp_path, "train/loss")) == [1, 3]
    lrs = logged(tmp_path, "lr")
    assert lrs == pytest.approx({step: 3e-3 * warmup_cosine(step, 1, 4, 0.1) for step in (1, 3)})
    assert list(logged(tmp_path, "val/acc")) == [3]
    assert all(list(logged(tmp_path, f"val/acc/{task}")) == [3] for task in MIXES["position"])

    # Cumulative real (non-pad) tokens and FLOPs, counted from the batches the run trained on.
    run = build_run(cfg, tmp_path)
    batches = list(itertools.islice(run.datamodule.train_dataloader(), 4))
    rows = {int(row["step"]): row for row in metric_rows(tmp_path) if row.get("train/tokens")}
    tokens = list(itertools.accumulate(int((b["input_ids"] != tokenizer.pad_id).sum()) for b in batches))
    flops = list(itertools.accumulate(training_flops(run.module.model, b) for b in batches))
    assert [int(rows[k]["train/tokens"]) for k in (1, 3)] == [tokens[1], tokens[3]]
    assert [int(rows[k]["train/flops"]) for k in (1, 3)] == [flops[1], flops[3]]
    for k in (1, 3):
        assert float(rows[k]["train/tokens_per_sec"]) > 0 and float(rows[k]["train/flops_per_sec"]) > 0
        assert float(rows[k]["train/samples_per_sec"]) > 0 and float(rows[k]["train/time"]) > 0
    assert float(rows[3]["train/time"]) > float(rows[1]["train/time"])


@pytest.mark.slow
def test_the_progress_bar_counts_steps_whether_or_not_rich_is_installed(tmp_path):
    cfg = compose_config("trainer.enable_progress_bar=true")
    bar = build_trainer(cfg, build_run(cfg, tmp_path)).progress_bar_callback
    assert type(bar) is TQDMProgressBar  # Lightning's rich default would print "Epoch 0/-2"


def test_progress_lines_on_the_console_and_in_train_log_when_the_bar_is_off(tmp_path, capsys):
    # compose_config turns the progress bar off, as sweeps do.
    train(compose_config("steps=4", "eval_every=2", "logging.progress_every=2", "trainer.log_every_n_steps=1"), tmp_path)
    losses, lrs = logged(tmp_path, "train/loss"), logged(tmp_path, "lr")
    accuracy = logged(tmp_path, "val/acc")
    lines = [line.split("] ", 1)[1] for line in (tmp_path / "train.log").read_text().splitlines() if line.startswith("[")]
    progress = [line for line in lines if line.startswith("step ")]
    # Lightning logs a step's metrics under the index of the batch (step - 1).
    assert [line.split("  ")[:3] for line in progress] == [
        ["step 2/4", f"loss {losses[1]:.4f}", f"lr {lrs[1]:.2e}"], ["step 2/4", f"val acc {accuracy[1]:.3f}"],
        ["step 4/4", f"loss {losses[3]:.4f}", f"lr {lrs[3]:.2e}"], ["step 4/4", f"val acc {accuracy[3]:.3f}"]]
    assert all(line.endswith(" tok/s") for line in progress if "loss" in line)
    assert f"run folder: {tmp_path}" in lines
    printed = capsys.readouterr().out
    assert all(line in printed for line in progress) and "validation accuracy after 4 steps" in printed


@pytest.mark.slow
def test_per_task_loss_is_each_tasks_mean_answer_token_loss_over_the_interval(tmp_path):
    run_config = ("data.mix=position", "steps=4", "eval_every=4", "optim.warmup_steps=1", "optim.lr=3e-3")
    every_step = compose_config(*run_config, "trainer.log_every_n_steps=1")
    train(every_step, tmp_path / "every_step")
    train(compose_config(*run_config, "trainer.log_every_n_steps=2"), tmp_path / "every_other")
    L.seed_everything(every_step.seed, workers=True, verbose=False)  # train's seeding: the run's initial weights
    run = build_run(every_step, tmp_path / "rebuilt")
    names = run.datamodule.trained_tasks
    batches = list(itertools.islice(run.datamodule.train_dataloader(), 4))
    counts = [torch.bincount(b["answer_task"], minlength=len(names)).tolist() for b in batches]
    rows = {int(row["step"]): row for row in metric_rows(tmp_path / "every_step") if row.get("train/loss")}
    per_task = [{name: float(rows[i][f"train/loss/{name}"]) for name, n in zip(names, counts[i]) if n}
                for i in range(4)]
    assert all(not rows[i].get(f"train/loss/{name}") for i in range(4) for name, n in zip(names, counts[i]) if not n)
    # Step 1 trains the initial weights: the same first batch through them gives each task's mean.
    losses, owner = run.module.model(batches[0]).answer_losses.detach(), batches[0]["answer_task"]
    assert per_task[0] == pytest.approx({names[t]: losses[owner == t].mean().item() for t in owner.unique().tolist()},
                                        rel=1e-5)
    for i in range(4):  # weighted by their answer tokens, the tasks' means are the step's loss
        total = sum(loss * counts[i][names.index(name)] for name, loss in per_task[i].items())
        assert total / sum(counts[i]) == pytest.approx(float(rows[i]["train/loss"]), rel=1e-5)
    # Logged every other step, a task's loss pools the interval's two steps, then starts again.
    pooled = {int(row["step"]): row for row in metric_rows(tmp_path / "every_other") if row.get("train/loss")}
    assert sorted(pooled) == [1, 3]
    for last in (1, 3):
        steps = (last - 1, last)
        for name in set(per_task[last - 1]) | set(per_task[last]):
            weight = [counts[i][names.index(name)] for i in steps]
            expected = sum(per_task[i].get(name, 0.0) * w for i, w in zip(steps, weight)) / sum(weight)
            assert float(pooled[last][f"train/loss/{name}"]) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_a_run_warns_nothing_that_is_not_about_it(tmp_path, capfd, caplog):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning, also those shown once per process
        train(compose_config("steps=1", "eval_every=1", "data.num_workers=1"), tmp_path)
    assert [str(warning.message) for warning in caught] == []
    printed = capfd.readouterr()
    assert "Tip" not in printed.out + printed.err + caplog.text  # Lightning's advertisements
    assert "validation accuracy after 1 steps" in printed.out


def math_attention(q, k, v, attn_mask=None, is_causal=False, enable_gqa=False, **unused):
    """Attention as two batched matmuls, which every torch version's FLOP counter counts."""
    if enable_gqa:
        k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], dim=1) for x in (k, v))
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if is_causal:
        attn_mask = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    return scores.softmax(-1) @ v


@pytest.mark.slow
def test_flops_match_torch_flop_counter(tmp_path, monkeypatch):
    # Fused attention kernels are counted or not depending on the torch version and device; the
    # same attention written as matmuls is counted by all, so the count checks forward_flops'
    # attention formula as well as its weight matrices.
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", math_attention)
    run = build_run(compose_config("data.batch_size=3", tiny_model=False), tmp_path)  # the tiny size itself
    model, batch = run.module.model, next(iter(run.datamodule.train_dataloader()))
    with FlopCounterMode(display=False) as forward:
        loss = model(batch).loss
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    assert forward_flops(model, batch) == forward.get_total_flops()
    # Backward is 2x forward for every matmul but the patch embedding's (pixels need no gradient: 1x).
    measured = forward.get_total_flops() + backward.get_total_flops()
    assert training_flops(model, batch) == pytest.approx(measured, rel=0.01)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None, reason="tensorboard not installed")
def test_tensorboard_logs_when_installed(tmp_path):
    train(compose_config("steps=1", "eval_every=1", "trainer.log_every_n_steps=1"), tmp_path)
    assert list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard installed")
def test_tensorboard_is_skipped_or_asked_for_when_missing(tmp_path):
    train(compose_config("steps=1", "eval_every=1"), tmp_path)
    assert not (tmp_path / "tensorboard").exists()
    with pytest.raises(ValueError, match="pip install tensorboard"):
        train(compose_config("steps=1", "logging.tensorboard=true"), tmp_path / "asked")


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb installed (needs a login)")
def test_wandb_asked_for_when_missing(tmp_path):
    with pytest.raises(ValueError, match="pip install wandb"):
        train(compose_config("steps=1", "logging.wandb=true"), tmp_path)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()
