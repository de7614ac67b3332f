"""Extrapolation in time: accuracy of trained runs on clips longer than any seen in training.

VideoRoPE (arXiv 2502.05173, section 4) measures V-NIAH-D as a map: accuracy over haystack
length x needle depth. This module does the same for minivlm runs on the ``clip_*`` tasks, at
each number of temporal groups (e.g. N, 2N, 4N and 8N for a run trained on up to N) and each
needle depth, under RoPE scalings of several factors (:mod:`minivlm.rope.scaling`; a scaling has
no weights, so the trained weights are re-used as they are):

    python -m minivlm.evaluation.extrapolation outputs/ablation_temporal --groups 16 32 64 128 \\
        --depths 0 0.5 1 --factors 1 2 3 4 --scaling yarn --original-max-position 64
    python -m minivlm.evaluation.extrapolation outputs/ablation_temporal --report results/ablation_temporal

Prompts are generated from the ``val`` split's held-out scenes with the run's own task settings,
the clip length and depth replaced (``TaskConfig.frames``, ``TaskConfig.depth``), and decoded by
the scoring loop of every other evaluation (:func:`minivlm.scoring.answer_prompts`). Each run's
records are written to its folder (``RunFolder.extrapolation``) as every (scaling, length, depth) cell
finishes, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.utils.data

from minivlm.data.tasks import split_config
from minivlm.data.tasks.config import parse_overrides
from minivlm.data.tasks.video import TEMPORAL_PATCH
from minivlm.evaluation.evaluate import Settings, load_config, load_model
from minivlm.evaluation.targets import Target, find_targets
from minivlm.model import VLM
from minivlm.run_folder import read_json, write_atomically
from minivlm.scoring import TaskScores, answer_prompts
from minivlm.train.datamodule import GeneratedSet
from minivlm.train.run import Run, build_run


@dataclass(frozen=True)
class Grid:
    """What to measure: every task at every length and depth, under every scaling factor."""

    tasks: tuple[str, ...] = ("clip_needle",)
    groups: tuple[int, ...] = (16, 32, 64, 128)  # clip lengths in temporal groups
    depths: tuple[float, ...] = (0.0, 0.5, 1.0)  # needle depths (clip_needle; the other tasks ignore them)
    factors: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)  # 1 = no scaling
    scaling: str = "yarn"  # linear | ntk | yarn
    original_max_position: int | None = None  # yarn's training length; None: the longest N-group prompt
    axes: tuple[str, ...] | None = None  # scale only these rows' pairs (e.g. ("t",)); None: all
    per_cell: int = 32  # prompts per (task, length, depth)
    distractor_period: int | None = None  # clip_needle's look-alike period; None: the run's own (64: none)

    def cells(self) -> list[tuple[str, int, float, float]]:
        """(task, groups, depth, factor) of every measurement; depth only varies for clip_needle."""
        return [(task, groups, depth, factor) for factor in self.factors for task in self.tasks
                for groups in self.groups for depth in (self.depths if task == "clip_needle" else self.depths[:1])]

    def cell_key(self, task: str, groups: int, depth: float, factor: float, original: int) -> str:
        """A measurement's name: the cell, its look-alike period and everything that changes its scaling."""
        axes = "+".join(self.axes) if self.axes else "all"
        period = f"/period{self.distractor_period}" if self.distractor_period else ""
        return f"{task}/{groups}/{depth:g}{period}/{self.scaling}-{factor:g}-{axes}-{original}"


def prompts(run: Run, task: str, groups: int, depth: float, per_cell: int,
            distractor_period: int | None = None) -> torch.utils.data.DataLoader:
    """Prompt batches of ``task`` on ``val`` clips of ``groups`` temporal groups, needle at ``depth``."""
    overrides = parse_overrides({"frames": [TEMPORAL_PATCH * groups] * 2, "depth": [depth, depth],
                                 "distractor_period": distractor_period}, "extrapolation", run.datamodule.task)
    data = GeneratedSet([task], per_cell, "val", split_config("val", **overrides),
                        partial(run.datamodule.processor, prompt_only=True))
    return torch.utils.data.DataLoader(data, batch_size=run.cfg.data.eval_batch_size,
                                       collate_fn=run.datamodule.prompt_collator)


def longest_position(run: Run, task: str, groups: int) -> int:
    """The largest next position of any design over ``groups``-group prompts: a training length in positions."""
    batch = next(iter(prompts(run, task, groups, 1.0, run.cfg.data.eval_batch_size)))
    return int(max(float(nxt.max()) for nxt in batch["next_position"].values())) + run.cfg.data.max_new_tokens


def scaling_of(grid: Grid, factor: float, original: int) -> dict[str, Any] | None:
    if factor == 1:
        return None
    scaling = {"type": grid.scaling, "factor": factor, "original_max_position": original}
    return scaling if grid.axes is None else {**scaling, "axes": list(grid.axes)}


def measure_run(target: Target, grid: Grid, device: str = "cpu") -> dict[str, Any]:
    """Accuracy of one run at every cell of ``grid``; resumes from and adds to ``extrapolation.json``.

    Stored cells are reused when they were measured from the same weights with the same number of
    prompts; a new length, depth, factor or scaling type only measures what is missing.
    """
    cfg = load_config(target, Settings(num_workers=0))
    run = build_run(cfg, target.folder.root)
    model, step = load_model(target)
    original = grid.original_max_position or longest_position(run, grid.tasks[0], grid.groups[0])
    # weights named inside the run folder, so a folder moved or copied elsewhere keeps its cells
    weights = target.weights.resolve()
    root = target.folder.root.resolve()
    settings = {"weights": str(weights.relative_to(root) if weights.is_relative_to(root) else weights),
                "step": step, "per_cell": grid.per_cell}
    path = target.folder.extrapolation
    stored = read_json(path) if path.is_file() else {}
    records = stored["records"] if stored.get("settings") == json.loads(json.dumps(settings)) else {}
    scaled: dict[float, VLM] = {}
    for task, groups, depth, factor in grid.cells():
        key = grid.cell_key(task, groups, depth, factor, original)
        if key in records:
            continue
        if factor not in scaled:
            scaled[factor] = model.with_rope_scaling(scaling_of(grid, factor, original)).to(device)
        loader = prompts(run, task, groups, depth, grid.per_cell, grid.distractor_period)
        answers = answer_prompts(scaled[factor], loader, run.tokenizer, cfg.data.max_new_tokens)
        records[key] = {"task": task, "groups": groups, "depth": depth, "factor": factor, "scaling": grid.scaling,
                        "distractor_period": loader.dataset.config.distractor_period,
                        "axes": grid.axes, "original_max_position": original, "n": len(answers),
                        "exact": TaskScores.of(answers).accuracy()[task]}
        write_atomically(path, json.dumps({"settings": settings, "records": records}, indent=1))
    print(f"{target.folder.root}: {len(records)} cells (original_max_position {original})")
    wanted = {grid.cell_key(*cell, original) for cell in grid.cells()}
    return {"run": target.folder.root.name, "rope": run.model_config.rope.label, "seed": cfg.seed,
            "layout": cfg.data.video_layout, "records": [r for k, r in records.items() if k in wanted]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a run folder or a sweep folder")
    parser.add_argument("--tasks", nargs="+", default=list(Grid.tasks), help="clip tasks to measure")
    parser.add_argument("--groups", nargs="+", type=int, default=list(Grid.groups), help="clip lengths, in groups")
    parser.add_argument("--depths", nargs="+", type=float, default=list(Grid.depths), help="needle depths in [0, 1]")
    parser.add_argument("--factors", nargs="+", type=float, default=list(Grid.factors), help="scaling factors (1: none)")
    parser.add_argument("--scaling", default=Grid.scaling, choices=("linear", "ntk", "yarn"), help="scaling type")
    parser.add_argument("--original-max-position", type=int, default=None,
                        help="yarn's training length in positions (default: the longest prompt at the first --groups)")
    parser.add_argument("--axes", nargs="+", default=None, choices=("t", "h", "w"), help="scale only these rows")
    parser.add_argument("--per-cell", type=int, default=Grid.per_cell, help="prompts per task, length and depth")
    parser.add_argument("--distractor-period", type=int, default=None,
                        help="clip_needle's look-alike period (default: the run's own; 64 leaves almost none)")
    parser.add_argument("--weights", default="last", help="last | best | export")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    parser.add_argument("--report", type=Path, default=None, help="then write tables and figures to this folder")
    args = parser.parse_args(argv)
    grid = Grid(tuple(args.tasks), tuple(args.groups), tuple(args.depths), tuple(args.factors), args.scaling,
                args.original_max_position, tuple(args.axes) if args.axes else None, args.per_cell,
                args.distractor_period)
    try:
        targets = find_targets(args.path, args.weights)
        unfinished = [t for t in targets if t.weights.suffix == ".ckpt" and t.folder.load_final_eval() is None]
        for target in unfinished:  # a sweep in progress: its checkpoint is of some middle step
            print(f"skipped: {target.folder.root} has not finished training")
        results = [measure_run(target, grid, args.device) for target in targets if target not in unfinished]
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.report is not None:
        from minivlm.evaluation.extrapolation_report import write_report  # matplotlib only when asked for

        command = shlex.join(["python", "-m", "minivlm.evaluation.extrapolation", *(argv or sys.argv[1:])])
        for path in write_report(results, grid, args.report, command):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
