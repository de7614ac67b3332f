"""Training mixes: which tasks a synthetic stream draws, with what weight.

The "default" mix covers every task: mostly single-image tasks (few vision tokens), most of them
position-dependent (grounding, attribute_at, relation, the region form of count, compare), and a
small share of short videos so the temporal designs are trained too. "grounding" alone is what
the training recipe's default run uses (configs/data/recipe.yaml): the one multi-object task a tiny
model learns in a 10-minute CPU budget (results/learning/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

MIXES: dict[str, dict[str, float]] = {
    "default": {"grounding": 0.25, "attribute_at": 0.2, "relation": 0.2, "count": 0.15, "compare": 0.1,
                "needle": 0.05, "order": 0.05},
    "grounding": {"grounding": 1.0},
    "images": {"grounding": 1.0, "attribute_at": 1.0, "relation": 1.0, "count": 1.0, "compare": 1.0},
    "position": {"grounding": 1.0, "attribute_at": 1.0, "relation": 1.0},
    "video": {"needle": 1.0, "order": 1.0},
    "clips": {"clip_when": 1.0, "clip_what": 1.0, "clip_first": 1.0, "clip_gap": 1.0, "clip_needle": 1.0},
}


def resolve_mix(mix: str | Mapping[str, float], known: Mapping[str, object]) -> dict[str, float]:
    """A mix name or {task: weight} as normalised probabilities, checked against the known tasks.

    Args:
        mix: a name in MIXES or a mapping of task names to positive weights.
        known: the task registry (names that may appear).
    Returns:
        {task: probability}, probabilities summing to 1, in the mapping's order.
    """
    if isinstance(mix, str):
        if mix not in MIXES:
            raise ValueError(f"unknown mix {mix!r}; choose one of {sorted(MIXES)} or pass {{task: weight}}")
        mix = MIXES[mix]
    unknown = [name for name in mix if name not in known]
    if unknown or not mix:
        raise ValueError(f"mix {dict(mix)} names unknown tasks {unknown}; known tasks: {sorted(known)}")
    if any(weight <= 0 for weight in mix.values()):
        raise ValueError(f"mix {dict(mix)}: every weight must be > 0 (drop a task instead of weighting it 0)")
    total = float(sum(mix.values()))
    return {name: weight / total for name, weight in mix.items()}


def choose_task(probabilities: Mapping[str, float], seed: int, index: int) -> str:
    """The task of global stream position `index`, a pure function of (seed, index)."""
    names = list(probabilities)
    u = np.random.default_rng([seed, index]).random()
    cumulative = np.cumsum([probabilities[name] for name in names])
    return names[min(int(np.searchsorted(cumulative, u, side="right")), len(names) - 1)]
