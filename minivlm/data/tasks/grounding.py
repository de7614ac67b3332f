"""`grounding`: where is the target? Content in the question, a grid cell in the answer.

A referring-expression probe in the spirit of the grounding evaluations of Qwen2-VL
(arXiv 2409.12191, section 3.3) reduced to a closed answer set: the target is named by colour
and shape, its place is answered as a cell of a coarse grid ("B3" = column B, row 3).
Half of the distractors are look-alikes sharing the target's colour or its shape, so neither
attribute alone finds the target; ``TaskConfig.unique_target_color`` gives every distractor another
colour, so that finding the target is the vision job a ViT learns fastest (colour) and reading
where it is the hard part. The inverse form (cell in the question) is `attribute_at`.
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.scene import (
    COLOR_NAMES,
    SHAPES,
    cell_name,
    cell_names,
    coin,
    draw_canvas,
    draw_side,
    look_alike,
    pick,
    randint,
    scatter,
)

FORMS = ("locate",)


def other_pair(rng: np.random.Generator, color: str, shape: str, unique_color: bool = False) -> tuple[str, str]:
    """A look-alike half of the time, otherwise any (color, shape) pair other than the target's;
    with ``unique_color``, any pair of another colour (the target is then the only one of its colour)."""
    if unique_color:
        return pick(rng, [c for c in COLOR_NAMES if c != color]), pick(rng, SHAPES)
    if coin(rng):
        return look_alike(rng, color, shape)
    pairs = [(c, s) for c in COLOR_NAMES for s in SHAPES if (c, s) != (color, shape)]
    return pick(rng, pairs)


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    side = draw_side(rng, config)
    count = randint(rng, *config.objects)
    color, shape = pick(rng, COLOR_NAMES), pick(rng, SHAPES)
    attributes = [(color, shape)] + [other_pair(rng, color, shape, config.unique_target_color) for _ in range(count - 1)]
    cells = [int(c) for c in rng.permutation(config.grid * config.grid)[:count]]
    objects = scatter(rng, config.grid, side, attributes, cells)
    scene = {"width": side, "height": side, "grid": config.grid, "objects": objects}
    answer = cell_name(cells[0] // config.grid, cells[0] % config.grid)
    return Problem(scene, {"form": form, "color": color, "shape": shape},
                   f"Where is the {color} {shape}?", answer, cell_names(config.grid))


def render(scene: dict) -> list:
    return [draw_canvas(scene["width"], scene["height"], scene["objects"])]


TASK = Task(name="grounding", media="image", forms=FORMS, pose=pose, render=render)
