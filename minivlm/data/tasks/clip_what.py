"""`clip_what`: what is shown at a given time? A time in the question, content in the answer.

Every group of the clip shows a square of some colour; the question names one group, by its
timestamp (form ``time``, as the ``timestamps`` layout writes it) or by its number from 1 (form
``index``), and asks for the colour. The inverse of ``clip_when``.
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.clips import clip_scene, draw_groups, group, indices_of, random_corner, render_clip, timestamps_of
from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.scene import COLOR_NAMES, pick, randint

FORMS = ("time", "index")


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    count = draw_groups(rng, config)
    groups = [group(pick(rng, COLOR_NAMES), random_corner(rng)) for _ in range(count)]
    asked = randint(rng, 0, count - 1)
    if form == "time":
        question = f"What colour is the square at {timestamps_of(count, config)[asked]} seconds?"
    else:
        question = f"What colour is the square in group {indices_of(count)[asked]}?"
    return Problem(clip_scene(groups, config), {"form": form, "group": asked}, question, groups[asked]["color"],
                   COLOR_NAMES)


TASK = Task(name="clip_what", media="video", forms=FORMS, pose=pose, render=render_clip)
