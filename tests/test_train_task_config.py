"""``data.task`` and ``data.curriculum``: what a run trains on, step by step, is evaluated on and is compared with."""

from __future__ import annotations

import itertools
import json
from dataclasses import fields
from functools import partial

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException
from train_helpers import compose_config, single_thread  # noqa: F401 (autouse fixture)

from minivlm.data.storage import load_baselines, synthetic_set
from minivlm.data.tasks import TaskConfig, split_config
from minivlm.data.tasks.scene import cell_names
from minivlm.train.datamodule import GeneratedSet, TrainBatches, first_per_task
from minivlm.train.run import build_run, train

EASY = "data.task={grid: 2, objects: [1, 2]}"


def test_generated_set_of_the_default_distribution_is_the_shipped_set():
    shipped = synthetic_set("val", tasks=["grounding", "order"])
    rows = [shipped[i] for i in first_per_task(shipped.table["task"], 3)]
    generated = GeneratedSet(["grounding", "order"], 3, "val", split_config("val"), transform=lambda s: s)
    assert [g["id"] for g in generated] == [r["id"] for r in rows]
    assert [g["answer"] for g in generated] == [r["answer"] for r in rows]
    assert [g["messages"] for g in generated] == [r["messages"] for r in rows]
    assert np.array_equal(np.asarray(generated[0]["images"][0]), np.asarray(rows[0]["images"][0]))


def test_overrides_reach_training_evaluation_and_baselines(tmp_path):
    run = build_run(compose_config(EASY, "data.mix={grounding: 1, count: 1}"), tmp_path)
    data = run.datamodule
    scenes = [data.stream.sample(i)["meta"]["scene"] for i in range(8)]
    assert all(scene["grid"] == 2 and 1 <= len(scene["objects"]) <= 2 for scene in scenes)
    batch = next(iter(data.eval_dataloader("val", per_task=4)))
    grounding = [answer for task, answer in zip(batch["tasks"], batch["answers"]) if task == "grounding"]
    assert len(grounding) == 4 and set(grounding) <= set(cell_names(2))
    assert data.baselines("val")["grounding"]["chance"] == 0.25  # one of 4 cells, not 9
    assert data.baselines("val")["count"] != load_baselines()["splits"]["val"]["count"]
    # extrapolate keeps its own larger images and longer videos, and takes the rest of data.task
    assert data.task_config("extrapolate") == split_config("extrapolate", grid=2, objects=(1, 2))
    assert data.distribution("val") == data.task_config("val")


def test_no_overrides_evaluate_on_the_shipped_sets(tmp_path):
    data = build_run(compose_config("data.task=null", "data.curriculum=[]"), tmp_path).datamodule
    assert data.task_config("val") is None and data.stream.config is None
    assert data.distribution("val") == split_config("val")  # what the shipped sets were drawn from
    assert data.baselines("val") == {task: load_baselines()["splits"]["val"][task] for task in data.val_tasks}
    assert isinstance(data.eval_dataloader("val", 1).dataset.dataset.transform, partial)


@pytest.mark.parametrize("override, message", [
    ("data.task={objects: [0, 2]}", r"TaskConfig.objects=\(0, 2\)"),
    ("data.task={grid: 2, objects: [1, 4]}", "at most grid\\*grid - 1 = 3 objects"),
    ("data.task={question_first: true, question_twice: true}", "question_first and question_twice are both true"),
])
def test_bad_overrides_fail_before_training(override, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        build_run(compose_config(override), tmp_path)


def test_the_default_run_follows_the_recipe(tmp_path):
    cfg = compose_config()
    assert list(cfg.data.task) == [field.name for field in fields(TaskConfig)]  # mix.yaml lists every field
    data = build_run(cfg, tmp_path).datamodule
    assert data.task_config("val") == split_config("val", objects=(1, 3))
    stream_at = data.curriculum.stream_at
    assert [stream_at(step).config.objects for step in (0, 149, 150, 299, 300)] == [(1, 1), (1, 1), (1, 2), (1, 2), (1, 3)]
    assert list(stream_at(0).probabilities) == ["grounding"] and stream_at(300) is data.stream


def test_an_unknown_task_field_fails_when_the_config_is_composed():
    with pytest.raises(ConfigCompositionException, match="Could not override 'data.task'"):
        compose_config("data.task={grids: 2}")  # configs/data/mix.yaml lists every TaskConfig field


@pytest.mark.slow
def test_a_run_saves_and_reports_its_own_baselines(tmp_path, capsys):
    train(compose_config(EASY, "data.mix={grounding: 1}", "steps=1", "eval_every=1"), tmp_path)
    saved = json.loads((tmp_path / "checkpoints" / "baselines.json").read_text())
    assert saved["val"]["grounding"]["chance"] == 0.25 and saved["extrapolate"]["grounding"]["chance"] == 0.25
    assert "0.25" in capsys.readouterr().out  # the final table's chance column


CURRICULUM = "data.curriculum=[{steps: 2, task: {objects: [1, 1]}}, {steps: 1, task: {objects: [2, 2]}, mix: {count: 1}}]"


def test_curriculum_stages_follow_the_optimizer_step_and_resume_inside_a_stage(tmp_path):
    cfg = compose_config(CURRICULUM, "data.mix={grounding: 1}", "data.task={objects: [3, 3]}", "optim.accumulate=2")
    data = build_run(cfg, tmp_path).datamodule
    stream_at = data.curriculum.stream_at
    assert [stream_at(step).config.objects for step in range(5)] == [(1, 1), (1, 1), (2, 2), (3, 3), (3, 3)]
    assert list(stream_at(2).probabilities) == ["count"] and stream_at(3) is data.stream
    batches = TrainBatches(data.curriculum, data.processor, data.train_collator, 2, accumulate=2)
    uninterrupted = list(itertools.islice(iter(batches), 8))  # micro-batches of optimizer steps 0, 0, 1, 1, 2, ...
    for index, batch in enumerate(uninterrupted):
        stream = stream_at(index // 2)
        samples = [stream.sample(position) for position in (2 * index, 2 * index + 1)]
        assert {len(s["meta"]["scene"]["objects"]) for s in samples} == {stream.config.objects[0]}
        expected = data.train_collator([data.processor(sample) for sample in samples])
        assert torch.equal(batch["pixel_values"], expected["pixel_values"]) and batch["tasks"] == expected["tasks"]
    assert all(task == "count" for b in uninterrupted[4:6] for task in b["tasks"])
    resumed = TrainBatches(data.curriculum, data.processor, data.train_collator, 2, start_batch=3, accumulate=2)
    for expected, got in zip(uninterrupted[3:], itertools.islice(iter(resumed), 5)):
        assert torch.equal(expected["input_ids"], got["input_ids"])
        assert torch.equal(expected["pixel_values"], got["pixel_values"])


@pytest.mark.parametrize("override, message", [
    ("data.curriculum=[{task: {objects: [1, 1]}}]", r"data.curriculum\[0\].*a stage is \{steps: N > 0"),
    ("data.curriculum=[{steps: 5, task: {object: [1, 1]}}]", r"data.curriculum\[0\].task has unknown field"),
    ("data.curriculum=[{steps: 5, tasks: {objects: [1, 1]}}]", r"data.curriculum\[0\]"),
    ("data.curriculum=[{steps: 5, mix: {grounding: 0}}]", "every weight must be > 0"),
])
def test_bad_curriculum_fails_before_training(override, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        build_run(compose_config(override), tmp_path)
