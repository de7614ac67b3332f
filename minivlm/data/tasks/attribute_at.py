"""`attribute_at`: what is at a given cell? A grid cell in the question, content in the answer.

The inverse of `grounding` on a denser scene; together they are the two directions of the
position/content binding that the M-RoPE ablations of "Revisiting Multimodal Positional
Encoding in VLMs" (arXiv 2510.23095, section 4) probe. Form `identify` asks the colour or
shape at a cell; form `locate` names an attribute value that only one object has and asks its cell.
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.grounding import render
from minivlm.data.tasks.scene import (
    COLOR_NAMES,
    SHAPES,
    cell_name,
    cell_names,
    draw_side,
    pick,
    randint,
    random_attributes,
    scatter,
)

FORMS = ("identify", "locate")
ATTRIBUTE_VALUES = {"color": COLOR_NAMES, "shape": SHAPES}


def unique_value_attributes(rng: np.random.Generator, count: int, attribute: str, value: str) -> list[tuple[str, str]]:
    """`count` pairs where only the first has `value` for `attribute` (the others draw the rest)."""
    others = [v for v in ATTRIBUTE_VALUES[attribute] if v != value]
    pairs = []
    for i in range(count):
        own = value if i == 0 else pick(rng, others)
        pairs.append((own, pick(rng, SHAPES)) if attribute == "color" else (pick(rng, COLOR_NAMES), own))
    return pairs


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    side = draw_side(rng, config)
    count = randint(rng, *config.objects)
    attribute = pick(rng, tuple(ATTRIBUTE_VALUES))
    cells = [int(c) for c in rng.permutation(config.grid * config.grid)[:count]]
    row, col = cells[0] // config.grid, cells[0] % config.grid
    if form == "identify":
        attributes = random_attributes(rng, count)
        color, shape = attributes[0]
        answer = color if attribute == "color" else shape
        question = f"What {attribute} is the object in {cell_name(row, col)}?"
        choices = ATTRIBUTE_VALUES[attribute]
        query = {"form": form, "attribute": attribute, "cell": cell_name(row, col)}
    else:
        value = pick(rng, ATTRIBUTE_VALUES[attribute])
        attributes = unique_value_attributes(rng, count, attribute, value)
        noun = f"{value} object" if attribute == "color" else value
        question = f"Which cell holds the only {noun}?"
        answer = cell_name(row, col)
        choices = cell_names(config.grid)
        query = {"form": form, "attribute": attribute, "value": value}
    objects = scatter(rng, config.grid, side, attributes, cells)
    scene = {"width": side, "height": side, "grid": config.grid, "objects": objects}
    return Problem(scene, query, question, answer, tuple(choices))


TASK = Task(name="attribute_at", media="image", forms=FORMS, pose=pose, render=render)
