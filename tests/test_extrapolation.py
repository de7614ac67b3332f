"""Temporal extrapolation: scaled copies of a trained model, the length x depth grid, resuming, the report."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from train_helpers import compose_config, single_thread  # noqa: F401 (autouse fixture)

import minivlm.evaluation.extrapolation as extrapolation
from minivlm.evaluation.extrapolation import Grid, measure_run
from minivlm.evaluation.extrapolation_report import markdown, write_report
from minivlm.evaluation.targets import resolve_target
from minivlm.rope import rotary_cos_sin
from minivlm.scoring import Answer
from minivlm.train.run import build_run, train

CLIPS = ("data=clips", "data.video_layout=absolute_time", "data.task={frames: [4, 8]}")


def test_a_scaled_copy_has_the_same_weights_and_scaled_tables(tmp_path):
    model = build_run(compose_config(*CLIPS), tmp_path).module.model.eval()
    same = model.with_rope_scaling(None)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values(), strict=True))
    scaling = {"type": "yarn", "factor": 2.0, "original_max_position": 16}
    scaled = model.with_rope_scaling(scaling)
    assert scaled.config.rope.scaling == scaling and model.config.rope.scaling is None
    ids = torch.arange(6.0).expand(1, 3, 6)
    variant = scaled.lm.schedule.layers[0]
    (cos, _), = scaled.lm.rope_tables({variant.design_key: ids}).values()
    expected, _ = rotary_cos_sin(ids, model.config.lm_head_dim, variant.theta, variant.allocation, scaling=scaling)
    assert torch.equal(cos[:, 0], expected)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "clips"
    train(compose_config(*CLIPS, "steps=1", "eval_every=1"), folder)
    return folder


@pytest.mark.slow
def test_every_cell_is_measured_once_and_the_grid_resumes(trained, monkeypatch, tmp_path):
    grid = Grid(tasks=("clip_needle", "clip_first"), groups=(4, 8), depths=(0.0, 1.0), factors=(1.0, 2.0), per_cell=2)
    result = measure_run(resolve_target(trained), grid)
    cells = {(r["task"], r["groups"], r["depth"], r["factor"]) for r in result["records"]}
    # clip_needle at every depth, the other tasks at one: (2 depths + 1) x 2 lengths x 2 factors.
    assert len(cells) == len(result["records"]) == 12 and all(r["n"] == 2 for r in result["records"])
    assert (result["rope"], result["layout"]) == ("mrope_interleaved", "absolute_time")
    stored = json.loads((trained / "extrapolation.json").read_text())
    assert all(r["original_max_position"] > 8 for r in stored["records"].values())  # measured from 4-group prompts
    calls = []

    def fake_answers(model, loader, tokenizer, max_new_tokens):
        calls.append(loader.dataset.keys[0])
        return [Answer(f"x{i}", task, "grey", "grey") for i, (task, _) in enumerate(loader.dataset.keys)]

    monkeypatch.setattr(extrapolation, "answer_prompts", fake_answers)
    again = measure_run(resolve_target(trained), Grid(**{**grid.__dict__, "groups": (4, 8, 16)}))
    assert len(calls) == 6 and len(again["records"]) == 18  # only the new length was measured
    linear_grid = Grid(**{**grid.__dict__, "scaling": "linear", "factors": (2.0,)})
    linear = measure_run(resolve_target(trained), linear_grid)
    assert len(calls) == 12 and {r["scaling"] for r in linear["records"]} == {"linear"}  # beside the yarn cells
    assert len(json.loads((trained / "extrapolation.json").read_text())["records"]) == 12 + 6 + 6
    moved = shutil.copytree(trained, tmp_path / "moved")  # a run folder copied elsewhere keeps its cells
    assert len(measure_run(resolve_target(moved), linear_grid)["records"]) == 6 and len(calls) == 12
    written = write_report([again], Grid(**{**grid.__dict__, "groups": (4, 8, 16)}), tmp_path / "report", "cmd")
    assert {path.name for path in written} >= {"extrapolation.md", "extrapolation.csv", "length_clip_needle.png",
                                               "vniah_map_factor1.png", "vniah_map_factor2.png"}
    assert "| mrope_interleaved | absolute_time | 1 |" in (tmp_path / "report" / "extrapolation.md").read_text()


def test_the_report_averages_depths_and_seeds_and_sets_apart_the_runs_that_did_not_learn():
    grid = Grid(groups=(4, 8), depths=(0.0, 1.0), factors=(1.0, 2.0))

    def run(name: str, seed: int, exact: dict[tuple[int, float], float]) -> dict:
        records = [{"task": "clip_needle", "groups": g, "depth": d, "factor": f, "exact": exact[(g, f)] + d / 10}
                   for g in grid.groups for d in grid.depths for f in grid.factors]
        return {"run": name, "rope": "mrope", "seed": seed, "layout": "absolute_time", "records": records}

    learnt = [run("a", 0, {(4, 1.0): 0.95, (8, 1.0): 0.2, (4, 2.0): 0.6, (8, 2.0): 0.5}),
              run("b", 1, {(4, 1.0): 0.95, (8, 1.0): 0.4, (4, 2.0): 0.8, (8, 2.0): 0.7})]
    failed = run("c", 2, {(4, 1.0): 0.45, (8, 1.0): 0.3, (4, 2.0): 0.3, (8, 2.0): 0.3})
    text = markdown([*learnt, failed], grid, "cmd")
    every, kept = text.split("## clip_needle: the runs that learned it")
    # depths 0 and 1 add 0 and 0.1: a run's cell is its value + 0.05; seeds a, b, c at 8 groups x1: 0.25, 0.45, 0.35
    assert "| mrope | absolute_time | 3 | x1 | 0.83 ± 0.29 | 0.35 ± 0.10 |" in every
    assert "| mrope | absolute_time | x2 | 0.55 | 0.35 |" in every  # x2 is best beyond 4 groups
    assert "left out: c." in kept and "| mrope | absolute_time | 2 | x2 | 0.75 ± 0.14 | 0.65 ± 0.14 |" in kept
