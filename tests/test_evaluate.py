"""evaluate.py: scoring through the training evaluation path, weights loading, resuming, errors.

An oracle model (it answers with the sample's true answer, or a chosen near miss) checks that
predictions, answers and metadata stay aligned; a tiny run trained in the test checks loading
from a run folder, a checkpoint and an export, the files written, and resuming a sweep.
"""

import json
import os
import shutil
from collections.abc import Callable

import pytest
import torch
from hydra import compose, initialize_config_dir

import minivlm.evaluation.evaluate as evaluate
from minivlm.data.tasks import MIXES
from minivlm.evaluation.evaluate import (
    Settings,
    answer_split,
    evaluate_path,
    load_config,
    load_model,
    parse_rope_scaling,
    summarise_split,
)
from minivlm.evaluation.targets import resolve_target
from minivlm.evaluation.tolerance import parse_cell
from minivlm.train.run import build_run, train

from conftest import REPO

TINY = ["model.lm_dim=64", "model.lm_heads=1", "model.lm_kv_heads=1", "model.vit_dim=64", "model.vit_heads=1",
        "model.lm_layers=2", "steps=2", "data.batch_size=2", "data.num_workers=0", "data.val_per_task=1",
        "data.final_eval_per_task=1", "logging.tensorboard=false", "trainer.enable_progress_bar=false",
        "name=tiny-test", "data=mix"]  # every task, shipped sets
FAST = Settings(per_task=1, num_workers=0)
MIXED = list(MIXES["default"])  # the tasks of data=mix


def tiny_config():
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose("train", overrides=TINY)


class Oracle(torch.nn.Module):
    """Answers every prompt with ``transform(true answer)``: a model whose outputs are known."""

    def __init__(self, tokenizer, transform: Callable[[str], str]) -> None:
        super().__init__()
        self.tokenizer, self.transform = tokenizer, transform
        self.device_anchor = torch.nn.Parameter(torch.zeros(()))  # tells the scoring loop the device

    def generate(self, batch, max_new_tokens, eos_token_id):
        rows = [self.tokenizer.encode(self.transform(answer)) + [eos_token_id] for answer in batch["answers"]]
        width = max(len(row) for row in rows)
        return torch.tensor([row + [eos_token_id] * (width - len(row)) for row in rows])


def near_miss(answer: str) -> str:
    """A wrong answer one step away: the neighbouring column of a cell, a number plus one."""
    cell = parse_cell(answer)
    if cell is not None:
        return f"{'A' if cell[1] == 1 else 'B'}{cell[0] + 1}"
    try:
        return f"{float(answer) + 1:g}"
    except ValueError:
        return "nothing"


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    return build_run(tiny_config(), tmp_path_factory.mktemp("oracle"))


def test_true_answers_score_one_on_every_task(oracle_run):
    scores = summarise_split(answer_split(oracle_run, Oracle(oracle_run.tokenizer, lambda answer: answer), "val", 2))
    assert set(scores) == set(MIXED)
    assert all(values == {"n": 2, "exact": 1.0, "near": 1.0, "valid": 1.0} for values in scores.values())


def test_regenerated_prompts_are_judged_with_their_own_metadata(tmp_path):
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        cfg = compose("train", overrides=[*TINY, "data=clips", "data.task={frames: [24, 32]}"])  # 12 to 16 groups
    run = build_run(cfg, tmp_path)
    scores = summarise_split(answer_split(run, Oracle(run.tokenizer, lambda answer: answer), "val", 4))
    # The shipped clips have 4 to 8 groups: their answer sets would call a time of group 12 invalid.
    assert all(values == {"n": 4, "exact": 1.0, "near": 1.0, "valid": 1.0} for values in scores.values())


def test_near_misses_score_near_but_not_exact(oracle_run):
    scores = summarise_split(answer_split(oracle_run, Oracle(oracle_run.tokenizer, near_miss), "val", 2))
    assert all(values["exact"] == 0.0 for values in scores.values())
    assert scores["grounding"]["near"] == 1.0 and scores["count"]["near"] == 1.0  # one cell, one object off
    assert scores["relation"]["near"] == 0.0 and scores["order"]["near"] == 0.0  # labels: no partial credit


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "tiny-test"
    train(tiny_config(), run_dir)
    return run_dir


@pytest.mark.slow
def test_run_folder_scores_match_training_final_eval(trained_run):
    (result,) = evaluate_path(trained_run, FAST)
    final = json.loads((trained_run / "final_eval.json").read_text())
    assert {task: v["exact"] for task, v in result["scores"]["val"].items()} == final["accuracy"]
    assert set(result["scores"]) == {"val", "extrapolate"}
    assert all(set(tasks) == set(MIXED) for tasks in result["scores"].values())
    assert all(v["n"] == 1 and v["exact"] <= v["near"] for tasks in result["scores"].values() for v in tasks.values())
    assert (result["step"], result["finished"], result["config"]["rope"]) == (2, True, "mrope_interleaved")
    assert json.loads((trained_run / "evaluation.json").read_text()) == result
    assert len((trained_run / "evaluation.csv").read_text().splitlines()) == 1 + 2 * len(MIXED)
    answers = [json.loads(line) for line in (trained_run / "predictions.jsonl").read_text().splitlines()]
    assert sorted((a["split"], a["task"]) for a in answers) == sorted(
        (split, task) for split in ("val", "extrapolate") for task in MIXED)  # one sample per task and split
    assert all(result["scores"][a["split"]][a["task"]]["exact"] == a["exact"] for a in answers)


@pytest.mark.slow
def test_checkpoint_and_standalone_export_load_the_same_weights(trained_run, tmp_path):
    standalone = shutil.copytree(trained_run / "export", tmp_path / "export")  # no run config beside it
    runs, steps = [], []
    for target in (resolve_target(trained_run / "checkpoints" / "last.ckpt"), resolve_target(standalone)):
        fresh = build_run(load_config(target, FAST), target.folder.root).module.model.state_dict()
        model, step = load_model(target)
        steps.append(step)
        runs.append(model.state_dict())
    assert steps == [2, 2]  # a checkpoint knows its step, and an export carries its run's final_eval.json
    assert runs[0].keys() == runs[1].keys() == fresh.keys()
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], fresh[k]) for k in fresh)  # the weights were really loaded


@pytest.mark.slow
def test_sweep_resumes_and_skips_runs_without_checkpoints(trained_run, tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "sweep"
    shutil.copytree(trained_run, sweep / "done")
    (sweep / "partial" / "checkpoints").mkdir(parents=True)  # a job that saved its config, no checkpoint yet
    shutil.copy(trained_run / "checkpoints" / "config.yaml", sweep / "partial" / "checkpoints")
    calls = []

    def fake_answers(run, model, split, per_task):
        calls.append(split)
        scores = {"exact": True, "near": True, "valid": True}
        return [evaluate.JudgedAnswer(split, "count", f"count-{i}", "2", "2", scores) for i in range(per_task)]

    monkeypatch.setattr(evaluate, "answer_split", fake_answers)
    settings = Settings(splits=("val",), per_task=3, num_workers=0)
    (first,) = evaluate_path(sweep, settings)
    assert calls == ["val"] and first["scores"]["val"]["count"]["n"] == 3
    assert "partial has no checkpoints/last.ckpt" in capsys.readouterr().out
    assert evaluate_path(sweep, settings) == [first] and calls == ["val"]  # resumed: nothing re-scored
    os.utime(sweep / "done" / "checkpoints" / "last.ckpt")  # the run trained further: stale result
    evaluate_path(sweep, settings)
    assert calls == ["val", "val"]


@pytest.mark.slow
def test_cli_writes_combined_results(trained_run, tmp_path):
    out = tmp_path / "all.json"
    evaluate.main([str(trained_run), "--per-task", "1", "--workers", "0", "--out", str(out)])
    (result,) = json.loads(out.read_text())["runs"]
    assert result["run"] == "tiny-test" and set(result["scores"]) == {"val", "extrapolate"}
    assert len(out.with_suffix(".csv").read_text().splitlines()) == 1 + 2 * len(MIXED)


@pytest.mark.slow
def test_cli_errors_name_the_problem(trained_run, tmp_path):
    no_ckpt = tmp_path / "run" / "checkpoints"
    no_ckpt.mkdir(parents=True)
    shutil.copy(trained_run / "checkpoints" / "config.yaml", no_ckpt)
    for argv, message in [
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tmp_path / "run"), "--weights", "best"], "no checkpoints/best-\\*.ckpt"),
        ([str(tmp_path / "run")], "no checkpoints/last.ckpt"),
        ([str(no_ckpt / "config.yaml")], "not a minivlm checkpoint"),
        ([str(trained_run), "--splits", "test"], "unknown split 'test'"),
    ]:
        with pytest.raises(SystemExit, match=message):
            evaluate.main(argv)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no minivlm run below"):
        evaluate.main([str(tmp_path / "empty")])


@pytest.mark.slow
def test_a_rope_scaling_is_scored_without_retraining_into_its_own_files(trained_run):
    scaling = parse_rope_scaling(["rope.scaling.type=yarn", "rope.scaling.factor=3",
                                  "rope.scaling.original_max_position=64"])
    assert dict(scaling) == {"type": "yarn", "factor": 3, "original_max_position": 64}
    plain = json.loads((trained_run / "evaluation.json").read_text()) if (trained_run / "evaluation.json").exists() else None
    (scaled,) = evaluate_path(trained_run, Settings(splits=("val",), per_task=1, num_workers=0, rope_scaling=scaling))
    assert scaled["rope_scaling"] == dict(scaling) and (trained_run / "evaluation-yarn3.json").is_file()
    assert (trained_run / "predictions-yarn3.jsonl").is_file()
    if plain is not None:  # the unscaled result is left as it was
        assert json.loads((trained_run / "evaluation.json").read_text()) == plain
    with pytest.raises(ValueError, match="only rope.scaling"):
        parse_rope_scaling(["model.lm_dim=128"])
    with pytest.raises(ValueError, match="factor must be a number >= 1"):
        evaluate_path(trained_run, Settings(splits=("val",), per_task=1, num_workers=0,
                                            rope_scaling=(("type", "linear"), ("factor", 0.5))))
