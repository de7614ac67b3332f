"""The cross-modal bias probe: the question-first layout, content-free images, attention weights that
reproduce the model's own attention, a known positional preference recovered, spreads and intervals."""

from __future__ import annotations

import copy
import math
import json
import shutil

import numpy as np
import pytest
import torch
from train_helpers import compose_config, single_thread  # noqa: F401 (autouse fixture)

import minivlm.evaluation.bias as bias
from minivlm.data.tasks import generate, split_config
from minivlm.evaluation.attention_map import answer_attention, content_free, last_query_weights, location_maps
from minivlm.evaluation.bias import (
    Probe,
    layer_ptd,
    measure_run,
    named_objects,
    object_attention,
    object_cells,
    probe_prompts,
    question_distance,
)
from minivlm.evaluation.bias_report import markdown, seeds_needed, t_interval, write_report
from minivlm.evaluation.bias_stats import (
    block_permutation_p,
    block_shares,
    bootstrap_interval,
    cell_accuracy,
    near_far_gap,
    null_third_gap,
    third_gap,
)
from minivlm.evaluation.targets import resolve_target
from minivlm.model import ModelConfig
from minivlm.model.lm import Attention
from minivlm.rope import TextSegment, VisionSegment, position_ids, ptd, rotary_cos_sin, vision_mask
from minivlm.scoring import Answer
from minivlm.train.run import build_run, train

BIG_IMAGES = ("data.task={image_size: [96, 96], objects: [1, 2]}", "data.max_pixels=9216")  # 6x6 merged tokens


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_run(compose_config(*BIG_IMAGES, "rope=circle_alternate"), tmp_path_factory.mktemp("run"))


def test_question_first_puts_the_question_before_the_image(processor, tokenizer):
    after, first = (processor(generate("grounding", 3, "val", 0, split_config("val", question_first=flag)),
                              prompt_only=True) for flag in (False, True))
    assert torch.equal(torch.sort(after["input_ids"]).values, torch.sort(first["input_ids"]).values)  # same tokens
    for encoded, question_first in ((after, False), (first, True)):
        kinds = [type(s) for s in encoded["segments"]]
        assert kinds == [TextSegment, VisionSegment, TextSegment]
        pad = tokenizer.token_id("<|image_pad|>")
        start = encoded["input_ids"].tolist().index(pad)
        before_image = tokenizer.decode(encoded["input_ids"][:start].tolist(), skip_special_tokens=True)
        assert ("Where is the" in before_image) == question_first
    assert first["segments"][0].length > after["segments"][0].length


def test_question_twice_puts_the_question_on_both_sides_of_the_image(processor, tokenizer):
    samples = [generate("grounding", 3, "val", 0, split_config("val", question_twice=flag)) for flag in (False, True)]
    after, twice = (processor(sample, prompt_only=True) for sample in samples)
    kinds = [type(s) for s in twice["segments"]]
    assert kinds == [TextSegment, VisionSegment, TextSegment]
    ids = twice["input_ids"].tolist()
    pad = tokenizer.token_id("<|image_pad|>")
    start, end = ids.index(pad), len(ids) - ids[::-1].index(pad)
    before_image, after_image = (tokenizer.decode(part, skip_special_tokens=True) for part in (ids[:start], ids[end:]))
    question = samples[0]["messages"][0]["content"][-1]["text"]
    assert question.startswith("Where is the") and question in before_image and question in after_image
    assert twice["segments"][2].length == after["segments"][2].length  # the copy after: the usual prompt's tail
    assert len(ids) > len(after["input_ids"])


def test_content_free_images_are_uniform_and_keep_the_question(processor):
    sample = generate("grounding", 0, "val", 0, split_config("val", image_size=(96, 96)))
    real, blank = processor(sample, prompt_only=True), processor(content_free(sample), prompt_only=True)
    assert torch.equal(real["input_ids"], blank["input_ids"]) and real["pixel_values"].shape == blank["pixel_values"].shape
    assert not torch.equal(real["pixel_values"], real["pixel_values"][:1].expand_as(real["pixel_values"]))
    assert torch.equal(blank["pixel_values"], blank["pixel_values"][:1].expand_as(blank["pixel_values"]))


def test_attention_weights_sum_to_one_and_give_the_layers_own_output(run):
    model = run.module.model.eval()
    samples = [generate("grounding", i, "val", 0, run.datamodule.task_config("val")) for i in range(3)]
    samples[1]["messages"][0]["content"][-1]["text"] += " Answer with one cell."  # a longer prompt: the others padded
    batch = run.datamodule.prompt_collator([run.datamodule.processor(s, prompt_only=True) for s in samples])
    padding = batch["input_ids"] == run.tokenizer.pad_id
    assert padding[0].any() and not padding[1].any()
    weights = answer_attention(model, batch, run.tokenizer.pad_id)  # (layers, B, heads, L)
    assert weights.shape[:3] == (model.config.lm_layers, 3, model.config.lm_heads)
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:3]), atol=1e-5, rtol=0)
    assert float(weights.masked_select(padding[None, :, None, :]).abs().max()) == 0  # no mass on padding keys
    inputs, outputs = [], []

    def keep(module, args, out):
        inputs.append(args[0])
        outputs.append(out)

    hooks = [layer.attn.register_forward_hook(keep) for layer in model.lm.layers]
    with torch.no_grad():
        model({**batch, "labels": None})
    for hook in hooks:
        hook.remove()
    for layer, x, out, w in zip(model.lm.layers, inputs, outputs, weights, strict=True):
        attn = layer.attn
        v = attn.v_proj(x).view(*x.shape[:2], attn.kv_heads, attn.head_dim).transpose(1, 2)
        v = v.repeat_interleave(attn.heads // attn.kv_heads, dim=1)
        last = (w.unsqueeze(2) @ v).squeeze(2).reshape(x.shape[0], -1)  # (B, heads * head_dim)
        torch.testing.assert_close(attn.o_proj(last), out[:, -1], atol=1e-5, rtol=1e-4)


def test_a_content_free_input_under_mrope_prefers_the_image_tokens_nearest_the_question():
    """q = k for every token, small angles: the score falls with the id distance, so under M-RoPE with
    the question after the image the bottom-right token (nearest on both axes) gets the most mass."""
    config = ModelConfig(size="tiny", lm_heads=1, lm_kv_heads=1, vocab_size=8)
    attention = Attention(config, 0)
    with torch.no_grad():
        attention.k_proj.weight.copy_(attention.q_proj.weight)
    segments = [TextSegment(2), VisionSegment(1, 4, 4), TextSegment(3)]
    ids = position_ids(segments, "mrope") * 0.05  # every angle below pi: cos falls with distance
    cos, sin = rotary_cos_sin(ids, config.lm_head_dim, 100.0, "chunked")
    x = torch.randn(1, 1, config.lm_dim).expand(1, ids.shape[1], -1)
    weights = last_query_weights(attention, x, cos[None, None], sin[None, None], torch.ones(1, ids.shape[1], dtype=bool))
    image = weights[0, 0, vision_mask(segments)].reshape(4, 4)
    assert image.argmax() == 15 and image.argmin() == 0
    assert all(image[i, i] < image[i + 1, i + 1] for i in range(3))  # along the diagonal, nearer is heavier


def test_location_maps_average_the_image_mass_per_layer_and_head(run):
    model = run.module.model.eval()
    maps = location_maps(model, probe_prompts(run, "grounding", 4), run.tokenizer.pad_id, 2)
    assert list(maps) == ["6x6"] and maps["6x6"]["n"] == 4
    values = np.array(maps["6x6"]["maps"])
    assert values.shape == (model.config.lm_layers, model.config.lm_heads, 6, 6)
    np.testing.assert_allclose(values.sum(axis=(-1, -2)), maps["6x6"]["image_mass"])
    assert (values > 0).all() and (np.array(maps["6x6"]["image_mass"]) < 1).all()  # text keys take the rest


def test_ptd_per_layer_follows_the_schedule(run):
    segments = [TextSegment(4), VisionSegment(1, 6, 6), TextSegment(9)]
    mrope = ptd(position_ids(segments, "mrope"), vision_mask(segments))
    assert [v.name for v in run.schedule.layers] == ["circle", "mrope"]
    values = layer_ptd(run, segments)
    assert values[0] < 1e-6 and values[1] == pytest.approx(mrope)


def test_the_question_side_decides_which_cells_are_near():
    after = question_distance([TextSegment(4), VisionSegment(1, 6, 6), TextSegment(9)], question_first=False)
    first = question_distance([TextSegment(9), VisionSegment(1, 6, 6), TextSegment(4)], question_first=True)
    assert after.shape == first.shape == (6, 6)
    assert after.argmin() == 35 and after.argmax() == 0  # text after the image: bottom-right nearest
    assert first.argmin() == 0 and first.argmax() == 35  # before it: top-left nearest


def test_a_unique_target_colour_leaves_no_other_object_of_that_colour():
    config = split_config("val", objects=(3, 5), unique_target_color=True)
    for index in range(40):
        objects = generate("grounding", index, "val", 0, config)["meta"]["scene"]["objects"]
        assert all(o["color"] != objects[0]["color"] for o in objects[1:])
    look_alikes = [generate("grounding", i, "val", 0, split_config("val", objects=(3, 5)))["meta"]["scene"]["objects"]
                   for i in range(40)]
    assert any(o["color"] == objects[0]["color"] for objects in look_alikes for o in objects[1:])  # the default keeps them


def test_an_answer_names_an_object_by_its_cell():
    scene = {"width": 96, "height": 96, "grid": 3, "objects": [{"x": 80, "y": 80}, {"x": 50, "y": 10}, {"x": 10, "y": 50}]}
    assert named_objects(scene, "C3") == {"named": 0, "first": 1}  # B1 comes before A2 in raster order
    assert named_objects(scene, " a2.") == {"named": 2, "first": 1} and named_objects(scene, "B2")["named"] == -1


def test_object_cells_are_the_merged_tokens_under_the_objects_centres_the_target_first():
    scene = {"width": 96, "height": 96, "objects": [{"x": 40, "y": 90}, {"x": 0, "y": 0}]}
    assert object_cells(scene, (6, 6)) == [(5, 2), (0, 0)] and object_cells(scene, (3, 3)) == [(2, 1), (0, 0)]


def test_a_head_without_a_preference_gives_the_target_one_share_in_objects(run):
    """With every query zero, each head spreads its attention evenly over all keys: the target's share of
    the mass on the objects is exactly 1 / objects in every prompt, so the mean equals the no-preference value."""
    model = copy.deepcopy(run.module.model).eval()  # the fixture's model stays as it was for the other tests
    count = 12
    objects = [len(generate("grounding", i, "val", 0, run.datamodule.task_config("val"))["meta"]["scene"]["objects"])
               for i in range(count)]
    several = [k for k in objects if k > 1]
    assert several, "the fixture's scenes must hold several objects in some prompts"
    with torch.no_grad():
        for layer in model.lm.layers:
            layer.attn.q_proj.weight.zero_()
        looks = object_attention(run, model, "grounding", count)
    assert looks["n"] == len(several) and looks["no_preference"] == pytest.approx(np.mean([1 / k for k in several]))
    for part in ("target", "distractor"):  # every object alike: the target no more than another
        np.testing.assert_allclose(looks[part]["mean"], looks["no_preference"], rtol=1e-6)
        assert looks[part]["best_head"]["value"] == pytest.approx(looks["no_preference"])
    # The same uniform attention puts 1 / (real tokens) of the mass on each of the question's words.
    lengths = torch.cat([(b["input_ids"] != run.tokenizer.pad_id).sum(dim=1) for b in probe_prompts(run, "grounding", count)])
    for field in ("color", "shape"):
        assert looks["words"][field]["n"] == count
        assert looks["words"][field]["mean"][0][0] == pytest.approx((1 / lengths.double()).mean().item())


def test_spreads_have_their_golden_values_and_intervals_hold_them():
    cells = np.repeat(np.arange(6), 4)  # 4 prompts in each of 6 cells
    hits = np.array([1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], dtype=float)
    accuracy, counts = cell_accuracy(cells, hits, 8)
    np.testing.assert_allclose(accuracy[:6], [1, 0.75, 0.5, 0.25, 0, 0])
    assert np.isnan(accuracy[6:]).all() and counts.tolist() == [4] * 6 + [0, 0]
    assert third_gap(cells, hits) == pytest.approx((1 + 0.75) / 2 - 0)
    distance = np.arange(6.0)[::-1]  # cell 5 nearest, cell 0 farthest
    gap = near_far_gap(distance)
    assert gap(cells, hits) == pytest.approx(0 - (1 + 0.75) / 2)  # the far cells are answered better here
    for statistic in (third_gap, gap):
        low, high = bootstrap_interval(statistic, cells, hits, resamples=300)
        assert low <= statistic(cells, hits) <= high and low < high
    assert null_third_gap(cells, np.ones(24)) == 0  # no variation, nothing to pick
    assert 0 < null_third_gap(cells, hits) < third_gap(cells, hits)
    with pytest.raises(ValueError, match="cell indices"):
        cell_accuracy(np.array([0, 9]), np.array([1, 0]), 6)
    with pytest.raises(ValueError, match="no prompts"):
        bootstrap_interval(third_gap, np.array([], dtype=int), np.array([]))


def test_seed_and_rope_shares_of_a_block_table_and_their_permutation_p_values():
    # Additive: rope effects 0 and 0.1, seed effects 0, 0.2, 0.4, nothing else.
    additive = np.array([[0.0, 0.2, 0.4], [0.1, 0.3, 0.5]])
    shares = block_shares(additive)  # sums of squares: rope 3 * 2 * 0.05^2, seed 2 * 2 * 0.2^2
    assert shares == pytest.approx({"seed": 0.16 / 0.175, "rope": 0.015 / 0.175, "residual": 0.0, "residual_std": 0.0},
                                   abs=1e-12)
    # Residuals +-(1/3, -2/3, 1/3) thousandths: their sum of squares over (2 - 1)(3 - 1) degrees of freedom.
    interacting = np.array([[0.50, 0.51, 0.52], [0.501, 0.513, 0.521]])
    shares = block_shares(interacting)
    assert shares["residual_std"] == pytest.approx((2 / 3) ** 0.5 * 1e-3)
    assert shares["seed"] + shares["rope"] + shares["residual"] == pytest.approx(1.0)
    # Five ropes that follow their seed: the seed is significant, identical rows leave nothing to the rope.
    following = np.array([[-0.2, 0.05, 0.2]] * 5) + np.array([0.0, 0.01, -0.01, 0.02, -0.02])[:, None] * [[1, -1, 1]]
    assert block_permutation_p(following, "seed") < 0.01
    assert block_permutation_p(np.array([[-0.2, 0.05, 0.2]] * 5), "rope") == 1.0
    with pytest.raises(ValueError, match="at least 2 x 2"):
        block_shares(np.array([[0.1, 0.2, 0.3]]))
    with pytest.raises(ValueError, match="factor must be"):
        block_permutation_p(additive, "layer")


def test_rankings_say_when_seeds_cannot_rank():
    assert t_interval([0.5, 0.6, 0.7]) == pytest.approx((0.6 - 4.303 * 0.1 / 3**0.5, 0.6 + 4.303 * 0.1 / 3**0.5))
    assert seeds_needed(0.05, 0.05) == pytest.approx(2 * (1.959964 + 0.841621) ** 2, rel=1e-4)  # about 16

    def result(rope: str, seed: int, accuracy: float) -> dict:
        summary = {"n": 10, "accuracy": accuracy, "by_objects": {"1": accuracy}, "third_gap": 0.3, "third_gap_ci": [0.1, 0.5],
                   "third_gap_null": 0.2, "near_far": 0.0, "near_far_ci": [-0.1, 0.1],
                   "names_first": 0.5, "names_first_fair": 0.5}
        layout = {"ptd": 0.0, "question_distance": [[0.0]], "question_first": False}
        return {"run": f"{rope}-{seed}", "rope": rope, "seed": seed, "question_first": False,
                "tasks": {"grounding": {"summary": summary, "layout": layout, "records": []}}}

    close = [result(rope, seed, accuracy) for rope, row in zip(["circle", "circle_alternate"], [[0.50, 0.51, 0.52],
             [0.501, 0.513, 0.521]]) for seed, accuracy in enumerate(row)]
    text = markdown(close, "cmd")
    assert "cannot rank the schedules by accuracy" in text
    # The two schedules move with their seed: paired by seed, the spread left is the residual's.
    assert "| accuracy | 2 x 3 |" in text and "| 0.001 |" in text.split("### Seed against rope")[1].split("###")[0]
    assert (f"Paired by seed (each seed's runs share their start and batches), the spread of a schedule around its "
            f"seed's mean is 0.001: about {math.ceil(seeds_needed(0.005 / 3, (2 / 3) ** 0.5 * 1e-3))} and") in text
    apart = [result(rope, seed, 0.3 * r + 0.01 * seed) for r, rope in enumerate(["circle", "circle_alternate"])
             for seed in range(3)]
    text = markdown(apart, "cmd")
    assert "the ranking by accuracy holds" in text and "| 1 | circle_alternate |" in text
    against = markdown(close + [result("mrope", seed, 0.49 + 0.01 * seed) for seed in range(2)], "cmd")
    paired = against.split("### Against M-RoPE, paired by seed")[1].split("###")[0]
    # Minus mrope at seeds 0 and 1: circle 0.010 twice (no spread), circle_alternate 0.011 and 0.013
    # (t-interval 0.012 +- 12.706 * 0.0014 / sqrt 2); third gaps equal.
    assert "| circle | 0, 1 | +0.010 [+0.010, +0.010] | +0.000 [+0.000, +0.000] |" in paired
    half = 12.706 * (0.002 / 2 ** 0.5) / 2 ** 0.5  # stdev of 0.011 and 0.013, over sqrt 2 seeds
    assert f"| circle_alternate | 0, 1 | +0.012 [{0.012 - half:+.3f}, {0.012 + half:+.3f}] |" in paired
    assert "paired by seed" not in text  # without mrope, no such table
    single = markdown([result(rope, 0, 0.5 + 0.1 * r) for r, rope in enumerate(["circle", "circle_alternate"])], "cmd")
    assert "One seed per schedule: no interval, so no ranking by accuracy yet." in single
    assert "| 0.600 | 1: 0.60 |" in single and "nan" not in single.split("### ")[0]  # one seed: no ± spread
    mixed = markdown([result("circle", 0, 0.5)] + [result("circle_alternate", seed, 0.6 + 0.01 * seed) for seed in range(2)],
                     "cmd")
    assert "| 2 | circle | 0.500 | none (one seed) |" in mixed and "nan" not in mixed
    assert "cannot rank the schedules by accuracy" in mixed  # a schedule without an interval cannot be placed


@pytest.mark.slow
def test_a_run_is_measured_once_resumed_and_reported(tmp_path, monkeypatch):
    folder = tmp_path / "runs" / "grounding"
    train(compose_config(*BIG_IMAGES, "data.task.question_first=true", "data.curriculum=[]", "steps=1",
                         "eval_every=1"), folder)
    result = measure_run(resolve_target(folder), Probe(answers=6, attention=3))
    parts = result["tasks"]["grounding"]
    assert result["question_first"] and parts["layout"]["question_first"]
    assert len(parts["records"]) == 6 and all(r["grid"] == [6, 6] for r in parts["records"])
    counts = [r["objects"] for r in parts["records"]]
    assert set(counts) <= {1, 2} and sorted(parts["summary"]["by_objects"]) == sorted(set(counts))
    assert parts["attention"]["6x6"]["n"] == parts["attention_content_free"]["6x6"]["n"] == 3
    looks = parts["object_attention"]
    several = sum(r["objects"] > 1 for r in parts["records"][:3])  # the attention's prompts are the answers' first 3
    assert looks["n"] == several and (several == 0 or 0 <= looks["target"]["best_head"]["value"] <= 1)
    assert looks["words"]["color"]["n"] == 3 and 0 < looks["words"]["color"]["best_head"]["value"] < 1
    assert np.array(parts["layout"]["question_distance"]).argmin() == 0  # question first: top-left nearest
    final = json.loads((folder / "final_eval.json").read_text())["accuracy"]["grounding"]
    assert parts["final"] == {"accuracy": final, "chance": pytest.approx(1 / 9, abs=1e-4)}  # its own final evaluation
    stored = json.loads((folder / "bias.json").read_text())
    assert stored["tasks"]["grounding"]["records"] == parts["records"]

    def no_answers(*args, **kwargs):
        raise AssertionError("a measured run must not be answered again")

    monkeypatch.setattr(bias, "answer_prompts", no_answers)
    assert measure_run(resolve_target(folder), Probe(answers=6, attention=3))["tasks"] == result["tasks"]
    written = write_report([result], tmp_path / "report", "cmd")
    assert {p.name for p in written} >= {"bias.md", "bias.csv", "ptd_vs_gap.png", "accuracy_question_first_grounding.png",
                                         "attention_question_first_grounding_own.png",
                                         "attention_question_first_grounding_content_free.png"}
    report = (tmp_path / "report" / "bias.md").read_text()
    assert "| mrope_interleaved | 1 |" in report
    assert "### What the answer position reads" in report and "| mrope_interleaved | 0 | " in report
    closed = (final - 1 / 9) / (1 - 1 / 9)
    assert f"| {final:.3f} ({closed:.2f}) |" in report
    probe_closed = (parts["summary"]["accuracy"] - 1 / 9) / (1 - 1 / 9)
    assert ("Runs short of half the gap on the probe's prompts: none." in report) == (probe_closed >= 0.5)
    assert "One seed per schedule" not in report  # a single variant: no staggered ranking at all
    with pytest.raises(SystemExit, match="must be >= 1"):
        bias.main([str(folder), "--answers", "0"])

    # Kept measurements report the run after its folder is gone, and equal the report made from the folder.
    kept = tmp_path / "kept"
    bias.main([str(folder), "--answers", "6", "--attention", "3", "--keep", str(kept), "--report", str(tmp_path / "a")])
    shutil.rmtree(folder)
    bias.main(["--keep", str(kept), "--report", str(tmp_path / "b")])
    assert [p.name for p in kept.iterdir()] == ["grounding.json.gz"]
    assert (tmp_path / "a" / "bias.csv").read_text() == (tmp_path / "b" / "bias.csv").read_text()
    with pytest.raises(SystemExit, match="or --keep"):
        bias.main([])
