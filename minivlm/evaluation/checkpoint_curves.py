"""Accuracy over training read from a run's kept checkpoints, on enough prompts to time "half the gap".

Training validates on a few prompts per task (32 in the recipe: one score's standard error is
about 0.08), so one lucky validation can look like a task closing half the gap between chance and
100 %. A run trained with ``keep_every`` keeps ``checkpoints/step-<N>.ckpt``; this module scores
each on the first ``--per-task`` prompts per task of the run's ``val`` split, with evaluate.py's
decoding and judgement (:func:`minivlm.evaluation.evaluate.answer_target`), and writes under
``--out``:

- ``scores/step-<N>.json``: one checkpoint's exact-match accuracy per task. A later call scores
  only the checkpoints added since (a run still training), or all again at another ``--per-task``;
- ``checkpoints.md`` and ``checkpoints.csv``: per task and checkpoint, accuracy with its binomial
  standard error, the training FLOPs spent by that step (the run's logged ``train/flops``,
  :mod:`minivlm.evaluation.curves`), and the first checkpoint that closes half the gap;
- ``checkpoints.png``: accuracy against steps and against FLOPs, chance dotted.

    python -m minivlm.evaluation.checkpoint_curves outputs/tiny-images-long --per-task 200 --out results/learning/long/tiny-images
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from minivlm.evaluation.curves import FLOPS_KEY, Point, first_halfway, read_metrics, run_totals, total_at
from minivlm.evaluation.evaluate import Settings, answer_target, load_config, summarise_split
from minivlm.evaluation.targets import resolve_target
from minivlm.run_folder import RunFolder, write_atomically


def score_checkpoint(checkpoint: Path, per_task: int) -> dict[str, float]:
    """``{task: exact-match accuracy}`` of one checkpoint on its run's ``val`` prompts."""
    target = resolve_target(checkpoint)
    settings = Settings(splits=("val",), per_task=per_task, num_workers=0)
    answers, _ = answer_target(target, settings, load_config(target, settings), per_task)
    return {task: scores["exact"] for task, scores in summarise_split(answers["val"]).items()}


def score_kept_checkpoints(run_dir: Path, per_task: int, out: Path) -> dict[int, dict[str, float]]:
    """``{step: {task: accuracy}}`` of every kept checkpoint, scoring those ``out/scores`` lacks at ``per_task``.

    Raises:
        ValueError: the run kept no ``step-<N>.ckpt`` (train it with ``keep_every``).
    """
    kept = RunFolder(run_dir).kept_checkpoints()
    if not kept:
        raise ValueError(f"{run_dir} kept no checkpoints/step-<N>.ckpt; train it with keep_every=<steps> "
                         "(and ckpt_path=last to go on from where it stopped)")
    folder = out / "scores"
    folder.mkdir(parents=True, exist_ok=True)
    accuracy = {}
    for step, checkpoint in kept.items():
        path = folder / f"step-{step}.json"
        stored = json.loads(path.read_text()) if path.is_file() else None
        if stored is None or stored["per_task"] != per_task:
            stored = {"step": step, "per_task": per_task, "accuracy": score_checkpoint(checkpoint, per_task)}
            write_atomically(path, json.dumps(stored, indent=2))
            print(f"step {step}: " + ", ".join(f"{task} {value:.3f}" for task, value in stored["accuracy"].items()))
        accuracy[step] = stored["accuracy"]
    return accuracy


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on ``n`` prompts."""
    return math.sqrt(accuracy * (1 - accuracy) / n)


def checkpoint_points(accuracy: dict[int, dict[str, float]],
                      flops_at: Callable[[int], float | None]) -> dict[str, list[Point]]:
    """``{task: [Point, ...]}`` in step order (no training seconds: checkpoints do not carry them)."""
    tasks = sorted({task for scores in accuracy.values() for task in scores})
    return {task: [Point(step, None, scores[task], flops_at(step)) for step, scores in accuracy.items() if task in scores]
            for task in tasks}


def write_tables(points: dict[str, list[Point]], chance: dict[str, float], per_task: int, out: Path,
                 command: str) -> None:
    rows = [{"task": task, "step": p.step, "flops": p.flops, "accuracy": p.accuracy,
             "standard_error": standard_error(p.accuracy, per_task), "chance": chance[task]}
            for task, series in points.items() for p in series]
    with (out / "checkpoints.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tasks = list(points)
    steps = sorted({p.step for series in points.values() for p in series})
    by_step = {task: {p.step: p for p in series} for task, series in points.items()}
    flops = {p.step: p.flops for series in points.values() for p in series}

    def accuracy_cell(task: str, step: int) -> str:
        point = by_step[task].get(step)
        return "" if point is None else f"{point.accuracy:.3f} ± {standard_error(point.accuracy, per_task):.3f}"

    halfway = {task: first_halfway(points[task], chance[task]) for task in tasks}
    lines = [
        "# Accuracy at the kept checkpoints", "",
        f"Made by `{command}`. Exact match on the first {per_task} `val` prompts per task, ± one binomial "
        "standard error; FLOPs are the training FLOPs spent by that step; *half gap* is the first checkpoint "
        "at which a task closes half the gap between chance and 100 %.", "",
        "| step | training FLOPs | " + " | ".join(f"{task} (chance {chance[task]:.2f})" for task in tasks) + " |",
        "|---|---|" + "---|" * len(tasks),
    ]
    for step in steps:
        flops_cell = "" if flops[step] is None else f"{flops[step]:.2e}"
        lines.append(f"| {step} | {flops_cell} | " + " | ".join(accuracy_cell(task, step) for task in tasks) + " |")
    lines.append("| half gap at step | | " + " | ".join(
        "not yet" if halfway[task] is None else str(halfway[task].step) for task in tasks) + " |")
    (out / "checkpoints.md").write_text("\n".join(lines) + "\n")


def plot(points: dict[str, list[Point]], chance: dict[str, float], per_task: int, title: str, path: Path) -> None:
    figure = Figure(figsize=(11, 3.6), layout="constrained")
    by_step, by_flops = figure.subplots(1, 2)
    colours = colormaps["tab10"]
    for index, (task, series) in enumerate(points.items()):
        colour = colours(index % 10)
        errors = [standard_error(p.accuracy, per_task) for p in series]
        by_step.errorbar([p.step for p in series], [p.accuracy for p in series], yerr=errors,
                         fmt="o-", color=colour, capsize=2, label=task)
        flopped = [(p.flops, p.accuracy, e) for p, e in zip(series, errors) if p.flops is not None]
        if flopped:
            x, y, e = zip(*flopped)
            by_flops.errorbar(x, y, yerr=e, fmt="o-", color=colour, capsize=2)
        for axis in (by_step, by_flops):
            axis.axhline(chance[task], color=colour, linestyle=":", linewidth=1)
    by_step.set(title=f"{title}: {per_task} val prompts per task", xlabel="optimizer step", ylabel="exact match",
                ylim=(0, 1.02))
    by_flops.set(title="(dotted: chance)", xlabel="training FLOPs", ylim=(0, 1.02))
    by_step.legend(fontsize=7, loc="upper left")
    figure.savefig(path, dpi=110)


def write_checkpoint_curves(run_dir: str | Path, per_task: int, out: str | Path, command: str) -> list[Path]:
    """Score the run's kept checkpoints (those not yet scored), write the tables and figure; returns their paths."""
    run_dir, out = Path(run_dir), Path(out)
    accuracy = score_kept_checkpoints(run_dir, per_task, out)
    flops_at = total_at(run_totals(read_metrics(run_dir), FLOPS_KEY))
    # Lightning logs a step's totals under its batch index (step - 1).
    points = checkpoint_points(accuracy, lambda step: flops_at(step - 1))
    chance = {task: scores["chance"] for task, scores in RunFolder(run_dir).load_baselines()["val"].items()}
    write_tables(points, chance, per_task, out, command)
    plot(points, chance, per_task, run_dir.name, out / "checkpoints.png")
    return [out / "checkpoints.md", out / "checkpoints.csv", out / "checkpoints.png"]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a training run folder trained with keep_every (outputs/<name>)")
    parser.add_argument("--per-task", type=int, default=200, help="val prompts per task and checkpoint")
    parser.add_argument("--out", required=True, help="folder for scores/, checkpoints.md, .csv and .png")
    args = parser.parse_args(argv)
    if args.per_task < 1:
        parser.error(f"--per-task must be >= 1, got {args.per_task}")
    command = f"python -m minivlm.evaluation.checkpoint_curves {args.run} --per-task {args.per_task} --out {args.out}"
    try:
        for path in write_checkpoint_curves(args.run, args.per_task, args.out, command):
            print(path)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
