"""Which axis did a model learn? Row and column accuracy of grid-cell answers, per run.

A grid-cell answer (``B3``: column B, row 3) is right only when both coordinates are; a 2D or 3D
rotary encoding can, however, expose one image axis to the LM much better than the other (each
axis gets its own rotary frequencies, chunked or interleaved: SPEC.md, section 2), and then
the model learns the rows but not the columns, or the reverse. Scoring the two coordinates apart
shows this where exact match only shows failure. It reads the ``predictions.jsonl`` that
``python evaluate.py`` writes into every run folder:

    python evaluate.py outputs/ablation_frequency
    python -m minivlm.evaluation.axes outputs/ablation_frequency            # val split
    python -m minivlm.evaluation.axes outputs/ablation_frequency --split extrapolate

Chance per coordinate is one over the grid side (1/3 on the shipped 3x3 grid); an answer that is
no cell counts as wrong on both axes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from minivlm.evaluation.tolerance import parse_cell
from minivlm.run_folder import RunFolder


class AxisScores(NamedTuple):
    """Cell answers of one task in one run, scored per coordinate."""

    run: str
    task: str
    n: int
    exact: float
    row: float
    column: float


def axis_scores(predictions: Path, split: str) -> list[AxisScores]:
    """Per task with grid-cell answers: the fraction of answers with the right row, the right column."""
    by_task: dict[str, list[tuple[tuple[int, int] | None, tuple[int, int]]]] = {}
    with predictions.open() as handle:
        for answer in map(json.loads, handle):
            true = parse_cell(answer["answer"])
            if answer["split"] == split and true is not None:
                by_task.setdefault(answer["task"], []).append((parse_cell(answer["prediction"]), true))
    scores = []
    for task, cells in sorted(by_task.items()):
        n = len(cells)
        row = sum(p is not None and p[0] == t[0] for p, t in cells) / n
        column = sum(p is not None and p[1] == t[1] for p, t in cells) / n
        scores.append(AxisScores(predictions.parent.name, task, n, sum(p == t for p, t in cells) / n, row, column))
    return scores


def sweep_axis_scores(path: Path, split: str) -> list[AxisScores]:
    """:func:`axis_scores` of every run folder at or below ``path`` that has been evaluated."""
    predictions = RunFolder(path).predictions
    files = [predictions] if predictions.is_file() else sorted(path.glob(f"**/{predictions.name}"))
    if not files:
        raise ValueError(f"no {predictions.name} at or below {path}; score the runs first with "
                         f"`python evaluate.py {path}` (add --force to re-score runs evaluated before it wrote them)")
    return [scores for file in files for scores in axis_scores(file, split)]


def format_table(scores: Sequence[AxisScores]) -> str:
    lines = ["| run | task | n | exact | row | column |", "|---|---|---|---|---|---|"]
    lines += [f"| {s.run} | {s.task} | {s.n} | {s.exact:.3f} | {s.row:.3f} | {s.column:.3f} |" for s in scores]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a run folder or a folder of runs, scored by evaluate.py")
    parser.add_argument("--split", default="val", help="which scored split (val | extrapolate)")
    args = parser.parse_args(argv)
    try:
        scores = sweep_axis_scores(args.path, args.split)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if not scores:
        raise SystemExit(f"error: no grid-cell answers of split {args.split!r} in {args.path}")
    print(format_table(scores))


if __name__ == "__main__":
    main()
