"""Knobs of the synthetic diagnostic tasks and the three splits.

The splits follow the extrapolation protocol of VideoRoPE (arXiv 2502.05173, section 4,
V-NIAH-D: evaluate on videos longer than any seen in training) and of Circle-RoPE
(arXiv 2505.16416, section 4: larger images than in training): `train` and `val` share one
distribution, `extrapolate` uses larger images and longer videos than `train` ever draws.
Answers live in a fixed vocabulary (grid cells, colours, shapes, digits, yes/no), so a
split changes how many vision tokens the model sees, never which answers exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

SPLITS = ("train", "val", "extrapolate")
SIZE_STEP = 16  # image sides are drawn in multiples of this (the patch 8 x merge 2 token side)
MIN_CELL = 16  # px; a grid cell smaller than this cannot hold a recognisable shape


@dataclass(frozen=True)
class TaskConfig:
    """One sample distribution. Ranges are inclusive (min, max) pairs drawn uniformly per sample."""

    image_size: tuple[int, int] = (112, 160)  # side of a square image in px, drawn in SIZE_STEP steps
    grid: int = 3  # cells per side of the answer grid: columns A.., rows 1..
    objects: tuple[int, int] = (3, 6)  # objects in an image scene (fewer than grid*grid cells)
    frames: tuple[int, int] = (8, 16)  # frames of a video, drawn in steps of 2 (one temporal group)
    frame_size: int = 64  # side of a square video frame in px
    fps: float = 1.0  # frames per second of the given frames (timestamps: frame i at i / fps)
    distractor_period: int = 3  # needle: a look-alike frame every this many temporal groups
    form: str | None = None  # question form; None draws one of the task's forms per sample
    clip_size: int = 16  # side of a clip_* frame in px: 16 = one merged LLM token per temporal group, 32 = four
    depth: tuple[float, float] = (0.0, 1.0)  # clip_needle: where the needle sits, a fraction of the clip
    question_first: bool = False  # the question text before the media instead of after (Circle-RoPE's bias probe)
    question_twice: bool = False  # the question text both before and after the media (see make_sample)
    unique_target_color: bool = False  # grounding: no other object has the target's colour (colour alone finds it)

    def __post_init__(self) -> None:
        for name in ("image_size", "objects", "frames"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"TaskConfig.{name}={(low, high)} must be a (min, max) pair with 0 < min <= max")
        if self.image_size[0] % SIZE_STEP or self.image_size[1] % SIZE_STEP:
            raise ValueError(f"TaskConfig.image_size={self.image_size}: use multiples of {SIZE_STEP}")
        if self.frames[0] < 4:
            raise ValueError(f"TaskConfig.frames={self.frames}: videos need >= 4 frames (two temporal groups)")
        if self.frames[0] % 2 or self.frames[1] % 2:
            raise ValueError(
                f"TaskConfig.frames={self.frames}: use even counts, so that every temporal group of 2 "
                "frames is real and its timestamp is the mean of two real frames"
            )
        if self.grid < 2 or self.image_size[0] // self.grid < MIN_CELL:
            raise ValueError(
                f"TaskConfig.grid={self.grid} on {self.image_size[0]} px images gives cells under "
                f"{MIN_CELL} px; use grid >= 2 and image_size >= grid * {MIN_CELL}"
            )
        if self.objects[1] >= self.grid * self.grid:
            raise ValueError(
                f"TaskConfig.objects={self.objects}: at most grid*grid - 1 = {self.grid**2 - 1} objects "
                "(one per cell, one cell left free)"
            )
        if self.frame_size < 32 or self.distractor_period < 2:
            raise ValueError("TaskConfig needs frame_size >= 32 and distractor_period >= 2")
        if self.clip_size < SIZE_STEP or self.clip_size % SIZE_STEP:
            raise ValueError(f"TaskConfig.clip_size={self.clip_size}: use a multiple of {SIZE_STEP} px (16: one "
                             "merged token per temporal group)")
        if not 0 <= self.depth[0] <= self.depth[1] <= 1:
            raise ValueError(f"TaskConfig.depth={self.depth} must be a (min, max) fraction of the clip, "
                             "0 <= min <= max <= 1")
        for name in ("question_first", "question_twice", "unique_target_color"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"TaskConfig.{name}={getattr(self, name)!r} must be true or false")
        if self.question_first and self.question_twice:
            raise ValueError("TaskConfig.question_first and question_twice are both true: question_twice already "
                             "puts the question before the media (and after it); set one of them")
        if not 0 < self.fps <= 10:
            raise ValueError(
                f"TaskConfig.fps={self.fps}: use 0 < fps <= 10, so that consecutive temporal groups "
                "(2 frames apart) get distinct '{t:.1f}' timestamps"
            )


EXTRAPOLATED_FIELDS = ("image_size", "frames")  # what `extrapolate` sets beyond train; user overrides leave them
_SPLIT_DEFAULTS = {
    "train": TaskConfig(),
    "val": TaskConfig(),
    # Longer than any training video and larger than any training image (see the module docstring).
    "extrapolate": TaskConfig(image_size=(224, 224), frames=(32, 32)),
}


def split_config(split: str, **overrides: object) -> TaskConfig:
    """The default TaskConfig of a split, with some fields replaced.

    Args:
        split: one of SPLITS.
        overrides: TaskConfig fields to change, e.g. grid=4.
    Returns:
        the TaskConfig.
    """
    if split not in _SPLIT_DEFAULTS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    return replace(_SPLIT_DEFAULTS[split], **overrides)


def parse_overrides(overrides: Mapping[str, Any] | None, where: str,
                    under: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """TaskConfig overrides as written in a YAML config (lists for ranges) as ``replace`` keywords,
    on top of earlier ones.

    Args:
        overrides: ``{field: value}``; None (all of them, or a field's value) is no override, so a
            config can list every field and set only some.
        where: the config key they came from, named in errors (e.g. ``data.task``).
        under: parsed overrides these apply on top of (the result holds both).
    Raises:
        ValueError: an unknown field, or values TaskConfig rejects (checked now, not in a worker).
    """
    parsed = {key: tuple(value) if isinstance(value, (list, tuple)) else value for key, value in (overrides or {}).items()
              if value is not None}
    known = [field.name for field in fields(TaskConfig)]
    unknown = sorted(set(parsed) - set(known))
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {unknown}; TaskConfig fields are {known} "
                         "(minivlm/data/tasks/config.py).")
    merged = {**(under or {}), **parsed}
    split_config("train", **merged)
    return merged
