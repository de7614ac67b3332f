"""`clip_first`: which of two events comes first? Their temporal order, answered with a colour.

Two squares of different colours in different groups of an otherwise blank clip; the question
lists the two colours in random order. The event-order probe of video benchmarks (e.g. MVBench's
temporal-order tasks, Li et al., arXiv 2311.17005) on clips where nothing but order is hard.
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.clips import clip_scene, render_clip, two_events
from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.scene import coin

FORMS = ("which",)


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    groups, early, late, first, second = two_events(rng, config)
    listed = (first, second) if coin(rng) else (second, first)
    question = f"Which comes first, the {listed[0]} square or the {listed[1]} square?"
    return Problem(clip_scene(groups, config), {"form": form, "groups": [early, late]}, question, first, listed)


TASK = Task(name="clip_first", media="video", forms=FORMS, pose=pose, render=render_clip)
