"""Accuracy over training read from a run's kept checkpoints, on enough prompts to time "half the gap".

Training validates on a few prompts per task (32 in the recipe: one score's standard error is
about 0.08), so one lucky validation can look like a task closing half the gap between chance and
100 %. A run trained with ``keep_every`` keeps ``checkpoints/step-<N>.ckpt``; this module scores
each on the first ``--per-task`` prompts per task of the run's ``val`` split, with evaluate.py's
decoding and judgement (:func:`minivlm.evaluation.evaluate.answer_target`), and writes under
``--out``:

- ``scores/step-<N>.json``: one checkpoint's exact-match accuracy per task, and per task and number
  of objects in the scene (image tasks). A later call scores only the checkpoints added since (a
  run still training), or all again at another ``--per-task``;
- ``checkpoints.md`` and ``checkpoints.csv``: per task and checkpoint, accuracy with its binomial
  standard error, the training FLOPs spent by that step (the run's logged ``train/flops``,
  :mod:`minivlm.evaluation.curves`), and the first checkpoint that closes half the gap;
  ``checkpoints.md`` also splits every task whose scenes hold different numbers of objects by that
  number (``by_objects.csv``): a model that finds *an* object but not the one asked about answers
  one-object scenes and fails the others, which the mean hides;
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
from minivlm.evaluation.evaluate import (
    JudgedAnswer,
    Settings,
    answer_target,
    load_config,
    sample_metadata,
    summarise_split,
)
from minivlm.evaluation.targets import resolve_target
from minivlm.run_folder import RunFolder, write_atomically
from minivlm.train.run import build_run


def score_checkpoint(checkpoint: Path, per_task: int) -> dict[str, dict]:
    """One checkpoint on its run's ``val`` prompts: ``{"accuracy": {task: exact match}, "by_objects":
    {task: {objects: [hits, prompts]}}}`` (``by_objects``: the tasks whose scenes hold objects)."""
    target = resolve_target(checkpoint)
    settings = Settings(splits=("val",), per_task=per_task, num_workers=0)
    cfg = load_config(target, settings)
    answers = answer_target(target, settings, cfg, per_task)[0]["val"]
    metadata = sample_metadata(build_run(cfg, target.folder.root), "val", [a.id for a in answers])
    return {"accuracy": {task: scores["exact"] for task, scores in summarise_split(answers).items()},
            "by_objects": objects_breakdown(answers, metadata)}


def objects_breakdown(answers: Sequence[JudgedAnswer], metadata: dict[str, dict]) -> dict[str, dict[str, list[int]]]:
    """``{task: {objects: [exact hits, prompts]}}`` over the answers whose scene lists its objects
    (keys are strings, as JSON keeps them)."""
    counts: dict[str, dict[str, list[int]]] = {}
    for answer in answers:
        objects = metadata[answer.id]["scene"].get("objects")
        if objects is None:  # a video task: frames, not objects
            continue
        tally = counts.setdefault(answer.task, {}).setdefault(str(len(objects)), [0, 0])
        tally[0] += int(answer.scores["exact"])
        tally[1] += 1
    return {task: dict(sorted(by.items(), key=lambda item: int(item[0]))) for task, by in sorted(counts.items())}


def score_kept_checkpoints(run_dir: Path, per_task: int, out: Path) -> dict[int, dict[str, dict]]:
    """``{step: score_checkpoint's scores}`` of every kept checkpoint, scoring those ``out/scores`` lacks
    at ``per_task``.

    Raises:
        ValueError: the run kept no ``step-<N>.ckpt`` (train it with ``keep_every``).
    """
    kept = RunFolder(run_dir).kept_checkpoints()
    if not kept:
        raise ValueError(f"{run_dir} kept no checkpoints/step-<N>.ckpt; train it with keep_every=<steps> "
                         "(and ckpt_path=last to go on from where it stopped)")
    folder = out / "scores"
    folder.mkdir(parents=True, exist_ok=True)
    scores = {}
    for step, checkpoint in kept.items():
        path = folder / f"step-{step}.json"
        stored = json.loads(path.read_text()) if path.is_file() else None
        if stored is None or stored["per_task"] != per_task or "by_objects" not in stored:  # (scored before the split)
            stored = {"step": step, "per_task": per_task, **score_checkpoint(checkpoint, per_task)}
            write_atomically(path, json.dumps(stored, indent=2))
            print(f"step {step}: " + ", ".join(f"{task} {value:.3f}" for task, value in stored["accuracy"].items()))
        scores[step] = {key: stored[key] for key in ("accuracy", "by_objects")}
    return scores


def standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error of an accuracy measured on ``n`` prompts."""
    return math.sqrt(accuracy * (1 - accuracy) / n)


def checkpoint_points(accuracy: dict[int, dict[str, float]],
                      flops_at: Callable[[int], float | None]) -> dict[str, list[Point]]:
    """``{task: [Point, ...]}`` in step order (no training seconds: checkpoints do not carry them)."""
    tasks = sorted({task for scores in accuracy.values() for task in scores})
    return {task: [Point(step, None, scores[task], flops_at(step)) for step, scores in accuracy.items() if task in scores]
            for task in tasks}


def write_tables(points: dict[str, list[Point]], by_objects: dict[int, dict[str, dict[str, list[int]]]],
                 chance: dict[str, float], per_task: int, out: Path, command: str) -> None:
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
    (out / "checkpoints.md").write_text("\n".join(lines + objects_table(by_objects, out)) + "\n")


def objects_table(by_objects: dict[int, dict[str, dict[str, list[int]]]], out: Path) -> list[str]:
    """Markdown lines splitting each task whose scenes hold different numbers of objects by that number
    (``{step: {task: {objects: [hits, prompts]}}}``); the same rows go to ``out/by_objects.csv``."""
    columns = sorted({(task, int(k)) for scores in by_objects.values() for task, by in scores.items()
                      for k in by if len(by) > 1})
    if not columns:
        return []
    rows = []
    for step, scores in sorted(by_objects.items()):
        for task, k in columns:
            if (tally := scores.get(task, {}).get(str(k))) is not None:
                rows.append({"task": task, "objects": k, "step": step, "accuracy": tally[0] / tally[1],
                             "prompts": tally[1]})
    with (out / "by_objects.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    cells = {(row["step"], row["task"], row["objects"]): row for row in rows}

    def cell(step: int, task: str, k: int) -> str:
        row = cells.get((step, task, k))
        if row is None:
            return ""
        return f"{row['accuracy']:.2f} ± {standard_error(row['accuracy'], row['prompts']):.2f} ({row['prompts']})"

    return ["", "## By the number of objects in the scene", "",
            "The same answers, split by how many objects the prompt's scene holds: accuracy ± one binomial "
            "standard error (prompts).", "",
            "| step | " + " | ".join(f"{task}, {k} object{'s' * (k > 1)}" for task, k in columns) + " |",
            "|---|" + "---|" * len(columns),
            *(f"| {step} | " + " | ".join(cell(step, task, k) for task, k in columns) + " |"
              for step in sorted(by_objects))]


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
    scores = score_kept_checkpoints(run_dir, per_task, out)
    flops_at = total_at(run_totals(read_metrics(run_dir), FLOPS_KEY))
    # Lightning logs a step's totals under its batch index (step - 1).
    points = checkpoint_points({step: s["accuracy"] for step, s in scores.items()}, lambda step: flops_at(step - 1))
    chance = {task: baseline["chance"] for task, baseline in RunFolder(run_dir).load_baselines()["val"].items()}
    write_tables(points, {step: s["by_objects"] for step, s in scores.items()}, chance, per_task, out, command)
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
