"""`relation`: where is A relative to B? Two named objects and a spatial relation.

The left/right/above/below probe of spatial-reasoning suites (e.g. What'sUp, Kamath et al.,
arXiv 2310.19785) on our shape scenes. A and B are placed in cells whose offset along the asked
axis exceeds the offset along the other axis, so the relation is unambiguous in pixels too
(scene.place_in_cells explains why). Form `verify` asks a yes/no question about one relation
(half true, half the opposite relation); form `locate` answers the relation word itself.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.grounding import render
from minivlm.data.tasks.scene import COLOR_NAMES, SHAPES, coin, draw_side, pick, randint, scatter

FORMS = ("verify", "locate")
DIRECTIONS = ("left", "right", "above", "below")
OPPOSITE = {"left": "right", "right": "left", "above": "below", "below": "above"}
PHRASE = {"left": "left of", "right": "right of", "above": "above", "below": "below"}


@cache
def cell_pairs(grid: int, direction: str) -> tuple[tuple[int, int], ...]:
    """Flat cell pairs (a, b) such that a lies clearly `direction` of b on a grid x grid board."""
    pairs = []
    for a in range(grid * grid):
        for b in range(grid * grid):
            (ra, ca), (rb, cb) = divmod(a, grid), divmod(b, grid)
            along = {"left": cb - ca, "right": ca - cb, "above": rb - ra, "below": ra - rb}[direction]
            across = abs(ra - rb) if direction in ("left", "right") else abs(ca - cb)
            if along > across:
                pairs.append((a, b))
    return tuple(pairs)


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    side = draw_side(rng, config)
    count = max(2, randint(rng, *config.objects))
    pairs = [(c, s) for c in COLOR_NAMES for s in SHAPES]
    chosen = rng.permutation(len(pairs))[:count]  # distinct pairs: A, B and distractors never coincide
    attributes = [pairs[int(i)] for i in chosen]
    if form == "verify":
        asked = pick(rng, DIRECTIONS)
        truth = coin(rng)
        direction = asked if truth else OPPOSITE[asked]
    else:
        direction = pick(rng, DIRECTIONS)
    options = cell_pairs(config.grid, direction)
    cell_a, cell_b = pick(rng, options)
    free = [c for c in rng.permutation(config.grid * config.grid).tolist() if c not in (cell_a, cell_b)]
    objects = scatter(rng, config.grid, side, attributes, [cell_a, cell_b, *free[: count - 2]])
    scene = {"width": side, "height": side, "grid": config.grid, "objects": objects}
    name_a, name_b = " ".join(attributes[0]), " ".join(attributes[1])
    query = {"form": form, "a": list(attributes[0]), "b": list(attributes[1])}
    if form == "verify":
        question = f"Is the {name_a} {PHRASE[asked]} the {name_b}?"
        return Problem(scene, {**query, "relation": asked}, question, "yes" if truth else "no", ("yes", "no"))
    return Problem(scene, query, f"Where is the {name_a} relative to the {name_b}?", direction, DIRECTIONS)


TASK = Task(name="relation", media="image", forms=FORMS, pose=pose, render=render)
