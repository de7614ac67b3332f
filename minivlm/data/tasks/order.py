"""`order`: which of two events came first? Temporal order of two big shapes in a video.

The event-ordering probe of video benchmarks (e.g. the temporal-order tasks of MVBench,
Li et al., arXiv 2311.17005) on our shape videos. Two big shapes of different colours appear in
different temporal groups, among up to two more big shapes of other colours. Form `which`
lists the two colours (in random order) and asks which came first; form `verify` asks a
yes/no question about one order (true half of the time).
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.core import Problem, Task
from minivlm.data.tasks.scene import COLOR_NAMES, SHAPES, coin, pick, randint
from minivlm.data.tasks.video import draw_frame_count, haystack, place_event, render_video

FORMS = ("which", "verify")
EXTRA_EVENTS = 2  # at most this many big shapes of other colours


def pose(rng: np.random.Generator, config: TaskConfig, form: str) -> Problem:
    side, num_frames = config.frame_size, draw_frame_count(rng, config)
    frames = haystack(rng, num_frames, side)
    groups = num_frames // 2
    extra = randint(rng, 0, min(EXTRA_EVENTS, groups - 2))
    event_groups = sorted(int(g) for g in rng.permutation(groups)[:2])
    colors = [COLOR_NAMES[int(i)] for i in rng.permutation(len(COLOR_NAMES))[: 2 + extra]]
    first, second = colors[0], colors[1]
    for group, color in zip(event_groups, (first, second), strict=True):
        place_event(rng, frames, group, side, color, pick(rng, SHAPES))
    others = [int(g) for g in rng.permutation(groups) if int(g) not in event_groups][:extra]
    for group, color in zip(others, colors[2:], strict=True):
        place_event(rng, frames, group, side, color, pick(rng, SHAPES))
    scene = {"width": side, "height": side, "fps": config.fps, "frames": frames}
    if form == "which":
        listed = (first, second) if coin(rng) else (second, first)
        question = f"Which big shape appears first, the {listed[0]} one or the {listed[1]} one?"
        return Problem(scene, {"form": form, "colors": list(listed)}, question, first, listed)
    truth = coin(rng)
    earlier, later = (first, second) if truth else (second, first)
    question = f"Does the big {earlier} shape appear before the big {later} shape?"
    return Problem(scene, {"form": form, "colors": [earlier, later]}, question, "yes" if truth else "no", ("yes", "no"))


TASK = Task(name="order", media="video", forms=FORMS, pose=pose, render=render_video)
