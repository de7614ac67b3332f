"""Scenes of flat coloured shapes: the vocabulary, the answer grid, placement and drawing.

A scene is a JSON-serialisable dict that fully determines the pixels (`render` is a pure
function of it), so the same dict is the sample's metadata, the input of the answer checkers
and the key of the split hash. Objects are `{"shape", "color", "x", "y", "r"}`: centre pixel
(x, y) and half extent r in px. Drawing uses PIL.ImageDraw primitives only (no per-pixel Python
loops), which keeps generation well above 500 samples/s per core.
The split partition by scene hash is our protocol for "held-out scenes": it guarantees that no
validation image can ever occur in an (unbounded) training stream.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from functools import cache
from typing import TypeVar

import numpy as np
from PIL import Image, ImageDraw

from minivlm.data.tasks.config import SIZE_STEP, TaskConfig

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 50, 50),
    "green": (50, 190, 70),
    "blue": (60, 100, 240),
    "yellow": (240, 220, 50),
    "purple": (160, 70, 210),
    "orange": (250, 150, 40),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
COLOR_NAMES: tuple[str, ...] = tuple(COLORS)
BACKGROUND = (24, 24, 24)
T = TypeVar("T")
HELD_OUT_BUCKETS = 8  # 1 in 8 scene hashes is reserved for val/extrapolate, the rest for train


def randint(rng: np.random.Generator, low: int, high: int) -> int:
    """A uniform integer in [low, high]. Scalar rng.integers costs ~4x rng.random, and a scene draws many."""
    return min(high, low + int(rng.random() * (high - low + 1)))


def coin(rng: np.random.Generator) -> bool:
    return rng.random() < 0.5


def pick(rng: np.random.Generator, options: Sequence[T]) -> T:
    """One element of `options`, uniformly."""
    return options[randint(rng, 0, len(options) - 1)]


def cell_name(row: int, col: int) -> str:
    """Spreadsheet-style cell name: column letter then 1-based row, e.g. (2, 1) -> "B3"."""
    return f"{chr(ord('A') + col)}{row + 1}"


@cache
def cell_names(grid: int) -> tuple[str, ...]:
    """All cell names of a grid in raster order (the answer vocabulary of locate questions)."""
    return tuple(cell_name(row, col) for row in range(grid) for col in range(grid))


def column_name(col: int) -> str:
    return chr(ord("A") + col)


def place_in_cells(rng: np.random.Generator, cells: list[int], grid: int, width: int, height: int) -> list[dict]:
    """Centre and half extent of one object drawn wholly inside each flat cell (row * grid + col).

    The half extent r lies in [0.28, 0.4] of the cell side: more than a quarter of the cell, so
    that for two objects whose column offset exceeds their row offset the pixel offsets keep
    the same dominant axis (what the relation task relies on), and small enough to jitter.
    """
    places = []  # plain Python below: a handful of objects is faster than numpy's per-call overhead
    for cell, (u_r, u_x, u_y) in zip(cells, rng.random((len(cells), 3)).tolist(), strict=True):
        row, col = divmod(cell, grid)
        x0, x1 = -(-col * width // grid), (col + 1) * width // grid - 1  # first and last pixel of the cell
        y0, y1 = -(-row * height // grid), (row + 1) * height // grid - 1
        side = min(x1 - x0, y1 - y0) + 1
        low, high = math.ceil(0.28 * side), int(0.4 * side)
        r = low + int(u_r * (high - low + 1))
        places.append({"x": x0 + r + int(u_x * (x1 - x0 - 2 * r + 1)), "y": y0 + r + int(u_y * (y1 - y0 - 2 * r + 1)),
                       "r": r})
    return places


def draw_side(rng: np.random.Generator, config: TaskConfig) -> int:
    """Side of a square image, uniform over the multiples of SIZE_STEP in config.image_size."""
    low, high = config.image_size
    return SIZE_STEP * randint(rng, low // SIZE_STEP, high // SIZE_STEP)


def scatter(rng: np.random.Generator, grid: int, side: int, attributes: list[tuple[str, str]],
            cells: list[int] | None = None) -> list[dict]:
    """Objects with the given (color, shape) pairs, one per cell, in square image of `side` px.

    Args:
        cells: flat cell indices (row * grid + col), one per object; None draws distinct ones.
    """
    if cells is None:
        cells = [int(c) for c in rng.permutation(grid * grid)[: len(attributes)]]
    places = place_in_cells(rng, cells, grid, side, side)
    return [{"shape": shape, "color": color, **place} for (color, shape), place in zip(attributes, places, strict=True)]


def look_alike(rng: np.random.Generator, color: str, shape: str) -> tuple[str, str]:
    """A (color, shape) pair sharing exactly one attribute with (color, shape)."""
    if coin(rng):
        return color, pick(rng, [s for s in SHAPES if s != shape])
    return pick(rng, [c for c in COLOR_NAMES if c != color]), shape


def random_attributes(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """`count` (color, shape) pairs drawn uniformly and independently."""
    colors, shapes = rng.integers(len(COLOR_NAMES), size=count).tolist(), rng.integers(len(SHAPES), size=count).tolist()
    return [(COLOR_NAMES[c], SHAPES[s]) for c, s in zip(colors, shapes, strict=True)]


def cell_of(obj: dict, grid: int, width: int, height: int) -> tuple[int, int]:
    """(row, col) of the cell holding an object's centre pixel."""
    return obj["y"] * grid // height, obj["x"] * grid // width


def draw_object(draw: ImageDraw.ImageDraw, obj: dict) -> None:
    x, y, r = obj["x"], obj["y"], obj["r"]
    fill = COLORS[obj["color"]]
    if obj["shape"] == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif obj["shape"] == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), fill=fill)
    elif obj["shape"] == "triangle":
        draw.polygon(((x, y - r), (x + r, y + r), (x - r, y + r)), fill=fill)
    elif obj["shape"] == "diamond":
        draw.polygon(((x, y - r), (x + r, y), (x, y + r), (x - r, y)), fill=fill)
    else:
        raise ValueError(f"unknown shape {obj['shape']!r}; choose one of {SHAPES}")


def draw_canvas(width: int, height: int, objects: list[dict]) -> Image.Image:
    """An RGB image of the objects on the plain background, drawn in list order."""
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        draw_object(draw, obj)
    return image


def scene_hash(scene: dict) -> str:
    """Stable hex digest of a scene (key order independent)."""
    return hashlib.sha1(json.dumps(scene, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def is_held_out(scene: dict) -> bool:
    """True for the scenes reserved to val/extrapolate; train only ever uses the others."""
    return int(scene_hash(scene)[:8], 16) % HELD_OUT_BUCKETS == 0
