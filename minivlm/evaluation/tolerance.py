"""Near-miss scores: how close a wrong answer landed, read from the sample's own metadata.

Exact match (:mod:`minivlm.evaluation.scoring`) says whether an answer is right. For answers
with a geometry, a near miss says more about what position encoding the model has learnt: a
grounding answer one cell off still found the right region, a needle answer one second off still
found the right moment. Every sample stores its closed answer set in ``meta["choices"]``, which
tells the kind of answer without naming tasks:

- ``cell`` (grounding, attribute_at ``locate``, compare ``locate``): grid cells such as ``B3``;
  near = Chebyshev distance <= 1 (the true cell or one of its 8 neighbours).
- ``number`` (count, needle ``locate``): counts and timestamps in seconds; near = within
  ``NUMBER_TOLERANCE`` (one object, one second).
- ``label`` (colours, shapes, yes/no, relation words): near = exact.

Read near scores against their chance level: on the shipped 3x3 grid the centre cell is a near
miss of every cell, and a uniform guess is near 49/81 = 0.60 of the time; the shipped videos
(1 fps, 2-frame temporal groups) put adjacent timestamps 2 s apart, so a needle near miss is a
time between two groups, never a neighbouring group.

``valid`` says whether the answer is one of the choices at all (the model learnt the format).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from minivlm.scoring import normalise

CELL = re.compile(r"^([a-z])([1-9][0-9]*)$")  # normalised cell name: column letter, 1-based row
NUMBER_TOLERANCE = 1.0  # largest |prediction - answer| of a near miss: one object (count), one second (needle)


class Judgement(NamedTuple):
    """The three scores of one answer."""

    exact: bool  # equal after normalisation (what TaskScores counts)
    near: bool  # exact, or a near miss of the answer's kind (see the module docstring)
    valid: bool  # one of the sample's choices


METRICS = Judgement._fields  # the scores averaged per task by evaluation and aggregation


def parse_cell(text: str) -> tuple[int, int] | None:
    """``(row, col)`` of a cell name such as ``B3`` -> ``(2, 1)``; None when ``text`` is no cell."""
    match = CELL.match(normalise(text))
    if match is None:
        return None
    return int(match.group(2)) - 1, ord(match.group(1)) - ord("a")


def parse_number(text: str) -> float | None:
    try:
        return float(normalise(text))
    except ValueError:
        return None


def answer_kind(choices: Sequence[str]) -> str:
    """``cell``, ``number`` or ``label``: what every choice of a sample parses as."""
    if choices and all(parse_cell(c) is not None for c in choices):
        return "cell"
    if choices and all(parse_number(c) is not None for c in choices):
        return "number"
    return "label"


def is_near(prediction: str, answer: str, kind: str) -> bool:
    """A near miss (or a hit) of an answer of the given kind."""
    if kind == "cell":
        predicted, true = parse_cell(prediction), parse_cell(answer)
        return predicted is not None and max(abs(predicted[0] - true[0]), abs(predicted[1] - true[1])) <= 1
    if kind == "number":
        predicted = parse_number(prediction)
        return predicted is not None and abs(predicted - parse_number(answer)) <= NUMBER_TOLERANCE
    return normalise(prediction) == normalise(answer)


def judge(prediction: str, answer: str, meta: Mapping[str, Any]) -> Judgement:
    """Score one generated answer against the true one and the sample's ``meta["choices"]``.

    Raises:
        ValueError: the metadata has no ``choices`` (not a sample of the shipped synthetic sets).
    """
    if "choices" not in meta:
        raise ValueError(
            f"sample metadata has no 'choices' (keys: {sorted(meta)}); near-miss scores need the closed "
            "answer set that minivlm.data.tasks stores in meta['choices']. Rebuild the set with "
            "`python -m minivlm.data.build`."
        )
    choices = [normalise(c) for c in meta["choices"]]
    exact = normalise(prediction) == normalise(answer)
    near = exact or is_near(prediction, answer, answer_kind(choices))
    return Judgement(exact, near, normalise(prediction) in choices)
