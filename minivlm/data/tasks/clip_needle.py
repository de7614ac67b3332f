"""`clip_needle`: V-NIAH-D on clips. One needle among periodic look-alike distractors, at a chosen depth.

VideoRoPE (arXiv 2502.05173, section 4.1) extends the video needle-in-a-haystack test (V-NIAH)
with distractors similar to the needle inserted at periodic positions (V-NIAH-D), because a
temporal encoding whose frequencies wrap around can confuse groups a period apart. Here the
needle is a square of one colour in one corner, standing on a backdrop; every
``distractor_period`` groups from a random phase stands a look-alike (on a random backdrop); the
other groups are blank. The question asks for the needle's backdrop, so the answer needs the
needle itself and no time: what the clip's length and the needle's depth (``TaskConfig.depth``, a
fraction of the clip) change is only how far the LM has to look, which is what extrapolation tests.

- form ``shape``: the needle is the clip's one square; every look-alike is a disc of the same
  size (any colour, any corner). The question names no attribute, so finding the needle needs
  only what the vision tokens show, no matching of question words to pictures.
- form ``color``: the question names the needle's colour; every look-alike is a square in the
  needle's corner in another colour, alike in all but what the question asks for.
- form ``conjunction``: the question names colour and corner; a look-alike shares exactly one of
  the two, so neither alone finds the needle. The tiny model learns both word-to-picture forms
  far more slowly than ``shape`` (results/ablation_temporal/README.md).
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.clips import BACKDROPS, CORNERS, clip_scene, draw_groups, group, render_clip
from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.scene import COLOR_NAMES, coin, pick, randint

FORMS = ("shape", "color", "conjunction")


def look_alike(rng: np.random.Generator, color: str, corner: str, form: str) -> dict:
    """A distractor group that the question of ``form`` does not name (see the module docstring)."""
    backdrop = pick(rng, tuple(BACKDROPS))
    if form == "shape":
        return group(pick(rng, COLOR_NAMES), pick(rng, CORNERS), backdrop, mark="disc")
    if form == "conjunction" and coin(rng):
        return group(color, pick(rng, [c for c in CORNERS if c != corner]), backdrop)
    return group(pick(rng, [c for c in COLOR_NAMES if c != color]), corner, backdrop)


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
            groups[index] = look_alike(rng, color, corner, form)
    groups[needle] = group(color, corner, backdrop)
    named = {"shape": "square", "color": f"{color} square", "conjunction": f"{color} square in the {corner} corner"}
    question = f"What is the backdrop of the {named[form]}?"
    query = {"form": form, "color": color, "corner": corner, "group": needle, "depth": needle / max(1, count - 1)}
    return Problem(clip_scene(groups, config), query, question, backdrop, tuple(BACKDROPS))


TASK = Task(name="clip_needle", media="video", forms=FORMS, pose=pose, render=render_clip)
