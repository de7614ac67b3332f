"""Accuracy at kept checkpoints: the table's errors and half-gap step, scores equal to evaluate.py's, kept and
not recomputed, FLOPs from the run's log, and a run without kept checkpoints a clear error."""

from __future__ import annotations

import csv
import json

import pytest
from train_helpers import compose_config, logged, single_thread  # noqa: F401 (autouse fixture)

from minivlm.evaluation import checkpoint_curves
from minivlm.evaluation.checkpoint_curves import checkpoint_points, standard_error, write_checkpoint_curves, write_tables
from minivlm.evaluation.evaluate import Settings, evaluate_path
from minivlm.train.run import train


def test_the_table_gives_binomial_errors_flops_and_the_first_checkpoint_past_half_the_gap(tmp_path):
    accuracy = {500: {"count": 0.3, "grounding": 0.5}, 1000: {"count": 0.4, "grounding": 0.6}}
    points = checkpoint_points(accuracy, lambda step: step * 1e9)
    assert [(p.step, p.accuracy, p.flops) for p in points["grounding"]] == [(500, 0.5, 5e11), (1000, 0.6, 1e12)]
    by_objects = {500: {"count": {"3": [30, 100]}, "grounding": {"1": [40, 40], "2": [10, 60]}},
                  1000: {"count": {"3": [40, 100]}, "grounding": {"1": [40, 40], "2": [20, 60]}}}
    write_tables(points, by_objects, {"count": 0.25, "grounding": 0.1}, 100, tmp_path, "the command")
    table = (tmp_path / "checkpoints.md").read_text()
    assert standard_error(0.6, 100) == pytest.approx(0.049, abs=5e-4)
    assert "| 1000 | 1.00e+12 | 0.400 ± 0.049 | 0.600 ± 0.049 |" in table
    # grounding's half gap is 0.55 (reached at 1000); count's 0.625 (not reached).
    assert "| half gap at step | | not yet | 1000 |" in table
    rows = list(csv.DictReader((tmp_path / "checkpoints.csv").open()))
    assert len(rows) == 4 and rows[0]["task"] == "count" and float(rows[0]["chance"]) == 0.25
    # count's scenes all hold three objects: nothing to split; grounding's one- and two-object scenes apart.
    assert "| step | grounding, 1 object | grounding, 2 objects |" in table
    assert "| 1000 | 1.00 ± 0.00 (40) | 0.33 ± 0.06 (60) |" in table
    split = list(csv.DictReader((tmp_path / "by_objects.csv").open()))
    assert [(r["step"], r["objects"], float(r["accuracy"])) for r in split] == [
        ("500", "1", 1.0), ("500", "2", 1 / 6), ("1000", "1", 1.0), ("1000", "2", 1 / 3)]


def test_a_run_without_kept_checkpoints_is_a_clear_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ValueError, match="keep_every"):
        write_checkpoint_curves(tmp_path, 8, tmp_path / "out", "x")


@pytest.mark.slow
def test_kept_checkpoints_are_scored_as_evaluate_scores_them_once(tmp_path, monkeypatch):
    run = tmp_path / "run"
    train(compose_config("steps=2", "eval_every=2", "keep_every=1", "trainer.log_every_n_steps=1"), run)
    out = tmp_path / "out"
    paths = write_checkpoint_curves(run, 4, out, "the command")
    assert [path.name for path in paths] == ["checkpoints.md", "checkpoints.csv", "checkpoints.png"]
    scores = {step: json.loads((out / "scores" / f"step-{step}.json").read_text()) for step in (1, 2)}
    evaluated = evaluate_path(run / "checkpoints" / "step-2.ckpt", Settings(splits=("val",), per_task=4))[0]
    assert scores[2]["accuracy"] == {task: s["exact"] for task, s in evaluated["scores"]["val"].items()}
    split = scores[2]["by_objects"]["grounding"]  # the recipe's scenes: 1 to 3 objects
    assert set(split) <= {"1", "2", "3"} and sum(n for _, n in split.values()) == 4
    assert sum(hits for hits, _ in split.values()) == round(4 * scores[2]["accuracy"]["grounding"])
    flops = {int(row["step"]): float(row["flops"]) for row in csv.DictReader((out / "checkpoints.csv").open())}
    assert flops == {step + 1: value for step, value in logged(run, "train/flops").items()}  # logged per batch index

    def fail(*args):
        raise AssertionError("a kept checkpoint was scored twice")

    monkeypatch.setattr(checkpoint_curves, "score_checkpoint", fail)
    write_checkpoint_curves(run, 4, out, "the command")  # nothing new: every score read back
    with pytest.raises(AssertionError, match="scored twice"):
        write_checkpoint_curves(run, 8, out, "the command")  # another prompt count scores again
