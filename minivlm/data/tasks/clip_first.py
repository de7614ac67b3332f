"""`clip_first`: which of two events comes first? Their temporal order, answered with a colour.

Two squares of different colours in different groups of an otherwise blank clip; the question
lists the two colours in random order. The event-order probe of video benchmarks (e.g. MVBench's
temporal-order tasks, Li et al., arXiv 2311.17005) on clips where nothing but order is hard.
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.clips import clip_scene, draw_groups, group, random_corner, render_clip
from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.scene import COLOR_NAMES, coin

FORMS = ("which",)


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    count = draw_groups(rng, config)
    early, late = sorted(int(g) for g in rng.permutation(count)[:2])
    first, second = (COLOR_NAMES[int(i)] for i in rng.permutation(len(COLOR_NAMES))[:2])
    groups = [group() for _ in range(count)]
    groups[early], groups[late] = group(first, random_corner(rng)), group(second, random_corner(rng))
    listed = (first, second) if coin(rng) else (second, first)
    question = f"Which comes first, the {listed[0]} square or the {listed[1]} square?"
    return Problem(clip_scene(groups, config), {"form": form, "groups": [early, late]}, question, first, listed)


TASK = Task(name="clip_first", media="video", forms=FORMS, pose=pose, render=render_clip)
