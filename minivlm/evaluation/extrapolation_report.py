"""Tables and figures of the temporal extrapolation sweep (:mod:`minivlm.evaluation.extrapolation`).

Runs are grouped by (rope, video layout); a cell's value is the mean over seeds (and, in the
length tables and plots, over needle depths), with the sample standard deviation over seeds:

- ``extrapolation.md``: per task, accuracy at every length and scaling factor, and the best
  factor of each variant at the lengths beyond training;
- ``extrapolation.csv``: every record, long format;
- ``length_<task>.png``: accuracy against clip length, one line per variant and factor;
- ``vniah_map_factor<f>.png``: V-NIAH-D's map (length x needle depth) per variant and layout.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.figure import Figure

Key = tuple[str, str]  # (rope, layout)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def by_variant(results: list[dict[str, Any]], task: str) -> dict[Key, dict[tuple, list[float]]]:
    """``{(rope, layout): {(groups, depth, factor): [exact per seed]}}`` for one task."""
    table: dict[Key, dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        for record in result["records"]:
            if record["task"] == task:
                cell = (record["groups"], record["depth"], record["factor"])
                table[(result["rope"], result["layout"])][cell].append(record["exact"])
    return table


def over_depths(cells: dict[tuple, list[float]], groups: int, factor: float) -> list[float]:
    """Per seed, the mean over needle depths at one length and factor."""
    rows = [values for (g, _, f), values in cells.items() if g == groups and f == factor]
    return [statistics.fmean(seed) for seed in zip(*rows, strict=True)] if rows else []


LEARNED = 0.9  # a run "learned" the task when it reaches this unscaled at the shortest length (its training length)


def learned(result: dict[str, Any], grid: Any, task: str) -> bool:
    """Whether a run found the needle in distribution: runs that did not say nothing about extrapolation."""
    values = [r["exact"] for r in result["records"]
              if r["task"] == task and r["groups"] == grid.groups[0] and r["factor"] == 1]
    return bool(values) and statistics.fmean(values) >= LEARNED


def variant_tables(results: list[dict[str, Any]], grid: Any, task: str) -> list[str]:
    """Accuracy per (variant, factor) at every length, then each variant's best factor beyond training."""
    table = by_variant(results, task)
    lines = ["| rope | layout | n | factor | " + " | ".join(f"{g} groups" for g in grid.groups) + " |",
             "|" + "---|" * (len(grid.groups) + 4)]
    best_lines = [f"| rope | layout | best factor beyond {grid.groups[0]} groups | its mean | x1's mean |",
                  "|---|---|---|---|---|"]
    for (rope, layout), cells in sorted(table.items()):
        seeds = len(next(iter(cells.values())))
        for factor in grid.factors:
            row = [mean_std(values) for values in (over_depths(cells, g, factor) for g in grid.groups) if values]
            lines.append(f"| {rope} | {layout} | {seeds} | x{factor:g} | "
                         + " | ".join(f"{mean:.2f} ± {std:.2f}" for mean, std in row) + " |")
        beyond = {f: statistics.fmean(v for g in grid.groups[1:] for v in over_depths(cells, g, f))
                  for f in grid.factors} if len(grid.groups) > 1 else {}
        if beyond:
            best = max(beyond, key=beyond.get)
            unscaled = f"{beyond[1.0]:.2f}" if 1.0 in beyond else "-"
            best_lines.append(f"| {rope} | {layout} | x{best:g} | {beyond[best]:.2f} | {unscaled} |")
    return [*lines, "", *best_lines, ""] if len(best_lines) > 2 else [*lines, ""]


def markdown(results: list[dict[str, Any]], grid: Any, command: str) -> str:
    lines = ["# Temporal extrapolation", "", f"Made by `{command}`. Exact match, mean ± std over seeds "
             f"(n = seeds), {grid.per_cell} prompts per cell, {grid.scaling} scaling"
             f"{' of the ' + '+'.join(grid.axes) + ' pairs only' if grid.axes else ''}, depths averaged, "
             f"look-alike period {grid.distractor_period or 'as trained'}.", ""]
    for task in grid.tasks:
        lines += [f"## {task}: every run", "", *variant_tables(results, grid, task)]
        kept = [result for result in results if learned(result, grid, task)]
        if 1.0 in grid.factors and kept:
            names = ", ".join(sorted(r["run"] for r in results if r not in kept)) or "none"
            lines += [f"## {task}: the runs that learned it", "",
                      f"Runs at {LEARNED:g} or more unscaled at {grid.groups[0]} groups; left out: {names}.", "",
                      *variant_tables(kept, grid, task)]
    return "\n".join(lines)


def write_csv(results: list[dict[str, Any]], path: Path) -> None:
    fields = ["run", "rope", "layout", "seed", "task", "groups", "depth", "factor", "scaling", "axes",
              "original_max_position", "distractor_period", "n", "exact"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for result in results:
            for record in result["records"]:
                writer.writerow({**{k: result[k] for k in ("run", "rope", "layout", "seed")}, **record})


def plot_lengths(results: list[dict[str, Any]], grid: Any, task: str, path: Path) -> None:
    table = by_variant(results, task)
    layouts = sorted({layout for _, layout in table})
    ropes = sorted({rope for rope, _ in table})
    colours = colormaps["tab10"]
    styles = ["-", "--", ":", "-."]
    figure = Figure(figsize=(5.5 * len(layouts), 5), layout="constrained")
    for column, layout in enumerate(layouts):
        axes = figure.add_subplot(1, len(layouts), column + 1)
        for r, rope in enumerate(ropes):
            cells = table.get((rope, layout))
            for s, factor in enumerate(grid.factors):
                if cells is None:
                    continue
                means = [mean_std(over_depths(cells, g, factor))[0] for g in grid.groups]
                axes.plot(grid.groups, means, styles[s % len(styles)], marker="o", color=colours(r),
                          label=f"{rope} x{factor:g}")
        axes.set_xscale("log", base=2)
        axes.minorticks_off()  # only the measured lengths are ticked
        axes.set(xticks=list(grid.groups), xticklabels=[str(g) for g in grid.groups], ylim=(0, 1),
                 xlabel="temporal groups", ylabel="exact match", title=f"{task}, {layout}")
        axes.axvline(grid.groups[0], color="grey", lw=0.5)
    handles, labels = figure.axes[-1].get_legend_handles_labels()
    figure.legend(handles, labels, fontsize=6, ncols=len(grid.factors), loc="outside lower center")
    figure.savefig(path, dpi=110)


def plot_map(results: list[dict[str, Any]], grid: Any, factor: float, path: Path) -> None:
    table = by_variant(results, "clip_needle")
    keys = sorted(table)
    figure = Figure(figsize=(2.6 * len(keys), 2.8), layout="constrained")
    for index, (rope, layout) in enumerate(keys):
        axes = figure.add_subplot(1, len(keys), index + 1)
        cells = table[(rope, layout)]
        values = [[statistics.fmean(cells.get((g, d, factor), [float("nan")])) for g in grid.groups]
                  for d in grid.depths]
        image = axes.imshow(values, vmin=0, vmax=1, cmap="viridis", origin="lower", aspect="auto")
        axes.set(xticks=range(len(grid.groups)), xticklabels=[str(g) for g in grid.groups],
                 yticks=range(len(grid.depths)), yticklabels=[f"{d:g}" for d in grid.depths],
                 xlabel="groups", ylabel="needle depth", title=f"{rope}\n{layout}")
        axes.title.set_fontsize(8)
    figure.colorbar(image, ax=figure.axes, shrink=0.8, label="exact match")
    figure.suptitle(f"V-NIAH-D (clip_needle), scaling x{factor:g}", fontsize=9)
    figure.savefig(path, dpi=110)


def write_report(results: list[dict[str, Any]], grid: Any, out: Path, command: str) -> list[Path]:
    """Write the tables and figures of ``results`` (one dict per run from ``measure_run``) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "extrapolation.md", out / "extrapolation.csv"]
    written[0].write_text(markdown(results, grid, command))
    write_csv(results, written[1])
    for task in grid.tasks:
        written.append(out / f"length_{task}.png")
        plot_lengths(results, grid, task, written[-1])
    if "clip_needle" in grid.tasks:
        for factor in grid.factors:
            written.append(out / f"vniah_map_factor{factor:g}.png")
            plot_map(results, grid, factor, written[-1])
    return written
