"""Clips: tiny videos in which time is the only hard part (the shared scene of the ``clip_*`` tasks).

A clip is a row of temporal groups (TEMPORAL_PATCH = 2 identical frames each, the Conv3d's
temporal patch), every frame ``clip_size`` px a side: 16 px is a single merged LLM token per group
at patch 8 and merge 2, so a clip of 64 groups costs the LM 64 vision tokens, about what one
image costs. What a group shows is the easiest vision job there is: a plain backdrop, and
optionally a coloured square (or, as a look-alike, a disc) filling one corner (one ViT patch at
16 px). The ViT reads that in
a few dozen steps (a coloured frame is learnt in 25, results/learning/README.md section 1), so
what remains hard is the LM's reading of *when*: which group, in which order, how far apart.

Group ``k`` is shown at the mean time of its frames, frame ``i`` at ``i / fps`` seconds, and
announced in the Qwen3-VL layout as ``<{t:.1f} seconds>`` (:func:`group_timestamps`); groups
are also numbered from 1 for questions that name them by index.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from minivlm.data.tasks.config import TaskConfig
from minivlm.data.tasks.scene import COLOR_NAMES, COLORS, randint
from minivlm.data.tasks.video import TEMPORAL_PATCH, draw_frame_count, group_timestamps, timestamp_text

BLANK = "black"  # the backdrop of a group that shows nothing
BACKDROPS: dict[str, tuple[int, int, int]] = {  # backdrops a square can stand on (clip_needle asks for them)
    "grey": (128, 128, 128),
    "white": (235, 235, 235),
    "brown": (115, 70, 30),
    "navy": (25, 30, 95),
}
BACKDROP_RGB = {BLANK: (24, 24, 24), **BACKDROPS}
CORNERS = ("top left", "top right", "bottom left", "bottom right")
MARKS = ("square", "disc")  # what can fill a corner


def group(color: str | None = None, corner: str | None = None, backdrop: str = BLANK, mark: str = "square") -> dict:
    """One temporal group: a backdrop and optionally a ``mark`` of ``color`` in ``corner``."""
    return {"backdrop": backdrop, "color": color, "corner": corner, "mark": mark}


def draw_groups(rng: np.random.Generator, config: TaskConfig) -> int:
    """A number of temporal groups, uniform over config.frames (2 frames per group)."""
    return draw_frame_count(rng, config) // TEMPORAL_PATCH


def timestamps_of(count: int, config: TaskConfig) -> list[str]:
    """The timestamp text of each of ``count`` groups, e.g. ``["0.5", "2.5", ...]`` at 1 fps."""
    return [timestamp_text(t) for t in group_timestamps(count * TEMPORAL_PATCH, config.fps)]


def indices_of(count: int) -> list[str]:
    """Groups by index, from 1."""
    return [str(k + 1) for k in range(count)]


def random_corner(rng: np.random.Generator) -> str:
    return CORNERS[randint(rng, 0, len(CORNERS) - 1)]


def two_events(rng: np.random.Generator, config: TaskConfig) -> tuple[list[dict], int, int, str, str]:
    """A blank clip with two squares of different colours: ``(groups, early, late, first, second)``,
    the ``first`` colour at group ``early`` and the ``second`` at the later group ``late``."""
    count = draw_groups(rng, config)
    early, late = sorted(int(g) for g in rng.permutation(count)[:2])
    first, second = (COLOR_NAMES[int(i)] for i in rng.permutation(len(COLOR_NAMES))[:2])
    groups = [group() for _ in range(count)]
    groups[early], groups[late] = group(first, random_corner(rng)), group(second, random_corner(rng))
    return groups, early, late, first, second


def clip_scene(groups: list[dict], config: TaskConfig) -> dict:
    """The scene of a clip: every group's frames, in the video scene layout the baselines read."""
    side = config.clip_size
    return {"width": side, "height": side, "fps": config.fps,
            "frames": [g for g in groups for _ in range(TEMPORAL_PATCH)]}


def draw_frame(side: int, frame: dict) -> Image.Image:
    image = Image.new("RGB", (side, side), BACKDROP_RGB[frame["backdrop"]])
    if frame["color"] is not None:
        half = side // 2
        row, col = divmod(CORNERS.index(frame["corner"]), 2)
        box = (col * half + 1, row * half + 1, (col + 1) * half - 2, (row + 1) * half - 2)
        draw = ImageDraw.Draw(image)
        (draw.rectangle if frame["mark"] == "square" else draw.ellipse)(box, fill=COLORS[frame["color"]])
    return image


def render_clip(scene: dict) -> list[Image.Image]:
    """The frames of a clip scene, in order."""
    return [draw_frame(scene["width"], frame) for frame in scene["frames"]]
