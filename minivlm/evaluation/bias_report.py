"""Tables and figures of the cross-modal bias sweep (:mod:`minivlm.evaluation.bias`).

Runs are grouped by (question side, task, rope); each column is the mean ± sample standard
deviation over seeds, and each run's own spreads carry 95 % bootstrap intervals (over prompts):

- ``bias.md``: accuracy (also by object count, and how often an answer in a scene of several objects
  names the one first in raster order), the third gap beside its no-bias floor, the near-far gap,
  and PTD, per variant; what the answer position reads (its attention on the question's words and on
  the target among the objects, at the best head), per run; seed against rope (runs of one seed
  share their start and their batches: the share of each metric's variance due to each, with
  permutation p-values); each variant against M-RoPE at the same seeds (paired differences with
  95 % t-intervals: does the ring remove the bias?); then the staggered schedules ranked by accuracy
  with 95 % t-intervals over seeds, and, where they overlap, the seeds a difference of the measured size would need, unpaired
  and paired by seed;
- ``bias.csv``: one row per run and task;
- ``accuracy_<side>_<task>.png``: accuracy by target cell, prompts of every seed pooled;
- ``attention_<side>_<task>_<kind>.png``: the answer position's attention mass by image location,
  one row per variant, one column per layer (heads and seeds averaged), on the prompts' own
  images and on content-free ones;
- ``ptd_vs_gap.png``: each run's near-far gap against its PTD (does the geometry predict behaviour?).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from minivlm.evaluation.bias import best_head
from minivlm.evaluation.bias_stats import block_permutation_p, block_shares, cell_accuracy
from minivlm.scoring import gap_closed

STAGGERED = ("circle", "circle_alternate", "circle_lower", "circle_upper")  # Circle-RoPE in all, even, lower, upper layers
Group = tuple[str, str]  # (question side, task)
ATTENTION_KINDS = {"attention": "own images", "attention_content_free": "content-free images"}
# Student's t 97.5 % quantiles by degrees of freedom (1 to 10; beyond, within 0.03 of the normal's 1.96).
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def side(result: dict[str, Any]) -> str:
    return "question_first" if result["question_first"] else "question_after"


def grouped(results: list[dict[str, Any]]) -> dict[Group, dict[str, list[dict[str, Any]]]]:
    """``{(side, task): {rope: [the task's measurements, one per seed, seed order]}}``."""
    table: dict[Group, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for result in sorted(results, key=lambda r: r["seed"]):
        for task, parts in result["tasks"].items():
            table[(side(result), task)][result["rope"]].append({**parts, "seed": result["seed"], "run": result["run"]})
    return table


def mean_std(values: list[float]) -> str:
    """``mean ± std`` over seeds; one seed has no spread to show."""
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def t_interval(values: list[float]) -> tuple[float, float]:
    """95 % interval for the mean over seeds (Student's t); a single seed has none."""
    if len(values) < 2:
        return float("nan"), float("nan")
    quantile = T_975.get(len(values) - 1, 1.96 + 2.4 / (len(values) - 1))
    half = quantile * statistics.stdev(values) / math.sqrt(len(values))
    return statistics.fmean(values) - half, statistics.fmean(values) + half


def seeds_needed(difference: float, std: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """Seeds per schedule for a two-sided test at ``alpha`` to detect ``difference`` with ``power``, given
    the per-seed standard deviation ``std`` (the normal approximation, n = 2 (z_a + z_b)^2 std^2 / d^2)."""
    if difference == 0 or not math.isfinite(std):
        return float("inf")
    z = statistics.NormalDist().inv_cdf(1 - alpha / 2) + statistics.NormalDist().inv_cdf(power)
    return max(2.0, 2 * (z * std / difference) ** 2)  # a spread needs two seeds, however small it is


def seed_block(ropes: dict[str, list[dict[str, Any]]], metric: str,
               among: tuple[str, ...] | None = None) -> tuple[list[str], list[int], np.ndarray] | None:
    """The largest complete block of ``metric``: ropes (of ``among``, default all) and the seeds every
    one of them was measured at, with the ``(ropes, seeds)`` table; None below two of either."""
    measured = {rope: {run["seed"]: run["summary"][metric] for run in runs}
                for rope, runs in ropes.items() if among is None or rope in among}
    best: tuple[int, list[str], list[int]] | None = None
    for seeds in {tuple(sorted(values)) for values in measured.values()}:
        members = sorted(rope for rope, values in measured.items() if set(seeds) <= set(values))
        if len(seeds) >= 2 and len(members) >= 2 and (best is None or len(seeds) * len(members) > best[0]):
            best = (len(seeds) * len(members), members, list(seeds))
    if best is None:
        return None
    _, members, seeds = best
    return members, seeds, np.array([[measured[rope][seed] for seed in seeds] for rope in members])


def p_value(p: float) -> str:
    """Three decimals; below 0.001 (2000 permutations reach no lower than 1/2001) as ``< 0.001``."""
    return f"{p:.3f}" if p >= 0.001 else "< 0.001"


def block_table(ropes: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Per metric: how much of its variance over runs the seed explains, how much the rope."""
    lines = ["| metric | ropes x seeds | seed's share | rope's share | residual's share | p (seed) | p (rope) | "
             "residual std |", "|---|---|---|---|---|---|---|---|"]
    for metric in ("accuracy", "third_gap", "near_far"):
        block = seed_block(ropes, metric)
        if block is None:
            continue
        members, seeds, table = block
        shares = block_shares(table)
        p_seed, p_rope = (block_permutation_p(table, factor) for factor in ("seed", "rope"))
        lines.append(f"| {metric} | {len(members)} x {len(seeds)} | {shares['seed']:.2f} | {shares['rope']:.2f} | "
                     f"{shares['residual']:.2f} | {p_value(p_seed)} | {p_value(p_rope)} | {shares['residual_std']:.3f} |")
    return lines if len(lines) > 2 else []


def paired_table(ropes: dict[str, list[dict[str, Any]]], reference: str = "mrope") -> list[str]:
    """Each variant minus ``reference`` at the seeds both were run at (at least two): the mean
    difference of accuracy, third gap and near-far gap, with a 95 % t-interval over those seeds."""
    if reference not in ropes:
        return []
    base = {run["seed"]: run["summary"] for run in ropes[reference]}
    lines = ["| rope | seeds | accuracy | third gap | near-far |", "|---|---|---|---|---|"]
    for rope, runs in sorted(ropes.items()):
        shared = [run for run in runs if run["seed"] in base]
        if rope == reference or len(shared) < 2:
            continue
        cells = []
        for metric in ("accuracy", "third_gap", "near_far"):
            differences = [run["summary"][metric] - base[run["seed"]][metric] for run in shared]
            low, high = t_interval(differences)
            cells.append(f"{statistics.fmean(differences):+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append(f"| {rope} | {', '.join(str(run['seed']) for run in shared)} | {' | '.join(cells)} |")
    return lines if len(lines) > 2 else []


def final_gap(run: dict[str, Any]) -> float:
    """The gap between chance and 100 % that a run's final evaluation closes (0.5: "learnt")."""
    return gap_closed(run["final"]["accuracy"], run["final"]["chance"])


def probe_gap(run: dict[str, Any]) -> float:
    """The gap a run closes on the probe's prompts (its final evaluation gives chance)."""
    return gap_closed(run["summary"]["accuracy"], run["final"]["chance"])


def reading_table(ropes: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Per run: the answer position's attention on the question's words, and on the target and on a
    distractor among the objects, each at its best head (runs measured before this part: left out)."""
    runs = [(rope, run) for rope, seeds in sorted(ropes.items()) for run in seeds if run.get("object_attention")]
    if not runs:
        return []
    fields = sorted({field for _, run in runs for field in run["object_attention"]["words"]})
    lines = ["| rope | seed | " + " | ".join(f"attention on the {field} word" for field in fields) +
             " | target's share of the attention on the objects | a distractor's | no preference |",
             "|---|---|" + "---|" * (len(fields) + 3)]
    for rope, run in runs:
        looks = run["object_attention"]
        fair = "n/a" if looks["no_preference"] is None else f"{looks['no_preference']:.3f}"
        lines.append(f"| {rope} | {run['seed']} | " +
                     " | ".join(best_head(looks["words"].get(field)) for field in fields) +
                     f" | {best_head(looks['target'])} | {best_head(looks['distractor'])} | {fair} |")
    return lines


def variant_table(ropes: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = ["| rope | seeds | final evaluation per seed (gap closed) | accuracy per seed | accuracy | by object count | "
             "names the first object (no preference) | third gap per seed [95 % CI] | third gap | no-bias floor | "
             "near-far per seed [95 % CI] | near-far | PTD |",
             "|" + "---|" * 13]
    for rope, runs in sorted(ropes.items()):
        s = [run["summary"] for run in runs]
        finals = ", ".join(f"{run['final']['accuracy']:.3f} ({final_gap(run):.2f})" if run.get("final") else "n/a"
                           for run in runs)
        per_seed = ", ".join(f"{x['accuracy']:.3f}" for x in s)
        thirds = ", ".join(f"{x['third_gap']:.2f} [{x['third_gap_ci'][0]:.2f}, {x['third_gap_ci'][1]:.2f}]" for x in s)
        near = ", ".join(f"{x['near_far']:+.2f} [{x['near_far_ci'][0]:+.2f}, {x['near_far_ci'][1]:+.2f}]" for x in s)
        counts = sorted({k for x in s for k in x["by_objects"]})
        objects = ", ".join(f"{k}: {statistics.fmean(x['by_objects'][k] for x in s if k in x['by_objects']):.2f}"
                            for k in counts)
        first = f"{statistics.fmean(x['names_first'] for x in s):.2f} ({statistics.fmean(x['names_first_fair'] for x in s):.2f})"
        lines.append(f"| {rope} | {len(runs)} | {finals} | {per_seed} | {mean_std([x['accuracy'] for x in s])} | {objects} | {first} | "
                     f"{thirds} | "
                     f"{mean_std([x['third_gap'] for x in s])} | {statistics.fmean(x['third_gap_null'] for x in s):.3f} | "
                     f"{near} | {mean_std([x['near_far'] for x in s])} | {runs[0]['layout']['ptd']:.3f} |")
    return lines


def ranking(ropes: dict[str, list[dict[str, Any]]], metric: str) -> list[str]:
    """The staggered schedules ranked by ``metric``'s mean over seeds, with intervals and the seeds needed."""
    present = [rope for rope in STAGGERED if rope in ropes]
    if len(present) < 2:
        return []
    values = {rope: [run["summary"][metric] for run in ropes[rope]] for rope in present}
    order = sorted(present, key=lambda rope: -statistics.fmean(values[rope]))
    lines = [f"| rank | rope | {metric} mean | 95 % t-interval over seeds |", "|---|---|---|---|"]
    for rank, rope in enumerate(order, 1):
        low, high = t_interval(values[rope])
        interval = f"[{low:.3f}, {high:.3f}]" if len(values[rope]) > 1 else "none (one seed)"
        lines.append(f"| {rank} | {rope} | {statistics.fmean(values[rope]):.3f} | {interval} |")
    intervals = [t_interval(values[rope]) for rope in order]
    overlap = any(intervals[i][0] <= intervals[i + 1][1] for i in range(len(order) - 1)) or any(
        math.isnan(low) for low, _ in intervals)
    stds = [statistics.stdev(v) for v in values.values() if len(v) > 1]
    pooled = math.sqrt(statistics.fmean(s * s for s in stds)) if stds else float("nan")
    means = [statistics.fmean(values[rope]) for rope in order]

    def seeds(difference: float, std: float) -> str:
        needed = seeds_needed(difference, std) if abs(difference) > 1e-9 else float("inf")
        return str(math.ceil(needed)) if math.isfinite(needed) else "no finite number of"

    if not stds:
        return [*lines, "", f"One seed per schedule: no interval, so no ranking by {metric} yet."]
    verdict = (f"Neighbouring intervals overlap: these seeds cannot rank the schedules by {metric}. With the "
               f"pooled per-seed std of {pooled:.3f}, telling the first from the second ({means[0] - means[1]:.3f} "
               f"apart) at 5 % with 80 % power takes about {seeds(means[0] - means[1], pooled)} seeds per schedule, "
               f"the first from the last ({means[0] - means[-1]:.3f} apart) about {seeds(means[0] - means[-1], pooled)}."
               if overlap else f"No neighbouring intervals overlap: the ranking by {metric} holds at these seeds.")
    block = seed_block(ropes, metric, among=STAGGERED)
    if overlap and block is not None and len(block[0]) == len(present):
        # Compared at the same seeds, the seed's own effect cancels: the residual's spread is what is left.
        paired = block_shares(block[2])["residual_std"]
        verdict += (f" Paired by seed (each seed's runs share their start and batches), the spread of a schedule "
                    f"around its seed's mean is {paired:.3f}: about {seeds(means[0] - means[1], paired)} and "
                    f"{seeds(means[0] - means[-1], paired)} seeds.")
    return [*lines, "", verdict]


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = ["# Cross-modal positional bias", "", f"Made by `{command}`. Per variant: mean ± std over seeds. "
             "Third gap: mean accuracy of the best third of target cells minus the worst third (picked after "
             "the fact, so noise alone reaches the no-bias floor: hits shuffled over prompts). Near-far: accuracy on "
             "targets in the third of cells nearest the question (M-RoPE ids) minus the farthest third (0 without "
             "a bias). PTD: mean over LM layers of each layer's design on the prompt layout. Final evaluation: the "
             "run's own, at its last step, with the share of the gap between chance and 100 % it closes (a run has "
             "learnt the task at half the gap); the other columns are the probe's prompts.", ""]
    for (question, task), ropes in sorted(grouped(results).items()):
        lines += [f"## {task}, {question.replace('_', ' ')}", "", *variant_table(ropes), ""]
        # Read on the probe's prompts (576 by default) rather than the final evaluation's (96): the same
        # distribution, a third of the standard error.
        short = [f"{run['run']} ({probe_gap(run):.2f}; final evaluation {final_gap(run):.2f})"
                 for runs in ropes.values() for run in runs if run.get("final") and probe_gap(run) < 0.5]
        lines += [f"Runs short of half the gap on the probe's prompts: {', '.join(short) if short else 'none'}.", ""]
        if reading := reading_table(ropes):
            lines += ["### What the answer position reads", "",
                      "Its attention (the position that predicts the answer's first token) on the question's words "
                      "that name the target, and, in scenes of several objects, the target token's share of its "
                      "attention on the objects' tokens, each at the head (layer L, head H) where it is largest, "
                      "over the probe's attention prompts. The distractor's column is the same share for an object "
                      "the question does not name (the scene's second): the best of many heads clears *no "
                      "preference* (1 / objects) by noise and place alone, so a model that matches the question "
                      "to an object needs a head whose target share is well above its distractor's.", "",
                      *reading, ""]
        if blocks := block_table(ropes):
            lines += ["### Seed against rope", "",
                      "Runs of one seed start from the same weights and train on the same batches in the same "
                      "order; only the position encoding differs. Over the variants measured at the same seeds, "
                      "the share of each metric's variance between runs that the seed explains, the share the "
                      "rope explains and the rest (two-way, no interaction), with permutation p-values (the "
                      "factor shuffled within the other's blocks, 2000 times) and the residual's std, the spread "
                      "of one rope against another at a given seed.", "", *blocks, ""]
        if paired := paired_table(ropes):
            lines += ["### Against M-RoPE, paired by seed", "",
                      "Each variant's value minus `mrope`'s at the same seed (the same start and batches), the mean "
                      "over the seeds both were run at with a 95 % t-interval: an interval that excludes 0 is a "
                      "difference these seeds show. A ring that removes the bias would show a third gap well below "
                      "M-RoPE's, down to the no-bias floor.", "", *paired, ""]
        for metric in ("accuracy", "near_far"):
            table = ranking(ropes, metric)
            if table:
                lines += [f"### Staggered schedules by {metric}", "", *table, ""]
    return "\n".join(lines)


def write_csv(results: list[dict[str, Any]], path: Path) -> None:
    fields = ["run", "rope", "seed", "question_first", "task", "final", "gap_closed", "n", "accuracy", "third_gap",
              "third_gap_low",
              "third_gap_high", "third_gap_null", "near_far", "near_far_low", "near_far_high", "ptd",
              "target_share_best", "distractor_share_best", "share_no_preference"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for result in results:
            for task, parts in result["tasks"].items():
                s, final = parts["summary"], parts.get("final")
                looks = parts.get("object_attention") or {}
                writer.writerow({**{k: result[k] for k in ("run", "rope", "seed", "question_first")}, "task": task,
                                 "final": final["accuracy"] if final else "",
                                 "gap_closed": gap_closed(final["accuracy"], final["chance"]) if final else "",
                                 **{k: s[k] for k in ("n", "accuracy", "third_gap", "third_gap_null", "near_far")},
                                 "third_gap_low": s["third_gap_ci"][0], "third_gap_high": s["third_gap_ci"][1],
                                 "near_far_low": s["near_far_ci"][0], "near_far_high": s["near_far_ci"][1],
                                 "ptd": parts["layout"]["ptd"],
                                 **{f"{part}_share_best": (looks[part]["best_head"] or {}).get("value", "")
                                    if looks else "" for part in ("target", "distractor")},
                                 "share_no_preference": looks.get("no_preference") or ""})


def pooled_accuracy(runs: list[dict[str, Any]]) -> np.ndarray:
    """Accuracy per target cell over every seed's prompts, on the first run's grid."""
    shape = np.array(runs[0]["layout"]["question_distance"]).shape
    records = [r for run in runs for r in run["records"] if tuple(r["grid"]) == shape]
    cells = np.array([r["cell"][0] * shape[1] + r["cell"][1] for r in records], dtype=int)
    accuracy, _ = cell_accuracy(cells, np.array([r["hit"] for r in records], dtype=float), shape[0] * shape[1])
    return accuracy.reshape(shape)


def plot_accuracy(ropes: dict[str, list[dict[str, Any]]], title: str, path: Path) -> None:
    names = sorted(ropes)
    figure = Figure(figsize=(max(4.0, 2.2 * len(names) + 0.8), 2.8), layout="constrained")
    for index, rope in enumerate(names):
        axes = figure.add_subplot(1, len(names), index + 1)
        image = axes.imshow(pooled_accuracy(ropes[rope]), vmin=0, vmax=1, cmap="viridis")
        seeds = len(ropes[rope])
        axes.set(xticks=[], yticks=[], title=f"{rope}\n{seeds} seed{'s' if seeds > 1 else ''}")
        axes.title.set_fontsize(8)
    figure.colorbar(image, ax=figure.axes, shrink=0.8, label="accuracy")
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, dpi=110)


def mean_map(runs: list[dict[str, Any]], kind: str) -> np.ndarray | None:
    """``(layers, H, W)``: heads, prompts and seeds averaged, for the most common image size."""
    sizes = [run[kind] for run in runs if run.get(kind)]
    if not sizes:
        return None
    shape = max(sizes[0], key=lambda key: sizes[0][key]["n"])
    maps = [np.array(size[shape]["maps"]).mean(axis=1) for size in sizes if shape in size]
    return np.mean(maps, axis=0)


def plot_attention(ropes: dict[str, list[dict[str, Any]]], kind: str, title: str, path: Path) -> None:
    maps = {rope: m for rope in sorted(ropes) if (m := mean_map(ropes[rope], kind)) is not None}
    layers = max((m.shape[0] for m in maps.values()), default=1)
    figure = Figure(figsize=(1.9 * layers + 1.2, 1.9 * max(1, len(maps)) + 0.4), layout="constrained")
    for r, (rope, layered) in enumerate(maps.items()):
        for layer, values in enumerate(layered):
            axes = figure.add_subplot(len(maps), layers, r * layers + layer + 1)
            # Each map on its own scale: the question is where the mass goes, not how much of it goes to the image.
            axes.imshow(values / values.sum(), cmap=colormaps["magma"])
            axes.set(xticks=[], yticks=[], title=f"layer {layer}: {values.sum():.2f} on image")
            axes.title.set_fontsize(7)
            if layer == 0:
                axes.set_ylabel(rope, fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, dpi=110)


def plot_ptd(results: list[dict[str, Any]], path: Path) -> None:
    figure = Figure(figsize=(5, 3.6), layout="constrained")
    axes = figure.add_subplot()
    ropes = sorted({result["rope"] for result in results})
    colours = colormaps["tab10"]
    for result in results:
        for parts in result["tasks"].values():
            s = parts["summary"]
            axes.errorbar(parts["layout"]["ptd"], s["near_far"], yerr=[[s["near_far"] - s["near_far_ci"][0]],
                          [s["near_far_ci"][1] - s["near_far"]]], fmt="o" if not result["question_first"] else "s",
                          color=colours(ropes.index(result["rope"])), capsize=2, ms=4)
    for index, rope in enumerate(ropes):
        axes.plot([], [], "o", color=colours(index), label=rope)
    axes.axhline(0, color="grey", lw=0.5)
    axes.set(xlabel="PTD (mean over layers)", ylabel="near-far accuracy gap", title="PTD against the measured bias "
             "(circles: question after, squares: before)")
    axes.title.set_fontsize(8)
    axes.legend(fontsize=6)
    figure.savefig(path, dpi=110)


def write_report(results: list[dict[str, Any]], out: Path, command: str) -> list[Path]:
    """Write the tables and figures of ``results`` (one dict per run from ``measure_run``) into ``out``."""
    if not results:
        raise ValueError("no measured runs to report; run python -m minivlm.evaluation.bias on finished runs first")
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "bias.md", out / "bias.csv", out / "ptd_vs_gap.png"]
    written[0].write_text(markdown(results, command))
    write_csv(results, written[1])
    plot_ptd(results, written[2])
    for (question, task), ropes in sorted(grouped(results).items()):
        written.append(out / f"accuracy_{question}_{task}.png")
        plot_accuracy(ropes, f"{task}, {question.replace('_', ' ')}:\naccuracy by target cell", written[-1])
        for kind, label in ATTENTION_KINDS.items():
            written.append(out / f"attention_{question}_{task}_{kind.removeprefix('attention').strip('_') or 'own'}.png")
            plot_attention(ropes, kind, f"{task}, {question.replace('_', ' ')}: answer-position attention, {label}",
                           written[-1])
    return written
