"""Near-miss and validity judgements (minivlm.evaluation.tolerance) on the shipped answer kinds."""

import pytest

from minivlm.evaluation.tolerance import Judgement, answer_kind, judge, parse_cell

CELLS = {"choices": ["A1", "B1", "C1", "A2", "B2", "C2", "A3", "B3", "C3"]}
COUNTS = {"choices": ["0", "1", "2", "3"]}
TIMES = {"choices": ["0.5", "2.5", "4.5", "6.5"]}
COLOURS = {"choices": ["red", "green", "blue"]}


def test_parse_cell_and_kinds():
    assert parse_cell("B3") == (2, 1)
    assert parse_cell(" c1. ") == (0, 2)  # normalised like exact match
    assert parse_cell("red") is None and parse_cell("3") is None
    assert [answer_kind(m["choices"]) for m in (CELLS, COUNTS, TIMES, COLOURS)] == ["cell", "number", "number", "label"]


@pytest.mark.parametrize("prediction, answer, meta, expected", [
    ("B2", "B2", CELLS, Judgement(True, True, True)),
    ("b2.", "B2", CELLS, Judgement(True, True, True)),       # case and a final full stop forgiven
    ("C3", "B2", CELLS, Judgement(False, True, True)),       # diagonal neighbour: Chebyshev 1
    ("A1", "C1", CELLS, Judgement(False, False, True)),      # two columns away
    ("D2", "C2", CELLS, Judgement(False, True, False)),      # adjacent but off the 3x3 grid: near, not valid
    ("3", "2", COUNTS, Judgement(False, True, True)),        # count within one
    ("0", "2", COUNTS, Judgement(False, False, True)),
    ("three", "2", COUNTS, Judgement(False, False, False)),
    ("3.5", "2.5", TIMES, Judgement(False, True, False)),    # one second off, not a shown timestamp
    ("4.5", "2.5", TIMES, Judgement(False, False, True)),    # the next temporal group: two seconds
    ("green", "red", COLOURS, Judgement(False, False, True)),  # labels: near only when exact
    ("", "red", COLOURS, Judgement(False, False, False)),
])
def test_judge(prediction, answer, meta, expected):
    assert judge(prediction, answer, meta) == expected


def test_judge_needs_choices():
    with pytest.raises(ValueError, match="choices"):
        judge("B2", "B2", {"scene": {}})
