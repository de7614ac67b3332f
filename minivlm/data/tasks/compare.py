"""`compare`: two images of one scene, one object changed. Which cell changed, or is a cell unchanged?

A two-image task (spot the difference) in the multi-image setting of Qwen2-VL
(arXiv 2409.12191, section 2.1: several images in one sequence, each with its own positions).
The second image repeats the first except that one object takes another colour or shape,
at the same pixels. Form `locate` asks the changed cell; form `verify` names a cell (the
changed one half of the time) and asks whether it is the same in both images.
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
    cell_of,
    coin,
    draw_canvas,
    draw_side,
    pick,
    randint,
    random_attributes,
    scatter,
)

FORMS = ("locate", "verify")


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    side, grid = draw_side(rng, config), config.grid
    count = max(2, randint(rng, *config.objects))
    first = scatter(rng, grid, side, random_attributes(rng, count))
    changed = randint(rng, 0, count - 1)
    second = [dict(obj) for obj in first]
    if coin(rng):
        second[changed]["color"] = pick(rng, [c for c in COLOR_NAMES if c != first[changed]["color"]])
    else:
        second[changed]["shape"] = pick(rng, [s for s in SHAPES if s != first[changed]["shape"]])
    scene = {"width": side, "height": side, "grid": grid, "images": [first, second]}
    if form == "locate":
        answer = cell_name(*cell_of(first[changed], grid, side, side))
        return Problem(scene, {"form": form}, "Which cell changed between the two images?", answer,
                       cell_names(grid))
    same = coin(rng)
    unchanged = [i for i in range(count) if i != changed]
    asked_object = first[pick(rng, unchanged)] if same else first[changed]
    asked = cell_name(*cell_of(asked_object, grid, side, side))
    question = f"Is the object in {asked} the same in both images?"
    return Problem(scene, {"form": form, "cell": asked}, question, "yes" if same else "no", ("yes", "no"))


def render(scene: dict) -> list:
    return [draw_canvas(scene["width"], scene["height"], objects) for objects in scene["images"]]


TASK = Task(name="compare", media="image", forms=FORMS, pose=pose, render=render)
