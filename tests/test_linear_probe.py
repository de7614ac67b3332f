"""Linear probes of the vision tokens: scene facts read from the scene, each object read at the token under it
and each cell from the right tokens, a planted linear fact recovered and a random one not, and the command
on the checkpoints of a two-step run."""

from __future__ import annotations

import pytest
import torch
from train_helpers import compose_config, single_thread  # noqa: F401 (autouse fixture)

from minivlm.data.tasks import generate
from minivlm.data.tasks.scene import COLOR_NAMES, SHAPES
from minivlm.evaluation import linear_probe
from minivlm.evaluation.linear_probe import (cell_means, explained_variance, fact_features, majority,
                                             probe_accuracy, scene_facts, scenes, token_grids)
from minivlm.train.run import build_run, train


def test_scene_facts_read_each_object_at_the_token_under_its_centre_and_its_cell():
    sample = {"meta": {"scene": {"width": 90, "height": 90, "grid": 3, "objects": [
        {"shape": "circle", "color": "red", "x": 80, "y": 10, "r": 5},   # row 0, column 2
        {"shape": "square", "color": "blue", "x": 45, "y": 89, "r": 5},  # row 2, column 1
    ]}}}
    facts = scene_facts([sample], [(6, 6)])  # 6x6 tokens of 15 px
    assert facts.colour.tolist() == [COLOR_NAMES.index("red"), COLOR_NAMES.index("blue")]
    assert facts.shape.tolist() == [SHAPES.index("circle"), SHAPES.index("square")]
    assert facts.token == [(0, 0, 5), (0, 5, 3)]
    assert facts.occupied[0].nonzero().flatten().tolist() == [2, 7] and facts.count.tolist() == [2]


def test_the_features_are_the_tokens_under_the_objects_and_the_cell_means(tmp_path):
    run = build_run(compose_config("data.task={image_size: [64, 64]}"), tmp_path)
    samples = [generate("grounding", i, "val", 0, run.datamodule.distribution("val")) for i in range(2)]
    model = run.module.model.eval()
    grids = token_grids(model, run, samples)
    batch = run.datamodule.prompt_collator([run.datamodule.processor(s, prompt_only=True) for s in samples])
    with torch.no_grad():
        patches, _ = model.vision(batch["pixel_values"], batch["vision_grid"], batch["patch_positions"])
        tokens = model.merger(patches)[:16].view(4, 4, -1)  # the first image: 64 px, 4x4 merged tokens
    torch.testing.assert_close(grids[0], tokens)
    cells = cell_means(grids, 3)
    assert cells.shape == (2, 9, run.model_config.lm_dim)
    # Token centres at 1/8, 3/8, 5/8, 7/8 of the side fall in grid rows (and columns) 0, 1, 1, 2.
    torch.testing.assert_close(cells[0, 4], tokens[1:3, 1:3].mean(dim=(0, 1)))  # the middle cell: 2x2 tokens
    torch.testing.assert_close(cells[0, 0], tokens[0, 0])
    torch.testing.assert_close(cells[0, 5], tokens[1:3, 3].mean(dim=0))  # row 1, column 2
    facts = scene_facts(samples, [(4, 4), (4, 4)])
    features = fact_features(grids, facts, 3)
    scene, row, col = facts.token[0]
    torch.testing.assert_close(features["colour"][0][0], grids[scene][row, col])
    assert features["count"][0].shape == (2, 9 * run.model_config.lm_dim)
    vit = token_grids(model, run, samples, "vit")  # the merger's input: a window's four patches side by side
    torch.testing.assert_close(vit[0], patches[:64].reshape(4, 4, 4 * run.model_config.vit_dim))


def test_the_probe_recovers_a_linear_fact_and_not_a_random_one():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(600, 20, generator=generator)
    planted = (x @ torch.randn(20, 3, generator=generator)).argmax(dim=1)
    assert probe_accuracy(x[:480], planted[:480], x[480:], planted[480:]) > 0.9
    noise = torch.randint(0, 3, (600,), generator=generator)
    assert abs(probe_accuracy(x[:480], noise[:480], x[480:], noise[480:]) - 1 / 3) < 0.12
    assert majority(torch.tensor([0, 1, 1, 2]), torch.tensor([1, 1, 0, 2])) == 0.5


def test_explained_variance_is_the_share_of_the_spread_in_the_class_means():
    x = torch.tensor([[0.0, 0], [2, 0], [4, 0], [6, 0]])
    # means 1 and 5 about 3: between 2 * (4 + 4) = 16 of a total 9 + 1 + 1 + 9 = 20
    assert explained_variance(x, torch.tensor([0, 0, 1, 1])) == pytest.approx(0.8)
    assert explained_variance(x, torch.tensor([0, 1, 2, 3])) == pytest.approx(1.0)  # one point per class
    assert explained_variance(x, torch.tensor([0, 1, 1, 0])) == pytest.approx(0.0)  # both means at 3


@pytest.mark.slow
def test_the_command_probes_checkpoints_of_a_run_after_its_initialisation(tmp_path, capsys):
    folder = tmp_path / "run"
    train(compose_config("data.mix=images", "steps=2", "eval_every=2", "keep_every=1"), folder)
    assert {s["task"] for s in scenes(build_run(compose_config("data.mix=images"), tmp_path / "b"), "val", 8)} == {
        "grounding", "attribute_at", "relation", "count"}  # compare's two images have no one scene
    checkpoints = sorted((folder / "checkpoints").glob("step-*.ckpt"), reverse=True)
    linear_probe.main([*map(str, checkpoints), "--scenes", "40"])
    probes, shares = capsys.readouterr().out.split("share of the variance")
    for text, names, width in ((probes, ["initialisation (seed 0)", "step 1", "step 2", "majority class"], 4),
                               (shares, ["initialisation (seed 0)", "step 1", "step 2"], 3)):
        rows = {line.split(" | ")[0].strip("| "): [float(v) for v in line.strip(" |").split(" | ")[1:]]
                for line in text.splitlines() if line.startswith("| ") and not line.startswith("| weights")}
        assert list(rows) == names  # by step
        assert all(len(values) == width and all(0 <= v <= 1 for v in values) for values in rows.values())
    with pytest.raises(SystemExit, match="--scenes must be >= 20"):
        linear_probe.main([str(folder), "--scenes", "5"])
    other = tmp_path / "other"
    train(compose_config("data.mix=images", "steps=1", "eval_every=1"), other)
    with pytest.raises(SystemExit, match="come from 2 runs"):
        linear_probe.main([str(folder), str(other), "--scenes", "20"])
