"""Synthetic diagnostic tasks: a registry of task families and the function that makes a sample.

Each family lives in its own module (one `TASK` each); `TASKS` is the registry beside them.
A sample is a pure function of (task, index, split, seed, config), see core.py.

    from minivlm.data.tasks import TASKS, generate, split_config
    sample = generate("grounding", index=0, split="val")
"""

from __future__ import annotations

from minivlm.data.tasks import (
    attribute_at,
    clip_first,
    clip_gap,
    clip_needle,
    clip_what,
    clip_when,
    compare,
    count,
    grounding,
    needle,
    order,
    relation,
)
from minivlm.data.tasks.config import SPLITS, TaskConfig, split_config
from minivlm.data.tasks.core import Problem, Task, generate_sample, pose_problem
from minivlm.data.tasks.mix import MIXES, choose_task, resolve_mix

TASKS: dict[str, Task] = {
    module.TASK.name: module.TASK
    for module in (grounding, attribute_at, relation, count, compare, needle, order,
                   clip_when, clip_what, clip_first, clip_gap, clip_needle)
}


def get_task(name: str) -> Task:
    """The registered task called `name`."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}")
    return TASKS[name]


def generate(task: str, index: int, split: str = "train", seed: int = 0, config: TaskConfig | None = None) -> dict:
    """Sample `index` of task `task` in `split`, in the minivlm sample schema.

    Args:
        task: a name in TASKS.
        index: position in the (task, split, seed) stream, >= 0.
        split: one of SPLITS; val/extrapolate scenes never occur in train.
        seed: stream seed, >= 0.
        config: the distribution; None takes split_config(split).
    Returns:
        {"id", "task", "images", "videos", "messages", "answer", "meta"}.
    """
    return generate_sample(get_task(task), index, split, seed, config)


__all__ = ["MIXES", "SPLITS", "TASKS", "Problem", "Task", "TaskConfig", "choose_task", "generate", "get_task",
           "pose_problem", "resolve_mix", "split_config"]
