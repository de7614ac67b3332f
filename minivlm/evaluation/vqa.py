"""VQA accuracy: the soft score of answers that several people gave (Antol et al., arXiv 1505.00468).

VQA-style data asks each question of ten annotators. An answer counts as fully right when at
least three of them gave it: ``min(1, matches / 3)``, averaged over the ten ways of leaving one
annotator out, as the official evaluation script does
(github.com/GT-Vision-Lab/VQA, ``PythonEvaluationTools/vqaEvaluation/vqaEval.py``). Before
matching, prediction and references are normalised as that script does: punctuation removed or
turned into spaces, number words to digits, articles dropped, lower case. (Its table of
contractions written without apostrophes, "dont" -> "don't", is left out: the model's answers
are written by the same tokenizer as its training answers.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from minivlm.evaluation.tolerance import METRICS

VQA_METRIC = "vqa"  # the metric's name in evaluation results
ALL_METRICS = (*METRICS, VQA_METRIC)  # every metric evaluation reports, in table order
PUNCTUATION = ";/[]\"{}()=+\\_-><@`,?!"
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = {"a", "an", "the"}
PERIOD = re.compile(r"(?<!\d)\.(?!\d)")  # a full stop that is no decimal point
DIGIT_COMMA = re.compile(r"(\d),(\d)")


def normalise_vqa(answer: str) -> str:
    """The official script's normalisation (see the module docstring)."""
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    for mark in PUNCTUATION:
        # Beside a space, or in a text with a number like "1,000": dropped; between words ("black-white"): a space.
        dropped = f"{mark} " in text or f" {mark}" in text or DIGIT_COMMA.search(text) is not None
        text = text.replace(mark, "" if dropped else " ")
    text = PERIOD.sub("", text)
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(word for word in words if word not in ARTICLES)


def vqa_accuracy(prediction: str, references: Sequence[str]) -> float:
    """``min(1, matches / 3)`` averaged over the references left out one at a time.

    Raises:
        ValueError: fewer than two references (the score needs several annotators).
    """
    if len(references) < 2:
        raise ValueError(f"VQA accuracy needs several reference answers, got {len(references)}; "
                         "score single-answer data by exact match")
    predicted = normalise_vqa(prediction)
    normalised = [normalise_vqa(reference) for reference in references]
    scores = []
    for left_out in range(len(normalised)):
        matches = sum(reference == predicted for index, reference in enumerate(normalised) if index != left_out)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)
