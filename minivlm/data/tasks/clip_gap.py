"""`clip_gap`: how many groups lie between two events? A temporal distance, answered as a count.

Two squares of different colours in an otherwise blank clip; the answer is the number of groups
strictly between them (0 when they are neighbours). Order does not matter, distance does: the
quantity a rotary temporal encoding represents directly, as a relative position.
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.clips import clip_scene, draw_groups, group, random_corner, render_clip
from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.scene import COLOR_NAMES

FORMS = ("count",)


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    count = draw_groups(rng, config)
    early, late = sorted(int(g) for g in rng.permutation(count)[:2])
    first, second = (COLOR_NAMES[int(i)] for i in rng.permutation(len(COLOR_NAMES))[:2])
    groups = [group() for _ in range(count)]
    groups[early], groups[late] = group(first, random_corner(rng)), group(second, random_corner(rng))
    question = f"How many groups lie between the {first} square and the {second} square?"
    return Problem(clip_scene(groups, config), {"form": form, "groups": [early, late]}, question,
                   str(late - early - 1), tuple(str(n) for n in range(count - 1)))


TASK = Task(name="clip_gap", media="video", forms=FORMS, pose=pose, render=render_clip)
