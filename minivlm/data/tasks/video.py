"""Video scenes: frames of small clutter with a few big shapes, and Qwen3-VL group timestamps.

Timestamps follow the Qwen3-VL layout of minivlm's SPEC.md (section 3, "Timestamps"):
frames are patched in temporal groups of TEMPORAL_PATCH = 2, frame i is shown at i / fps seconds
and a group is announced as "<{t:.1f} seconds>" with t the mean time of its frames. Questions
and answers about time use exactly that text, so a model can copy it from its input. Every
frame carries small clutter shapes (drawn anew per frame) so that a frame is never blank and
the big shapes, the events the questions are about, must be told apart from the clutter.
"""

from __future__ import annotations

import numpy as np

from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.scene import COLOR_NAMES, SHAPES, draw_canvas, randint
from minivlm.processing.video import group_times

TEMPORAL_PATCH = 2  # frames per temporal group (the Conv3d temporal patch of the vision encoder)
CLUTTER = (2, 4)  # small shapes per frame, inclusive range
BIG_SCALE = (0.28, 0.38)  # half extent of a big shape as a fraction of the frame side
SMALL_SCALE = 1 / 12  # largest half extent of a clutter shape as a fraction of the frame side


def group_timestamps(num_frames: int, fps: float) -> list[float]:
    """Mean time in seconds of the frames of each temporal group (frame i at i / fps)."""
    if num_frames % TEMPORAL_PATCH:
        raise ValueError(f"{num_frames} frames do not fill temporal groups of {TEMPORAL_PATCH}; pass an even count")
    return group_times([index / fps for index in range(num_frames)], TEMPORAL_PATCH)


def timestamp_text(seconds: float) -> str:
    """The timestamp as the Qwen3-VL layout writes it (without the "<... seconds>" wrapper)."""
    return f"{seconds:.1f}"


def draw_frame_count(rng: np.random.Generator, config: TaskConfig) -> int:
    """An even frame count, uniform over config.frames."""
    low, high = config.frames
    return TEMPORAL_PATCH * randint(rng, low // TEMPORAL_PATCH, high // TEMPORAL_PATCH)


def big_object(rng: np.random.Generator, side: int, color: str, shape: str) -> dict:
    """A shape spanning most of a frame of `side` px, centred with some jitter."""
    r = randint(rng, int(BIG_SCALE[0] * side), int(BIG_SCALE[1] * side))
    x, y = randint(rng, r, side - r - 1), randint(rng, r, side - r - 1)
    return {"shape": shape, "color": color, "x": x, "y": y, "r": r}


def haystack(rng: np.random.Generator, num_frames: int, side: int) -> list[list[dict]]:
    """Per frame, a list of small clutter shapes anywhere in the frame (drawn in a few vector calls)."""
    counts = rng.integers(CLUTTER[0], CLUTTER[1] + 1, size=num_frames).tolist()
    total = sum(counts)
    radii = rng.integers(2, max(2, int(SMALL_SCALE * side)) + 1, size=total)
    centres = radii[:, None] + (rng.random((total, 2)) * (side - 2 * radii[:, None])).astype(int)
    shapes, colors = rng.integers(len(SHAPES), size=total).tolist(), rng.integers(len(COLOR_NAMES), size=total).tolist()
    objects = [{"shape": SHAPES[s], "color": COLOR_NAMES[c], "x": x, "y": y, "r": r}
               for s, c, (x, y), r in zip(shapes, colors, centres.tolist(), radii.tolist(), strict=True)]
    bounds = np.cumsum([0, *counts]).tolist()
    return [objects[bounds[i]:bounds[i + 1]] for i in range(num_frames)]


def place_event(
    rng: np.random.Generator, frames: list[list[dict]], group: int, side: int, color: str, shape: str
) -> None:
    """Draw a big shape on top of one (random) frame of temporal group `group`."""
    frame = TEMPORAL_PATCH * group + randint(rng, 0, TEMPORAL_PATCH - 1)
    frames[frame].append(big_object(rng, side, color, shape))


def render_video(scene: dict) -> list:
    """The frames of a video scene, in order."""
    return [draw_canvas(scene["width"], scene["height"], objects) for objects in scene["frames"]]
