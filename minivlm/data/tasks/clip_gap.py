"""`clip_gap`: how many groups lie between two events? A temporal distance, answered as a count.

Two squares of different colours in an otherwise blank clip; the answer is the number of groups
strictly between them (0 when they are neighbours). Order does not matter, distance does: the
quantity a rotary temporal encoding represents directly, as a relative position.
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.clips import clip_scene, render_clip, two_events
from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task

FORMS = ("count",)


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    groups, early, late, first, second = two_events(rng, config)
    question = f"How many groups lie between the {first} square and the {second} square?"
    return Problem(clip_scene(groups, config), {"form": form, "groups": [early, late]}, question,
                   str(late - early - 1), tuple(str(n) for n in range(len(groups) - 1)))


TASK = Task(name="clip_gap", media="video", forms=FORMS, pose=pose, render=render_clip)
