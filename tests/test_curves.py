"""Learning curves from training logs: steps, times, half-gap detection, resumed runs, files."""

import csv
import json

import pytest

from minivlm.data.storage import load_baselines
from minivlm.evaluation.curves import (
    LAUNCH_KEY,
    Point,
    first_halfway,
    loss_curve,
    read_metrics,
    run_totals,
    running_mean,
    task_curves,
    task_loss_curves,
    write_curves,
)


def write_log(run, version, rows):
    folder = run / "logs" / f"version_{version}"
    folder.mkdir(parents=True)
    fields = ["step", "train/time", "train/flops", "train/loss", "train/loss/count", "train/loss/grounding", "val/acc",
              "val/acc/grounding", "val/acc/count"]
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "tiny-mrope-seed0"
    write_log(run, 0, [
        {"step": 9, "train/time": 5.0, "train/loss": 3.5},
        {"step": 19, "train/time": 11.0, "train/flops": 2e9, "train/loss": 2.5},
        {"step": 19, "val/acc/grounding": 0.125, "val/acc/count": 0.25},
        {"step": 29, "train/time": 17.0, "train/loss": 2.4},  # repeated by the resumed launch below
    ])
    # A resumed launch repeats step 39's validation: the later value wins.
    write_log(run, 1, [
        {"step": 29, "train/loss": 2.25, "train/loss/count": 2.5},  # an interval without grounding
        {"step": 39, "train/time": 23.0, "train/flops": 4e9, "train/loss": 2.0, "train/loss/count": 1.5,
         "train/loss/grounding": 2.75},
        {"step": 39, "val/acc/grounding": 0.5, "val/acc/count": 0.75},
    ])
    write_log(run, 2, [{"step": 39, "val/acc/grounding": 0.53125, "val/acc/count": 0.75}])
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "baselines.json").write_text(json.dumps(load_baselines()["splits"]))  # as training saves it
    return run


def test_curves_join_validation_with_training_time_and_count_optimizer_steps(run):
    curves = task_curves(read_metrics(run))
    assert curves["grounding"] == [Point(20, 11.0, 0.125, 2e9), Point(40, 23.0, 0.53125, 4e9)]
    assert curves["count"] == [Point(20, 11.0, 0.25, 2e9), Point(40, 23.0, 0.75, 4e9)]


def test_totals_restarted_by_an_old_resume_continue_from_the_step_it_resumed_at():
    def rows(launch, *points):
        return [{"step": str(step), "train/time": str(value), LAUNCH_KEY: str(launch)} for step, value in points]

    # Launch 0 logged to step 29 and was resumed from its step-20 checkpoint by launch 1, whose count
    # restarted (as runs did before checkpoints kept the totals); launch 2 kept counting.
    logs = rows(0, (9, 5.0), (19, 11.0), (29, 17.0)) + rows(1, (29, 6.0), (39, 12.0)) + rows(2, (49, 30.0))
    assert run_totals(logs, "train/time") == [(9, 5.0), (19, 11.0), (29, 17.0), (39, 23.0), (49, 30.0)]


def test_the_loss_curve_counts_optimizer_steps_and_keeps_a_resumed_runs_values(run):
    assert loss_curve(read_metrics(run)) == [(10, 3.5), (20, 2.5), (30, 2.25), (40, 2.0)]


def test_task_losses_are_read_per_task_where_logged(run):
    assert task_loss_curves(read_metrics(run)) == {"count": [(30, 2.5), (40, 1.5)], "grounding": [(40, 2.75)]}


def test_running_mean_averages_the_neighbours_within_reach_and_keeps_the_steps():
    points = [(10, 1.0), (20, 3.0), (30, 5.0), (40, 13.0)]
    assert running_mean(points, 1) == [(10, 2.0), (20, 3.0), (30, 7.0), (40, 9.0)]
    assert running_mean(points, 0) == points


def test_half_gap_is_the_first_point_past_the_midpoint_between_chance_and_one():
    points = [Point(10, 1.0, 0.3), Point(20, 2.0, 0.55), Point(30, 3.0, 0.9)]
    assert first_halfway(points, chance=0.1) == Point(20, 2.0, 0.55)  # target 0.55
    assert first_halfway(points, chance=0.5) == Point(30, 3.0, 0.9)  # target 0.75
    assert first_halfway(points[:2], chance=0.5) is None


def test_write_curves_tables_and_figure(run, tmp_path):
    paths = write_curves([run], tmp_path / "out", command="python train.py")
    assert [p.name for p in paths] == ["curves.md", "curves.csv", "curves.png"]
    rows = {row["task"]: row for row in csv.DictReader((tmp_path / "out" / "curves.csv").open())}
    # grounding chance (1/9) -> half gap 0.556: never reached; count chance ~0.21 -> 0.60: reached at step 40.
    assert rows["grounding"]["halfway_step"] == "" and float(rows["grounding"]["final"]) == 0.53125
    assert rows["count"]["halfway_step"] == "40" and float(rows["count"]["halfway_seconds"]) == 23.0
    assert float(rows["count"]["halfway_flops"]) == 4e9
    assert float(rows["count"]["final_loss"]) == 2.0 and float(rows["grounding"]["final_loss"]) == 2.75  # last ten
    assert "| tiny-mrope-seed0 | count | 0.21 | 0.75 | 0.75 | 2.000 | 40 | 40 |" in (tmp_path / "out" / "curves.md").read_text()
    assert (tmp_path / "out" / "curves.png").stat().st_size > 10_000


def test_runs_without_logs_are_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="metrics.csv"):
        write_curves([tmp_path], tmp_path / "out", command="x")
