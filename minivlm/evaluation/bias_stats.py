"""Numbers for a positional bias in behaviour: accuracy by target location, its spread, and intervals.

Circle-RoPE (arXiv 2505.16416, section 3.1) claims that under M-RoPE-style ids the same content
is answered differently depending on where it sits in the image. Given, per prompt, the cell of
the merged-token grid holding its target and whether it was answered right, this module gives:

- :func:`cell_accuracy`: accuracy and prompt count per cell (a heat map);
- :func:`third_gap`: the mean accuracy of the best third of cells minus the worst third. It
  picks the thirds after seeing the data, so sampling noise alone makes it positive;
  :func:`null_third_gap` is its value when location carries no information (hits shuffled
  across prompts), the floor to compare it with;
- :func:`near_far_gap`: accuracy on targets in the third of cells nearest the question minus the
  farthest third, the thirds fixed in advance by a distance map (M-RoPE ids, where the paper
  locates the bias): signed and unbiased, 0 expected without a bias, positive when nearer
  targets are answered better;
- :func:`bootstrap_interval`: a percentile interval of any of these over prompts resampled. For the
  near-far gap it is an ordinary interval; the third gap picks its thirds again in every resample,
  so its interval sits above the point estimate by about the noise it picks up: read it against
  the no-bias floor, not against 0.

Across runs, seed is a block: runs of one seed start from the same weights and train on the same
batches in the same order, only the position encoding differing. :func:`block_shares` splits a
metric measured at every (rope, seed) into the share of its variance due to the seed, to the rope
and the rest (a two-way layout without interaction), and :func:`block_permutation_p` tests either
factor by shuffling it within the other's blocks (exact in expectation, no distribution assumed).
The residual's standard deviation is the spread of a difference between two ropes at one seed, the
number a paired comparison needs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Statistic = Callable[[np.ndarray, np.ndarray], float]  # (flat cell index per prompt, hit per prompt) -> value


def cell_accuracy(cells: np.ndarray, hits: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy (NaN where no prompt) and prompt count of each of ``size`` flat cells."""
    cells, hits = np.asarray(cells, dtype=int), np.asarray(hits, dtype=float)
    if cells.shape != hits.shape or cells.ndim != 1:
        raise ValueError(f"cells and hits must be 1D arrays of one length, got {cells.shape} and {hits.shape}")
    if cells.size and (cells.min() < 0 or cells.max() >= size):
        raise ValueError(f"cell indices must lie in [0, {size}), got {cells.min()}..{cells.max()}")
    counts = np.bincount(cells, minlength=size)
    with np.errstate(invalid="ignore"):
        return np.bincount(cells, weights=hits, minlength=size) / counts, counts


def third_gap(cells: np.ndarray, hits: np.ndarray) -> float:
    """Mean accuracy of the best third of the cells that hold a target minus the worst third."""
    accuracy, counts = cell_accuracy(cells, hits, int(np.max(cells)) + 1)
    seen = np.sort(accuracy[counts > 0])
    third = max(1, len(seen) // 3)
    return float(seen[-third:].mean() - seen[:third].mean())


def null_third_gap(cells: np.ndarray, hits: np.ndarray, permutations: int = 200, seed: int = 0) -> float:
    """The mean :func:`third_gap` with the hits shuffled over prompts: its value under no bias at all."""
    rng = np.random.default_rng(seed)
    hits = np.asarray(hits, dtype=float)
    return float(np.mean([third_gap(cells, rng.permutation(hits)) for _ in range(permutations)]))


def distance_thirds(distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the nearest and the farthest third of cells of a distance map (ties: raster order)."""
    order = np.argsort(np.asarray(distance, dtype=float).ravel(), kind="stable")
    third = max(1, order.size // 3)
    return order[:third], order[-third:]


def near_far_gap(distance: np.ndarray) -> Statistic:
    """The statistic: accuracy on targets in the nearest third of cells minus the farthest third."""
    near, far = distance_thirds(distance)

    def gap(cells: np.ndarray, hits: np.ndarray) -> float:
        in_near, in_far = np.isin(cells, near), np.isin(cells, far)
        if not in_near.any() or not in_far.any():
            return float("nan")
        return float(np.mean(hits[in_near]) - np.mean(hits[in_far]))

    return gap


def bootstrap_interval(statistic: Statistic, cells: np.ndarray, hits: np.ndarray, resamples: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over ``resamples`` resamplings of the prompts with replacement."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    cells, hits = np.asarray(cells, dtype=int), np.asarray(hits, dtype=float)
    if cells.size == 0:
        raise ValueError("no prompts to resample; measure some first")
    rng = np.random.default_rng(seed)
    draws = rng.integers(cells.size, size=(resamples, cells.size))
    values = np.array([statistic(cells[d], hits[d]) for d in draws])
    low, high = np.nanquantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def block_sums(values: np.ndarray) -> dict[str, float]:
    """Sums of squares of a ``(ropes, seeds)`` table: ``rope``, ``seed``, ``residual`` and ``total``."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2 or min(values.shape) < 2 or not np.isfinite(values).all():
        raise ValueError(f"need a finite (ropes, seeds) table of at least 2 x 2, got shape {values.shape}")
    mean = values.mean()
    rope_means, seed_means = values.mean(axis=1, keepdims=True), values.mean(axis=0, keepdims=True)
    ropes, seeds = values.shape
    return {"rope": float(seeds * ((rope_means - mean) ** 2).sum()),
            "seed": float(ropes * ((seed_means - mean) ** 2).sum()),
            "residual": float(((values - rope_means - seed_means + mean) ** 2).sum()),
            "total": float(((values - mean) ** 2).sum())}


def block_shares(values: np.ndarray) -> dict[str, float]:
    """Shares of the variance of a ``(ropes, seeds)`` table due to ``seed``, ``rope`` and ``residual``
    (they sum to 1), and ``residual_std``, the spread left once both are accounted for."""
    sums = block_sums(values)
    ropes, seeds = np.shape(values)
    shares = {key: sums[key] / sums["total"] if sums["total"] > 0 else float("nan") for key in ("seed", "rope", "residual")}
    return {**shares, "residual_std": float(np.sqrt(sums["residual"] / ((ropes - 1) * (seeds - 1))))}


def block_permutation_p(values: np.ndarray, factor: str, permutations: int = 2000, seed: int = 0) -> float:
    """Permutation p-value of ``factor`` (``rope`` or ``seed``) in a ``(ropes, seeds)`` table: the share
    of tables, ``factor`` shuffled within each block of the other, whose sum of squares for it reaches
    the observed one (the observed table counted once)."""
    if factor not in ("rope", "seed"):
        raise ValueError(f"factor must be 'rope' or 'seed', got {factor!r}")
    values = np.asarray(values, dtype=float)
    observed = block_sums(values)[factor]
    # Shuffling ropes within a seed permutes each column; shuffling seeds within a rope, each row.
    axis = 0 if factor == "rope" else 1
    rng = np.random.default_rng(seed)
    reached = sum(block_sums(rng.permuted(values, axis=axis))[factor] >= observed - 1e-12 for _ in range(permutations))
    return (1 + reached) / (1 + permutations)
