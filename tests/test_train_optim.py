"""Optimizer groups, the learning-rate schedule, and answer scoring."""

import math

import pytest
import torch
from torch import nn

from minivlm.scoring import TaskScores, format_report, normalise
from minivlm.train.optim import build_optimizer, parameter_groups, warmup_cosine


def test_no_decay_on_norms_biases_embeddings():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.Conv2d(1, 2, 3))
    decay, no_decay = parameter_groups(model, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(model[1].weight), id(model[3].weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(model[0].weight), id(model[1].bias), id(model[2].weight), id(model[2].bias), id(model[3].bias)}


def test_lr_scale_gives_a_part_its_own_multiple_of_the_lr_and_zero_freezes_it():
    model = nn.ModuleDict({"vision": nn.Linear(3, 3), "merger": nn.Linear(3, 3), "lm": nn.Linear(3, 3)})
    optimizer, scheduler = build_optimizer(model, lr=1e-2, weight_decay=0.1, betas=(0.9, 0.95), warmup_steps=0,
                                           total_steps=4, min_lr_ratio=1.0, lr_scale={"merger": 0.0, "lm": 0.5})
    lrs = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert [lrs[id(p)] for p in model.parameters()] == pytest.approx([1e-2, 1e-2, 0.0, 0.0, 5e-3, 5e-3])
    decays = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    assert [decays[id(p)] for p in model.parameters()] == [0.1, 0.0] * 3
    before = [p.detach().clone() for p in model.parameters()]
    model["vision"](torch.ones(3)).sum().add(model["merger"](torch.ones(3)).sum()).add(
        model["lm"](torch.ones(3)).sum()).backward()
    optimizer.step()
    moved = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
    assert moved == [True, True, False, False, True, True]  # the frozen merger neither learns nor decays


def test_lr_scale_naming_a_missing_part_is_a_value_error():
    with pytest.raises(ValueError, match=r"optim.lr_scale names \['ln'\], which the model does not have; its parts are"):
        parameter_groups(nn.ModuleDict({"lm": nn.Linear(2, 2)}), 0.0, {"ln": 0.1})


def test_warmup_then_cosine():
    values = [warmup_cosine(step, 10, 110, 0.1) for step in range(120)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0)
    assert values[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert values[110] == pytest.approx(0.1) and values[119] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_scheduler_drives_the_learning_rate():
    model = nn.Linear(2, 2)
    optimizer, scheduler = build_optimizer(model, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.95),
                                           warmup_steps=4, total_steps=8, min_lr_ratio=0.0)
    seen = []
    for _ in range(8):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert seen[4] == pytest.approx(1e-3) and seen[7] < 2e-4


def test_task_scores_count_and_reduce():
    scores = TaskScores()
    hits = scores.add(["a", "a", "b"], ["Red", "blue ", "B3."], ["red", "red", "b3"])
    assert hits == [True, False, True]
    assert scores.accuracy() == {"a": 0.5, "b": 1.0}
    summed = scores.as_tensor(["a", "b", "c"]) * 2  # two ranks with equal counts
    assert TaskScores.from_tensor(["a", "b", "c"], summed).accuracy() == {"a": 0.5, "b": 1.0}
    assert normalise("  Yes. ") == "yes"


def test_report_shows_gap_closed():
    text = format_report({"grounding": 0.55}, {"grounding": {"chance": 1 / 9, "blind": 0.2}}, "title")
    row = text.splitlines()[2].split()
    assert row[0] == "grounding" and float(row[1]) == 0.55 and float(row[4]) == pytest.approx(0.49, abs=0.01)
