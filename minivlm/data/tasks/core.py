"""From a task's problem (scene + question) to a sample of the minivlm sample schema.

Every sample is a pure function of (task, split, seed, index): the random generator is
seeded with all four, so a sample can be regenerated anywhere (in any DataLoader worker or
DDP rank) without storing it. A task only poses problems; this module picks the form,
enforces the split's scene partition (scene.is_held_out) and builds the chat messages.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from minivlm.data.tasks.config import SPLITS, TaskConfig, split_config
from minivlm.data.tasks.scene import is_held_out, scene_hash

MAX_TRIES = 1000  # scene draws before giving up on the split partition (held-out accepts 1 in 8)


@dataclass(frozen=True)
class Problem:
    """What a task draws: everything but the pixels."""

    scene: dict  # JSON-serialisable; determines the pixels (the task's render is a function of it)
    query: dict  # the question's parameters: form, target, asked attribute ...
    question: str  # user text
    answer: str  # exact expected answer
    choices: tuple[str, ...]  # the closed answer set of this question (chance = 1 / len)


@dataclass(frozen=True)
class Task:
    """A task family: how to pose a problem and how to draw its scene."""

    name: str
    media: str  # "image" (render gives the images) or "video" (render gives the frames of one video)
    forms: tuple[str, ...]  # question forms; the first is the default in docs
    pose: Callable[[np.random.Generator, TaskConfig, str], Problem]
    render: Callable[[dict], list[Image.Image]]


def sample_rng(task: str, split: str, seed: int, index: int) -> np.random.Generator:
    """The generator of one sample; streams of different splits/tasks/seeds are independent."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    return np.random.default_rng([seed, SPLITS.index(split), zlib.crc32(task.encode()), index])


def pose_problem(
    task: Task, index: int, split: str = "train", seed: int = 0, config: TaskConfig | None = None
) -> Problem:
    """Draw the problem of sample `index` (no drawing of pixels; cheap, used by the baselines).

    Args:
        task: the task family (see minivlm.data.tasks.TASKS).
        index: sample index within the (task, split, seed) stream, >= 0.
        split: "train" draws only non-held-out scenes, the other splits only held-out ones.
        seed: stream seed, >= 0.
        config: the distribution; None takes split_config(split).
    Returns:
        the Problem.
    """
    config = config or split_config(split)
    rng = sample_rng(task.name, split, seed, index)
    if config.form is None:
        form = task.forms[int(rng.random() * len(task.forms))]
    elif config.form in task.forms:
        form = config.form
    else:
        raise ValueError(f"task {task.name!r} has no form {config.form!r}; choose one of {task.forms} or None")
    held_out = split != "train"
    for _ in range(MAX_TRIES):
        problem = task.pose(rng, config, form)
        if is_held_out(problem.scene) == held_out:
            return problem
    raise RuntimeError(f"{task.name}: no {split} scene in {MAX_TRIES} draws; the config allows too few scenes")


def make_sample(task: Task, problem: Problem, sample_id: str, provenance: dict, question_first: bool = False,
                question_twice: bool = False) -> dict:
    """Render a problem and wrap it in a :class:`minivlm.schema.Sample`.

    Args:
        question_first: the question text before the media (Circle-RoPE, arXiv 2505.16416, section 3.1:
            the text's distance to each image token depends on which side of the image it sits).
        question_twice: the question text before the media and again after it. In a causal LM only
            tokens after the question can read it: with it first, the image tokens can attend to the
            words that name the target; with it after, the answer has them close. Twice gives both
            (the repetition of "Prompt Repetition Improves Non-Reasoning LLMs", Google Research 2025,
            with the media between the two copies).
    """
    pixels = task.render(problem.scene)
    if task.media == "image":
        images, videos = pixels, []
    else:
        images, videos = [], [{"frames": pixels, "fps": float(problem.scene["fps"])}]
    media_parts = [{"type": "image"} for _ in images] + [{"type": "video"} for _ in videos]
    question = [{"type": "text", "text": problem.question}]
    before = question if question_first or question_twice else []
    after = [] if question_first else question
    return {
        "id": sample_id,
        "task": task.name,
        "images": images,
        "videos": videos,
        "messages": [
            {"role": "user", "content": before + media_parts + after},
            {"role": "assistant", "content": [{"type": "text", "text": problem.answer}]},
        ],
        "answer": problem.answer,
        "meta": {
            "scene": problem.scene,
            "query": problem.query,
            "choices": list(problem.choices),
            "scene_hash": scene_hash(problem.scene),
            **provenance,
        },
    }


def generate_sample(
    task: Task, index: int, split: str = "train", seed: int = 0, config: TaskConfig | None = None
) -> dict:
    """Sample `index` of the (task, split, seed) stream, in the sample schema."""
    config = config or split_config(split)
    problem = pose_problem(task, index, split, seed, config)
    provenance = {"split": split, "seed": seed, "index": index}
    return make_sample(task, problem, sample_id(task.name, split, seed, index), provenance, config.question_first,
                       config.question_twice)


def sample_id(task: str, split: str, seed: int, index: int) -> str:
    """The id of a generated sample: ``<task>/<split>/<seed>/<index>``."""
    return f"{task}/{split}/{seed}/{index}"


def parse_sample_id(name: str) -> tuple[str, str, int, int]:
    """``(task, split, seed, index)`` of a generated sample's id (see :func:`sample_id`)."""
    task, split, seed, index = name.split("/")
    return task, split, int(seed), int(index)
