"""`needle`: a small V-NIAH-D. One needle frame in a haystack with periodic look-alike distractors.

VideoRoPE (arXiv 2502.05173, section 4.1) builds V-NIAH-D by inserting one needle image into a
long haystack video plus distractor images similar to the needle at periodic positions, to
expose rotary frequencies whose temporal dimension wraps around. Here the needle is a big shape
of one colour and shape; a distractor (a big shape sharing exactly one of the needle's
attributes) appears every `distractor_period` temporal groups from a random phase, never in the
needle's group. Form `locate` names the needle and asks when it appears (the group's timestamp
text); form `identify` gives the timestamp and asks the needle's colour or shape.
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.scene import COLOR_NAMES, SHAPES, look_alike, pick, randint
from minivlm.data.tasks.video import (
    draw_frame_count,
    group_timestamps,
    haystack,
    place_event,
    render_video,
    timestamp_text,
)

FORMS = ("locate", "identify")


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    side, num_frames = config.frame_size, draw_frame_count(rng, config)
    frames = haystack(rng, num_frames, side)
    color, shape = pick(rng, COLOR_NAMES), pick(rng, SHAPES)
    times = [timestamp_text(t) for t in group_timestamps(num_frames, config.fps)]
    needle = randint(rng, 0, len(times) - 1)
    phase = randint(rng, 0, config.distractor_period - 1)
    for group in range(phase, len(times), config.distractor_period):
        if group != needle:
            place_event(rng, frames, group, side, *look_alike(rng, color, shape))
    place_event(rng, frames, needle, side, color, shape)
    scene = {"width": side, "height": side, "fps": config.fps, "frames": frames}
    if form == "locate":
        question = f"When does the big {color} {shape} appear?"
        return Problem(scene, {"form": form, "color": color, "shape": shape}, question, times[needle], tuple(times))
    attribute = pick(rng, ("color", "shape"))
    question = f"What {attribute} is the big shape at {times[needle]} seconds?"
    answer, choices = (color, COLOR_NAMES) if attribute == "color" else (shape, SHAPES)
    return Problem(scene, {"form": form, "attribute": attribute, "time": times[needle]}, question, answer, choices)


TASK = Task(name="needle", media="video", forms=FORMS, pose=pose, render=render_video)
