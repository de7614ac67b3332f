"""Ablation tables: every run of a sweep, grouped by its rope and ViT RoPE, mean ± std over seeds.

    python -m minivlm.evaluation.aggregate outputs/ablation_frequency --out results/ablation_frequency

A run's scores come from its ``evaluation.json`` (``python evaluate.py``: every split, exact /
near / valid) or, before its final weights were evaluated, from training's ``final_eval.json``
(val, exact match only). Only runs whose training finished count: a sweep in progress or a crashed job is listed
under "Runs" with the reason, never averaged in. The output folder gets ``summary.md`` (one table
per split and metric: mean ± sample standard deviation over seeds, and the number of seeds),
``summary.csv`` (the same numbers, long format) and one bar chart per split and metric, whose
bars are the means, with every seed's own value drawn on its bar as a point: with three seeds a
mean and a standard deviation hide whether one seed failed or all were middling.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import textwrap
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure  # pyplot-free figures: no global state, rendered by Agg on save
from omegaconf import DictConfig, OmegaConf

from minivlm.evaluation.vqa import ALL_METRICS
from minivlm.model import RopeConfig
from minivlm.run_folder import RunFolder, find_runs, read_json

DEFAULT_GROUP_BY = ("rope", "model.vit_rope")  # "rope" is the rope label; other keys are dotted config keys
MEAN = "mean"  # the pseudo-task holding each run's mean over its tasks
Scores = dict[str, dict[str, dict[str, float]]]  # split -> task -> metric -> value


@dataclass
class RunRecord:
    """One run folder as the aggregate sees it."""

    run_dir: Path
    group: tuple[str, ...]  # values of the group-by keys
    seed: int
    step: int | None  # training step of the scored weights
    finished: bool  # training wrote final_eval.json
    source: str  # the file the scores come from, or "" when there are none
    scores: Scores

    @property
    def included(self) -> bool:
        return self.finished and bool(self.scores)


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (n - 1; NaN for a single run) of n runs, and their values."""

    mean: float
    std: float
    n: int
    values: tuple[float, ...]  # one per run (seed), in run-folder order


def group_value(cfg: DictConfig, key: str) -> str:
    return RopeConfig(**cfg.rope).label if key == "rope" else str(OmegaConf.select(cfg, key))


def read_run(folder: RunFolder, group_by: Sequence[str]) -> RunRecord:
    """A run's group, seed and scores: evaluation.json when it scored the final weights, else final_eval.json."""
    run_dir, cfg, final = folder.root, folder.load_config(), folder.load_final_eval()
    group = tuple(group_value(cfg, key) for key in group_by)
    evaluation = folder.evaluation_json.name
    result = read_json(folder.evaluation_json) if folder.evaluation_json.is_file() else None
    if result is not None and (final is None or result["step"] == final["steps"]):
        scores = {split: {task: {m: v for m, v in values.items() if m in ALL_METRICS} for task, values in tasks.items()}
                  for split, tasks in result["scores"].items()}
        return RunRecord(run_dir, group, cfg.seed, result["step"], final is not None, evaluation, scores)
    if final is not None:  # never scored, or scored at an earlier step than training ended at
        scores = {"val": {task: {"exact": value} for task, value in final["accuracy"].items()}}
        stale = f" ({evaluation} is of step {result['step']}: re-run evaluate.py)" if result else ""
        return RunRecord(run_dir, group, cfg.seed, final["steps"], True, f"{folder.final_eval.name}{stale}", scores)
    return RunRecord(run_dir, group, cfg.seed, None, False, "", {})


def stat(values: Sequence[float]) -> Stat:
    return Stat(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan, len(values),
                tuple(values))


def group_stats(records: Sequence[RunRecord]) -> dict[tuple[str, str], dict[tuple[str, ...], dict[str, Stat]]]:
    """``{(split, metric): {group: {task or "mean": Stat}}}`` over the included runs."""
    values: dict[tuple[str, str], dict[tuple[str, ...], dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for record in (r for r in records if r.included):
        for split, tasks in record.scores.items():
            for metric in ALL_METRICS:
                per_task = {task: v[metric] for task, v in tasks.items() if metric in v}
                for task, value in per_task.items():
                    values[split, metric][record.group][task].append(value)
                if per_task:
                    values[split, metric][record.group][MEAN].append(statistics.fmean(per_task.values()))
    return {key: {group: {task: stat(v) for task, v in tasks.items()} for group, tasks in groups.items()}
            for key, groups in values.items()}


def ordered_tasks(groups: dict[tuple[str, ...], dict[str, Stat]]) -> list[str]:
    return sorted({task for tasks in groups.values() for task in tasks} - {MEAN}) + [MEAN]


def ordered_keys(stats: dict[tuple[str, str], object]) -> list[tuple[str, str]]:
    """val first, then extrapolate, then other splits; metrics in ALL_METRICS order."""
    rank = {"val": 0, "extrapolate": 1}
    return sorted(stats, key=lambda k: (rank.get(k[0], 2), k[0], ALL_METRICS.index(k[1])))


def format_cell(value: Stat | None, n: int) -> str:
    if value is None:
        return "-"
    text = f"{value.mean:.3f}" if math.isnan(value.std) else f"{value.mean:.3f} ± {value.std:.3f}"
    return text if value.n == n else f"{text} (n={value.n})"


def markdown_report(records: Sequence[RunRecord], group_by: Sequence[str], title: str, command: str) -> str:
    """Tables of mean ± std per group and task for every split and metric, then the run list."""
    names = [key.split(".")[-1] for key in group_by]
    stats = group_stats(records)
    lines = [f"# {title}", "",
             f"Made by `{command}`. Cells: mean ± sample standard deviation over seeds (runs); `n`: seeds "
             "averaged. `exact`: exact match; `near`: within one grid cell / one count / one second; "
             "`valid`: the answer is one of the sample's choices.", ""]
    for split, metric in ordered_keys(stats):
        groups = stats[split, metric]
        tasks = ordered_tasks(groups)
        lines += [f"## {split}: {metric}", "", "| " + " | ".join([*names, "n", *tasks]) + " |",
                  "|" + "---|" * (len(names) + 1 + len(tasks))]
        for group in sorted(groups):
            n = max(s.n for s in groups[group].values())
            cells = [format_cell(groups[group].get(task), n) for task in tasks]
            lines.append("| " + " | ".join([*group, str(n), *cells]) + " |")
        lines.append("")
    lines += ["## Runs", "", "| run | " + " | ".join(names) + " | seed | step | scores | included |",
              "|" + "---|" * (len(names) + 5)]
    for record in records:
        reason = "yes" if record.included else ("no: training not finished" if not record.finished else "no: no scores")
        lines.append(f"| {record.run_dir.name} | " + " | ".join(record.group)
                     + f" | {record.seed} | {record.step if record.step is not None else '-'} | "
                     f"{record.source or '-'} | {reason} |")
    return "\n".join(lines) + "\n"


def write_summary_csv(records: Sequence[RunRecord], group_by: Sequence[str], path: Path) -> None:
    names = [key.split(".")[-1] for key in group_by]
    stats = group_stats(records)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*names, "split", "metric", "task", "mean", "std", "n"])
        for split, metric in ordered_keys(stats):
            for group, tasks in sorted(stats[split, metric].items()):
                for task in ordered_tasks(stats[split, metric]):
                    if task in tasks:
                        value = tasks[task]  # 6 decimals: past float noise, far below any seed spread
                        writer.writerow([*group, split, metric, task, round(value.mean, 6), round(value.std, 6),
                                         value.n])


def plot_bars(groups: dict[tuple[str, ...], dict[str, Stat]], names: Sequence[str], title: str,
              chance: dict[str, float], path: Path) -> Figure:
    """Grouped bars: one cluster per task, one bar per group (the mean, error bars = std over seeds), and
    every seed's value as a point on its bar. The title wraps to the figure's width and the legend sits
    below the axes, where the layout makes room for both. Returns the figure."""
    tasks = ordered_tasks(groups)
    order = sorted(groups)
    width = 0.8 / len(order)
    columns = 2  # of the legend
    figure_width = max(6.5, 1.3 * len(tasks))
    figure = Figure(figsize=(figure_width, 3.6 + 0.2 * math.ceil((len(order) + 2) / columns)), dpi=100,
                    layout="constrained")
    axes = figure.subplots()
    colours = colormaps["tab10" if len(order) <= 10 else "tab20"]
    seed_label = "one seed"  # given to the first points only: one legend entry
    for index, group in enumerate(order):
        stats = [groups[group].get(task) for task in tasks]
        x = [t + (index - (len(order) - 1) / 2) * width for t in range(len(tasks))]
        means = [s.mean if s else math.nan for s in stats]
        errors = [s.std if s and not math.isnan(s.std) else 0.0 for s in stats]
        label = ", ".join(f"{name}={value}" for name, value in zip(names, group))
        axes.bar(x, means, width, yerr=errors, capsize=2, label=label, color=colours(index))
        for centre, stat in zip(x, stats):
            if stat is not None:  # spread across the bar, so that equal values stay visible
                spread = [centre + 0.5 * width * (k / (stat.n - 1) - 0.5) if stat.n > 1 else centre for k in range(stat.n)]
                axes.scatter(spread, stat.values, s=10, color="black", zorder=3, label=seed_label)
                seed_label = None
    known = [t for t, task in enumerate(tasks) if task in chance]  # chance level of exact match, where known
    for t in known:
        axes.hlines(chance[tasks[t]], t - 0.45, t + 0.45, colors="black", linestyles="dotted", linewidth=1,
                    label="chance" if t == known[0] else None)
    axes.set_xticks(range(len(tasks)), tasks, rotation=20)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("fraction of answers")
    figure.suptitle("\n".join(textwrap.wrap(title, int(figure_width * 10))), fontsize=11)  # ~10 characters per inch
    handles = dict(zip(*reversed(axes.get_legend_handles_labels())))  # label -> handle
    labels = [label for label in handles if label not in ("one seed", "chance")] + [
        label for label in ("one seed", "chance") if label in handles]  # the groups first
    figure.legend([handles[label] for label in labels], labels, loc="outside lower center", ncols=columns, fontsize=8)
    figure.savefig(path)
    return figure


def write_report(root: str | Path, out: str | Path, group_by: Sequence[str] = DEFAULT_GROUP_BY) -> list[Path]:
    """Read every run below ``root``; write summary.md, summary.csv and the plots into ``out``.

    Raises:
        ValueError: no run folder below ``root``.
    """
    root, out = Path(root), Path(out)
    folders = find_runs(root)
    if not folders:
        raise ValueError(f"no minivlm run below {root} (no */checkpoints/config.yaml); pass a sweep folder "
                         "such as outputs/ablation_frequency")
    records = [read_run(folder, group_by) for folder in folders]
    out.mkdir(parents=True, exist_ok=True)
    command = f"python -m minivlm.evaluation.aggregate {root} --out {out}"
    written = [out / "summary.md", out / "summary.csv"]
    written[0].write_text(markdown_report(records, group_by, f"Ablation: {root.name}", command))
    write_summary_csv(records, group_by, written[1])
    # A chance line only where every run was scored on the same task distribution (data.task).
    per_run = [RunFolder(record.run_dir).load_baselines() for record in records]
    baselines = per_run[0] if all(b == per_run[0] for b in per_run) else {}
    names = [key.split(".")[-1] for key in group_by]
    for (split, metric), groups in group_stats(records).items():
        chance = {t: v["chance"] for t, v in baselines.get(split, {}).items()} if metric == "exact" else {}
        written.append(out / f"{split}_{metric}.png")
        plot_bars(groups, names, f"{root.name}: {split}, {metric} (bars: mean ± std over seeds; points: seeds)",
                  chance, written[-1])
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a sweep folder (run folders below it)")
    parser.add_argument("--out", type=Path, required=True, help="folder for summary.md, summary.csv and plots")
    parser.add_argument("--group-by", nargs="+", default=list(DEFAULT_GROUP_BY),
                        help="'rope' and/or dotted config keys, e.g. model.vit_rope data.mix")
    args = parser.parse_args(argv)
    try:
        written = write_report(args.root, args.out, args.group_by)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    print((args.out / "summary.md").read_text())
    for path in written:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
