"""A curriculum: the training distribution changes with the optimizer step, easy scenes first.

Curriculum learning (Bengio et al., ICML 2009, "Curriculum learning", section 2) trains on easy
examples before hard ones. Here it answers a measured plateau (results/learning/README.md): a
from-scratch VLM must discover two things at once to answer "where is the red circle?" among
look-alikes, how to read a position out of the vision tokens and which token to read it from,
and neither has a gradient until the other works. A scene with a single object needs only the
first; once that is learned, more objects make the second a small step.

A stage is ``{steps: N, task: {TaskConfig overrides}, mix: ...}``: N optimizer steps drawn from
the run's distribution (``data.task``) with the stage's overrides on top, and optionally another
task mix. After the last stage the run's own stream takes over. The stage is a pure function of
the optimizer step and a batch a pure function of its index, so a resumed run continues inside
the right stage with exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minivlm.data.streaming import SyntheticStream
from minivlm.data.tasks import split_config
from minivlm.data.tasks.config import parse_overrides


@dataclass(frozen=True)
class Curriculum:
    """Which stream feeds each optimizer step.

    Args:
        stages: ``(steps, stream)`` pairs, in training order.
        final: the stream after the last stage (the run's own distribution).
    """

    stages: tuple[tuple[int, SyntheticStream], ...]
    final: SyntheticStream

    def stream_at(self, step: int) -> SyntheticStream:
        """The stream of 0-based optimizer step ``step``."""
        for steps, stream in self.stages:
            if step < steps:
                return stream
            step -= steps
        return self.final


def build_curriculum(stages: Sequence[Mapping[str, Any]] | None, final: SyntheticStream,
                     task: Mapping[str, Any]) -> Curriculum:
    """The curriculum of ``data.curriculum`` ahead of the run's ``final`` stream.

    Args:
        stages: ``[{steps, task, mix}, ...]`` (``task`` and ``mix`` optional); None or empty: no curriculum.
        final: the run's training stream (its mix and seed are the stages' defaults).
        task: the run's TaskConfig overrides (``data.task``), under each stage's own.
    Raises:
        ValueError: a stage without positive integer ``steps``, with unknown keys, or whose
            overrides (on top of ``task``) TaskConfig rejects.
    """
    built = []
    for index, stage in enumerate(stages or ()):
        unknown = sorted(set(stage) - {"steps", "task", "mix"})
        steps = stage.get("steps")
        if unknown or not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
            raise ValueError(f"data.curriculum[{index}] = {dict(stage)}: a stage is {{steps: N > 0, task: "
                             "{TaskConfig overrides}, mix: optional}, e.g. {steps: 150, task: {objects: [1, 1]}}.")
        config = split_config("train", **parse_overrides(stage.get("task"), f"data.curriculum[{index}].task", task))
        mix = stage.get("mix") or final.probabilities
        built.append((steps, SyntheticStream(mix=mix, split="train", seed=final.seed, config=config)))
    return Curriculum(tuple(built), final)
