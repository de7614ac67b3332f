"""Learning curves: the training loss, and validation accuracy of every task against steps and training time.

Training logs greedy-decoding accuracy per task (``val/acc/<task>``) every ``eval_every`` steps
and, through :mod:`minivlm.train.throughput`, the elapsed training time (``train/time``, seconds,
validation excluded) and the model FLOPs spent (``train/flops``). This module reads those CSV logs of one or more runs and answers the
question a user of a small budget asks: how many steps and seconds does each task need?
"Learned" means the step at which a task first closes half the gap between its chance level and
100 % (results/learning/README.md uses the same measure).

    python -m minivlm.evaluation.curves outputs/tiny-mrope-seed0 --out results/learning/default

writes ``curves.png`` (per run: the answer-token loss vs steps, in total and per task, accuracy vs
steps and vs seconds, chance dotted), ``curves.md`` and ``curves.csv`` (per run and task: final and
best accuracy, the training loss of the last ten logging intervals, steps, seconds and FLOPs to half the gap). A task's
loss (``train/loss/<task>``, the mean over a logging interval) falling while its accuracy sits at
chance is a task being learned; a flat one is a task the run does not learn.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from minivlm.run_folder import RunFolder

ACC_PREFIX = "val/acc/"
TIME_KEY = "train/time"
FLOPS_KEY = "train/flops"
LOSS_KEY = "train/loss"
TASK_LOSS_PREFIX = "train/loss/"
FINAL_LOSS_INTERVALS = 10  # the tables' "final loss" averages a task's last ten logged intervals (one is noisy)
LAUNCH_KEY = "launch"  # added by read_metrics: which launch of the run (logs/version_<n>) logged the row


@dataclass(frozen=True)
class Point:
    step: int
    seconds: float | None  # training time at this step; None when the run logged none before it
    accuracy: float
    flops: float | None = None  # model FLOPs spent by this step; None when the run logged none before it


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """Rows of every ``logs/version_*/metrics.csv`` of a run, launch after launch (resumes append)."""
    files = sorted(RunFolder(run_dir).logs.glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not files:
        raise ValueError(f"{run_dir} has no logs/version_*/metrics.csv; pass the folder of a training run")
    rows: list[dict[str, str]] = []
    for launch, path in enumerate(files):
        with path.open(newline="") as handle:
            rows.extend({**row, LAUNCH_KEY: str(launch)} for row in csv.DictReader(handle))
    return rows


def run_totals(rows: Sequence[dict[str, str]], key: str) -> list[tuple[int, float]]:
    """``(step, value)`` of a counter logged as a run total (``train/time``, ``train/flops``), across launches.

    Checkpoints carry the totals, so a resumed launch goes on counting. Runs trained before they did
    restarted them at every launch: such a launch is continued from the total the earlier launches
    had logged just before its first step (the step it resumed from, to within one logging interval).
    A resumed launch replays the steps after its checkpoint; its values replace the earlier ones.
    """
    totals: dict[int, float] = {}
    for launch in sorted({int(row[LAUNCH_KEY]) for row in rows}):
        logged = sorted((int(row["step"]), float(row[key])) for row in rows
                        if row[LAUNCH_KEY] == str(launch) and row.get(key))
        if not logged:
            continue
        first_step, first_value = logged[0]
        totals = {step: value for step, value in totals.items() if step < first_step}
        before = totals[max(totals)] if totals else 0.0
        offset = before if first_value < before else 0.0  # a restarted count: continue it
        totals.update((step, value + offset) for step, value in logged)
    return sorted(totals.items())


def task_curves(rows: Sequence[dict[str, str]]) -> dict[str, list[Point]]:
    """``{task: [Point, ...]}`` in step order; a resumed run's repeated steps keep the latest value.

    The time and FLOPs of a validation are the run's totals latest logged at or before its step.
    """
    curves: dict[str, dict[int, float]] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith(ACC_PREFIX) and value:
                curves.setdefault(key[len(ACC_PREFIX):], {})[int(row["step"])] = float(value)
    seconds_at, flops_at = total_at(run_totals(rows, TIME_KEY)), total_at(run_totals(rows, FLOPS_KEY))
    # Lightning logs validation at the step count of the last finished batch; +1 gives optimizer steps.
    return {task: [Point(step + 1, seconds_at(step), acc, flops_at(step)) for step, acc in sorted(points.items())]
            for task, points in curves.items()}


def total_at(totals: Sequence[tuple[int, float]]) -> Callable[[int], float | None]:
    """The lookup ``step -> the latest total logged at or before it`` (None before the first)."""
    steps = [step for step, _ in totals]

    def at(step: int) -> float | None:
        latest = bisect.bisect_right(steps, step) - 1
        return totals[latest][1] if latest >= 0 else None
    return at


def loss_curve(rows: Sequence[dict[str, str]], key: str = LOSS_KEY) -> list[tuple[int, float]]:
    """``(optimizer step, training loss)`` in step order; a resumed run's repeated steps keep the latest value."""
    # Lightning logs a step's loss under the index of its batch (step - 1).
    losses = {int(row["step"]) + 1: float(row[key]) for row in rows if row.get(key)}
    return sorted(losses.items())


def task_loss_curves(rows: Sequence[dict[str, str]]) -> dict[str, list[tuple[int, float]]]:
    """``{task: [(optimizer step, its interval's mean answer-token loss), ...]}`` (runs from before it was logged: {})."""
    tasks = sorted({key[len(TASK_LOSS_PREFIX):] for row in rows for key, value in row.items()
                    if key.startswith(TASK_LOSS_PREFIX) and value})
    return {task: loss_curve(rows, TASK_LOSS_PREFIX + task) for task in tasks}


def running_mean(points: Sequence[tuple[int, float]], half_width: int) -> list[tuple[int, float]]:
    """Each value replaced by the mean of the ``2 * half_width + 1`` around it (fewer at the ends):
    a loss logged every few steps is one noisy batch or interval, its trend is what a plot should show."""
    values = [value for _, value in points]
    return [(step, math.fsum(values[max(0, i - half_width):i + half_width + 1])
             / (min(len(values), i + half_width + 1) - max(0, i - half_width)))
            for i, (step, _) in enumerate(points)]


def first_halfway(points: Sequence[Point], chance: float) -> Point | None:
    """The first point whose accuracy closes half the gap between chance and 100 % (None: never)."""
    target = chance + (1.0 - chance) / 2
    return next((point for point in points if point.accuracy >= target), None)


def summary_rows(runs: dict[str, dict[str, list[Point]]], chance: dict[str, dict[str, float]],
                 task_losses: dict[str, dict[str, list[tuple[int, float]]]]) -> list[dict[str, object]]:
    """One row per (run, task); ``chance`` is ``{run: {task: chance}}`` (runs may differ in tasks' forms),
    ``task_losses`` each run's :func:`task_loss_curves`."""
    rows = []
    for run, curves in runs.items():
        for task, points in curves.items():
            reached = first_halfway(points, chance[run].get(task, 0.0))
            recent = [loss for _, loss in task_losses[run].get(task, [])[-FINAL_LOSS_INTERVALS:]]
            rows.append({
                "run": run, "task": task, "chance": chance[run].get(task, math.nan),
                "final": points[-1].accuracy, "best": max(p.accuracy for p in points),
                "final_loss": math.fsum(recent) / len(recent) if recent else None, "steps": points[-1].step,
                "halfway_step": reached.step if reached else None,
                "halfway_seconds": reached.seconds if reached else None,
                "halfway_flops": reached.flops if reached else None,
            })
    return rows


def markdown(rows: Sequence[dict[str, object]], command: str) -> str:
    def cell(value: object, digits: str = ".2f") -> str:
        if value is None:
            return "never"
        return format(value, digits) if isinstance(value, float) else str(value)

    lines = [
        "# Learning curves", "", f"Made by `{command}`. Validation accuracy (greedy decoding, exact match) of "
        "the run's `val` split; *final loss* is the task's mean answer-token training loss over the last "
        f"{FINAL_LOSS_INTERVALS} logging intervals (- where the run did not log it); *half gap* is the first validation at which a "
        "task closes half the gap between chance and 100 %.", "",
        "| run | task | chance | final | best | final loss | steps | half gap at step | half gap at seconds | "
        "half gap at FLOPs |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        loss = "-" if row["final_loss"] is None else f"{row['final_loss']:.3f}"
        lines.append(f"| {row['run']} | {row['task']} | {cell(row['chance'])} | {cell(row['final'])} | "
                     f"{cell(row['best'])} | {loss} | {row['steps']} | {cell(row['halfway_step'])} | "
                     f"{cell(row['halfway_seconds'], '.0f')} | {cell(row['halfway_flops'], '.2e')} |")
    return "\n".join(lines) + "\n"


def plot(runs: dict[str, dict[str, list[Point]]], losses: dict[str, list[tuple[int, float]]],
         task_losses: dict[str, dict[str, list[tuple[int, float]]]], chance: dict[str, dict[str, float]],
         path: Path) -> None:
    """One row per run: loss vs steps (total black, tasks coloured; running means over a 50th of the
    run), accuracy vs steps and vs training seconds, chance dotted; a task keeps its colour in every panel."""
    figure = Figure(figsize=(15, 3.4 * len(runs)), layout="constrained")
    axes = figure.subplots(len(runs), 3, squeeze=False)
    colours = colormaps["tab10"]
    for (run, curves), (loss, by_step, by_time) in zip(runs.items(), axes):
        tasks = sorted(set(curves) | set(task_losses[run]))
        for task, steps_losses in task_losses[run].items():
            smooth = running_mean(steps_losses, len(steps_losses) // 100)
            loss.plot([step for step, _ in smooth], [value for _, value in smooth],
                      color=colours(tasks.index(task) % 10), linewidth=0.8)
        smooth = running_mean(losses[run], len(losses[run]) // 100)
        loss.plot([step for step, _ in smooth], [value for _, value in smooth], color="black", linewidth=1.2)
        loss.set(title=f"{run}: training loss (black: all tasks)", xlabel="optimizer step",
                 ylabel="answer-token cross entropy")
        for task, points in sorted(curves.items()):
            colour = colours(tasks.index(task) % 10)
            by_step.plot([p.step for p in points], [p.accuracy for p in points], "o-", color=colour, label=task)
            timed = [p for p in points if p.seconds is not None]
            by_time.plot([p.seconds for p in timed], [p.accuracy for p in timed], "o-", color=colour)
            for axis in (by_step, by_time):
                axis.axhline(chance[run].get(task, 0.0), color=colour, linestyle=":", linewidth=1)
        by_step.set(title=f"{run}: accuracy", xlabel="optimizer step", ylabel="val accuracy", ylim=(0, 1.02))
        by_time.set(title=f"{run} (dotted: chance)", xlabel="training seconds", ylim=(0, 1.02))
        by_step.legend(fontsize=7, loc="upper left")
    figure.savefig(path, dpi=110)


def write_curves(run_dirs: Sequence[str | Path], out: str | Path, command: str) -> list[Path]:
    """Read the runs, write ``curves.{png,md,csv}`` under ``out``; returns the written paths."""
    metrics = {Path(run).name: read_metrics(Path(run)) for run in run_dirs}
    runs = {name: task_curves(rows) for name, rows in metrics.items()}
    chance = {Path(run).name: {task: scores["chance"] for task, scores in RunFolder(run).load_baselines()["val"].items()}
              for run in run_dirs}
    empty = [name for name, curves in runs.items() if not curves]
    if empty:
        raise ValueError(f"runs {empty} logged no validation accuracy yet (val/acc/<task>); let them reach eval_every")
    task_losses = {name: task_loss_curves(rows) for name, rows in metrics.items()}
    rows = summary_rows(runs, chance, task_losses)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curves.md").write_text(markdown(rows, command))
    with (out / "curves.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(runs, {name: loss_curve(rows) for name, rows in metrics.items()}, task_losses, chance, out / "curves.png")
    return [out / "curves.md", out / "curves.csv", out / "curves.png"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="training run folders (outputs/<name>)")
    parser.add_argument("--out", required=True, help="folder for curves.png, curves.md and curves.csv")
    parser.add_argument("--command", default=None, help="the training command to quote in curves.md")
    args = parser.parse_args(argv)
    command = args.command or "python -m minivlm.evaluation.curves " + " ".join(args.runs)
    for path in write_curves(args.runs, args.out, command):
        print(path)


if __name__ == "__main__":
    main()
