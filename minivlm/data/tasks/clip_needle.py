"""`clip_needle`: V-NIAH-D on clips. One needle among periodic look-alike distractors, at a chosen depth.

VideoRoPE (arXiv 2502.05173, section 4.1) extends the video needle-in-a-haystack test (V-NIAH)
with distractors similar to the needle inserted at periodic positions (V-NIAH-D), because a
temporal encoding whose frequencies wrap around can confuse groups a period apart. Here the
needle is a square of one colour in one corner, standing on a backdrop; every
``distractor_period`` groups from a random phase stands a look-alike (on a random backdrop); the
other groups are blank. The question asks for the needle's backdrop, so the answer needs the
needle itself and no time: what the clip's length and the needle's depth (``TaskConfig.depth``, a
fraction of the clip) change is only how far the LM has to look, which is what extrapolation tests.

- form ``color``: the question names the needle's colour; every look-alike is a square in the
  needle's corner in another colour, alike in all but what the question asks for.
- form ``conjunction``: the question names colour and corner; a look-alike shares exactly one of
  the two, so neither alone finds the needle (a binding the tiny model learns far more slowly,
  results/ablation_temporal/README.md).
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.clips import BACKDROPS, CORNERS, clip_scene, draw_groups, group, render_clip
from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.scene import COLOR_NAMES, coin, pick, randint

FORMS = ("color", "conjunction")


def look_alike(rng: np.random.Generator, color: str, corner: str, form: str) -> tuple[str, str]:
    """A (colour, corner) pair that the question of ``form`` does not name (see the module docstring)."""
    if form == "conjunction" and coin(rng):
        return color, pick(rng, [c for c in CORNERS if c != corner])
    return pick(rng, [c for c in COLOR_NAMES if c != color]), corner


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    count = draw_groups(rng, config)
    low, high = config.depth
    depth = low + rng.random() * (high - low)
    needle = round(depth * (count - 1))
    color, corner, backdrop = pick(rng, COLOR_NAMES), pick(rng, CORNERS), pick(rng, tuple(BACKDROPS))
    groups = [group() for _ in range(count)]
    phase = randint(rng, 0, config.distractor_period - 1)
    for index in range(phase, count, config.distractor_period):
        if index != needle:
            groups[index] = group(*look_alike(rng, color, corner, form), pick(rng, tuple(BACKDROPS)))
    groups[needle] = group(color, corner, backdrop)
    named = f"{color} square" if form == "color" else f"{color} square in the {corner} corner"
    question = f"What is the backdrop of the {named}?"
    query = {"form": form, "color": color, "corner": corner, "group": needle, "depth": needle / max(1, count - 1)}
    return Problem(clip_scene(groups, config), query, question, backdrop, tuple(BACKDROPS))


TASK = Task(name="clip_needle", media="video", forms=FORMS, pose=pose, render=render_clip)
