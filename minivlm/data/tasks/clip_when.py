"""`clip_when`: when does the square appear? Content in the question, its time in the answer.

One coloured square in an otherwise blank clip. Form ``time`` asks for its time and is answered
with the group's timestamp text (in the ``timestamps`` video layout a copy from the prompt; in
``absolute_time`` the model must read it off the temporal position ids); form ``index`` asks for
the group's number, counted from 1.
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
    color, where = pick(rng, COLOR_NAMES), randint(rng, 0, count - 1)
    groups = [group() for _ in range(count)]
    groups[where] = group(color, random_corner(rng))
    if form == "time":
        question, choices = f"At what time does the {color} square appear?", timestamps_of(count, config)
    else:
        question, choices = f"In which group does the {color} square appear?", indices_of(count)
    return Problem(clip_scene(groups, config), {"form": form, "color": color, "group": where}, question,
                   choices[where], tuple(choices))


TASK = Task(name="clip_when", media="video", forms=FORMS, pose=pose, render=render_clip)
