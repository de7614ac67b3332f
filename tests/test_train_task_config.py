"""``data.task``: TaskConfig overrides change what a run trains on, is evaluated on and is compared with."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
from train_helpers import compose_config, single_thread  # noqa: F401 (autouse fixture)

from minivlm.data.storage import load_baselines, synthetic_set
from minivlm.data.tasks import split_config
from minivlm.data.tasks.scene import cell_names
from minivlm.train.datamodule import GeneratedSet, first_per_task
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


def test_no_overrides_evaluate_on_the_shipped_sets(tmp_path):
    data = build_run(compose_config(), tmp_path).datamodule
    assert data.task_config("val") is None and data.stream.config is None
    assert data.baselines("val") == {task: load_baselines()["splits"]["val"][task] for task in data.val_tasks}
    assert isinstance(data.eval_dataloader("val", 1).dataset.dataset.transform, partial)


@pytest.mark.parametrize("override, message", [
    ("data.task={grids: 2}", r"unknown field\(s\) \['grids'\]"),
    ("data.task={objects: [0, 2]}", r"TaskConfig.objects=\(0, 2\)"),
    ("data.task={grid: 2, objects: [1, 4]}", "at most grid\\*grid - 1 = 3 objects"),
])
def test_bad_overrides_fail_before_training(override, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        build_run(compose_config(override), tmp_path)


def test_a_run_saves_and_reports_its_own_baselines(tmp_path, capsys):
    train(compose_config(EASY, "data.mix={grounding: 1}", "steps=1", "eval_every=1"), tmp_path)
    saved = json.loads((tmp_path / "checkpoints" / "baselines.json").read_text())
    assert saved["val"]["grounding"]["chance"] == 0.25 and saved["extrapolate"]["grounding"]["chance"] == 0.25
    assert "0.25" in capsys.readouterr().out  # the final table's chance column
