"""Row and column accuracy of grid-cell answers (minivlm.evaluation.axes) on fabricated predictions."""

import json

import pytest

from minivlm.evaluation.axes import main, sweep_axis_scores


def write_predictions(run_dir, answers):
    run_dir.mkdir(parents=True)
    lines = [json.dumps({"split": split, "task": task, "id": f"{task}-{i}", "prediction": prediction, "answer": answer,
                         "exact": prediction == answer, "near": False, "valid": True})
             for i, (split, task, prediction, answer) in enumerate(answers)]
    (run_dir / "predictions.jsonl").write_text("\n".join(lines) + "\n")


def test_rows_and_columns_are_scored_apart(tmp_path):
    write_predictions(tmp_path / "sweep" / "rows-only", [
        ("val", "grounding", "A1", "A1"),  # both right
        ("val", "grounding", "C2", "A2"),  # right row, wrong column
        ("val", "grounding", "B3", "A3"),  # right row, wrong column
        ("val", "grounding", "red", "B1"),  # no cell: wrong on both axes
        ("extrapolate", "grounding", "A1", "C3"),  # another split: not counted
        ("val", "count", "2", "2"),  # not a cell answer: not counted
    ])
    (scores,) = sweep_axis_scores(tmp_path / "sweep", "val")
    assert (scores.run, scores.task, scores.n) == ("rows-only", "grounding", 4)
    assert (scores.exact, scores.row, scores.column) == pytest.approx((0.25, 0.75, 0.25))


def test_cli_prints_a_table_and_names_missing_predictions(tmp_path, capsys):
    write_predictions(tmp_path / "run", [("extrapolate", "grounding", "B2", "B3")])
    main([str(tmp_path / "run"), "--split", "extrapolate"])
    assert "| run | grounding | 1 | 0.000 | 0.000 | 1.000 |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="python evaluate.py"):
        main([str(tmp_path / "empty")])
