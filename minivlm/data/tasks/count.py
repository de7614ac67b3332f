"""`count`: how many objects? By colour (content) or inside a row/column (position).

Counting is the classic compositional probe (CLEVR, Johnson et al., arXiv 1612.06890). Form
`total` names a colour and is position-free; form `region` names a row or a column, so the
answer depends on where the objects are. The count is drawn first (uniformly), then the scene
is built around it, which keeps the answer distribution flat and the blind baseline at chance.
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.grounding import render
from minivlm.data.tasks.scene import (
    COLOR_NAMES,
    SHAPES,
    column_name,
    draw_side,
    pick,
    randint,
    random_attributes,
    scatter,
)

FORMS = ("total", "region")


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    side, grid = draw_side(rng, config), config.grid
    low, high = config.objects
    order = rng.permutation(grid * grid).tolist()
    if form == "total":
        color = pick(rng, COLOR_NAMES)
        count = randint(rng, 1, high)
        others = randint(rng, max(low - count, 0), high - count)
        other_colors = [c for c in COLOR_NAMES if c != color]
        attributes = [(color, pick(rng, SHAPES)) for _ in range(count)]
        attributes += [(pick(rng, other_colors), pick(rng, SHAPES)) for _ in range(others)]
        objects = scatter(rng, grid, side, attributes, order[: count + others])
        query = {"form": form, "color": color}
        question, choices = f"How many {color} objects are there?", range(1, high + 1)
    else:
        axis, line = pick(rng, ("row", "column")), randint(rng, 0, grid - 1)
        inside = [c for c in order if (c // grid if axis == "row" else c % grid) == line]
        outside = [c for c in order if c not in inside]
        count = randint(rng, 0, min(grid, high))
        others = randint(rng, max(low - count, 0), min(high - count, len(outside)))
        cells = inside[:count] + outside[:others]
        objects = scatter(rng, grid, side, random_attributes(rng, len(cells)), cells)
        name = str(line + 1) if axis == "row" else column_name(line)
        query = {"form": form, "axis": axis, "line": line}
        question, choices = f"How many objects are in {axis} {name}?", range(0, min(grid, high) + 1)
    scene = {"width": side, "height": side, "grid": grid, "objects": objects}
    return Problem(scene, query, question, str(count), tuple(str(c) for c in choices))


TASK = Task(name="count", media="image", forms=FORMS, pose=pose, render=render)
