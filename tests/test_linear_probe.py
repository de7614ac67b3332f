"""Linear probes of the vision tokens: scene facts read from the scene, cell features averaged over the right
tokens, a planted linear fact recovered and a random one not, and the command on a one-step run."""

from __future__ import annotations

import pytest
import torch
from train_helpers import compose_config, single_thread  # noqa: F401 (autouse fixture)

from minivlm.data.tasks import generate
from minivlm.data.tasks.scene import COLOR_NAMES, SHAPES
from minivlm.evaluation import linear_probe
from minivlm.evaluation.linear_probe import cell_features, majority, probe_accuracy, scene_facts, scenes
from minivlm.train.run import build_run, train


def test_scene_facts_put_each_object_in_the_cell_under_its_centre():
    sample = {"meta": {"scene": {"width": 90, "height": 90, "grid": 3, "objects": [
        {"shape": "circle", "color": "red", "x": 80, "y": 10, "r": 5},   # row 0, column 2
        {"shape": "square", "color": "blue", "x": 45, "y": 89, "r": 5},  # row 2, column 1
    ]}}}
    facts = scene_facts([sample])
    expected_colour = [-1] * 9
    expected_colour[2], expected_colour[7] = COLOR_NAMES.index("red"), COLOR_NAMES.index("blue")
    assert facts.colour[0].tolist() == expected_colour
    assert facts.shape[0, 2] == SHAPES.index("circle") and facts.shape[0, 7] == SHAPES.index("square")
    assert (facts.shape[0] >= 0).sum() == 2 and facts.count.tolist() == [2]


def test_a_cell_feature_is_the_mean_of_the_tokens_whose_centres_lie_in_it(tmp_path):
    run = build_run(compose_config("data.task={image_size: [64, 64]}"), tmp_path)
    samples = [generate("grounding", i, "val", 0, run.datamodule.task_config("val")) for i in range(2)]
    features = cell_features(run.module.model.eval(), run, samples)
    assert features.shape == (2, 9, run.model_config.lm_dim)
    batch = run.datamodule.prompt_collator([run.datamodule.processor(s, prompt_only=True) for s in samples])
    with torch.no_grad():
        patches, _ = run.module.model.vision(batch["pixel_values"], batch["vision_grid"], batch["patch_positions"])
        tokens = run.module.model.merger(patches)[:16].view(4, 4, -1)  # the first image: 64 px, 4x4 merged tokens
    # Token centres at 1/8, 3/8, 5/8, 7/8 of the side fall in grid rows (and columns) 0, 1, 1, 2.
    torch.testing.assert_close(features[0, 4], tokens[1:3, 1:3].mean(dim=(0, 1)))  # the middle cell: 2x2 tokens
    torch.testing.assert_close(features[0, 0], tokens[0, 0])
    torch.testing.assert_close(features[0, 5], tokens[1:3, 3].mean(dim=0))  # row 1, column 2
    vit = cell_features(run.module.model.eval(), run, samples, "vit")
    windows = patches[:64].view(4, 4, 4, -1).mean(dim=2)  # each merged token's 2x2 patches, consecutive
    assert vit.shape == (2, 9, run.model_config.vit_dim)
    torch.testing.assert_close(vit[0, 4], windows[1:3, 1:3].mean(dim=(0, 1)))


def test_the_probe_recovers_a_linear_fact_and_not_a_random_one():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(600, 20, generator=generator)
    planted = (x @ torch.randn(20, 3, generator=generator)).argmax(dim=1)
    assert probe_accuracy(x[:480], planted[:480], x[480:], planted[480:]) > 0.9
    noise = torch.randint(0, 3, (600,), generator=generator)
    assert abs(probe_accuracy(x[:480], noise[:480], x[480:], noise[480:]) - 1 / 3) < 0.12
    assert majority(torch.tensor([0, 1, 1, 2]), torch.tensor([1, 1, 0, 2])) == 0.5


@pytest.mark.slow
def test_the_command_probes_a_run_against_its_initialisation(tmp_path, capsys):
    folder = tmp_path / "run"
    train(compose_config("data.mix=images", "steps=1", "eval_every=1"), folder)
    assert {s["task"] for s in scenes(build_run(compose_config("data.mix=images"), tmp_path / "b"), "val", 8)} == {
        "grounding", "attribute_at", "relation", "count"}  # compare's two images have no one scene
    linear_probe.main([str(folder), "--scenes", "40"])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split(" | ")[0].strip("| "): [float(v) for v in line.strip(" |").split(" | ")[1:]]
            for line in lines if line.startswith("| ") and not line.startswith("| fact")}
    assert sorted(rows) == ["colour", "count", "occupied", "shape"]
    assert all(0 <= v <= 1 for values in rows.values() for v in values)
    with pytest.raises(SystemExit, match="--scenes must be >= 20"):
        linear_probe.main([str(folder), "--scenes", "5"])
