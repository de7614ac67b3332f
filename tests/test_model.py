"""The VLM: shapes, the ViT's 2D RoPE and frame isolation, merger windows, DeepStack, bad inputs."""

import math
from dataclasses import asdict

import pytest
import torch

from conftest import chat_sample, noise_image
from minivlm.data.collate import Collator
from minivlm.model import VLM, ModelConfig, PatchMerger, vision_rope_cos_sin
from minivlm.model.vision import AbsolutePositions
from minivlm.model.sizes import parameter_counts
from minivlm.rope import apply_rotary


def tiny_config(tokenizer, **overrides) -> ModelConfig:
    """A model small enough for many CPU tests (head dims 32 in the ViT, 64 in the LM)."""
    fields = dict(size="tiny", vocab_size=tokenizer.vocab_size, vit_dim=64, vit_heads=2, vit_depth=2,
                  lm_dim=128, lm_heads=2, lm_kv_heads=1, lm_layers=4)
    return ModelConfig(**{**fields, **overrides})


def training_batch(model: VLM, samples: list[dict], pad_id: int) -> dict:
    return Collator(model.lm.schedule, pad_id, max_tokens=1024)(samples)


@pytest.fixture(scope="module")
def train_samples(processor) -> list[dict]:
    frames = [noise_image(20 + i, 32, 32) for i in range(3)]  # 3 frames -> 2 temporal groups (last repeated)
    return [
        chat_sample(processor, "image", "Which colour?", "red", images=[noise_image(3, 32, 48)]),
        chat_sample(processor, "video", "What moved?", "the dot", videos=[{"frames": frames, "fps": 2.0}]),
        chat_sample(processor, "text", "Say hi.", "hi"),
    ]


@pytest.mark.parametrize("which", [[0], [1], [0, 1, 2]], ids=["image", "video", "mixed"])
def test_forward_shapes_and_loss(tokenizer, train_samples, which):
    model = VLM(tiny_config(tokenizer))
    batch = training_batch(model, [train_samples[i] for i in which], tokenizer.pad_id)
    out = model(batch, return_logits=True)
    rows, length = batch["input_ids"].shape
    assert out.logits.shape == (rows, length, tokenizer.vocab_size) and out.logits.dtype == torch.float32
    assert out.hidden.shape == (rows, length, 128)
    # At init the logits are near-uniform: the loss is close to log(vocab).
    assert abs(out.loss.item() - math.log(tokenizer.vocab_size)) < 0.5
    out.loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if not n.startswith("deepstack"))


def test_loss_counts_answer_tokens_only(tokenizer, train_samples):
    model = VLM(tiny_config(tokenizer))
    batch = training_batch(model, train_samples, tokenizer.pad_id)
    logits = model(batch, return_logits=True).logits
    targets = batch["labels"][:, 1:]
    answer = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[:, :-1][answer], targets[answer], reduction="none")
    out = model(batch)
    assert torch.allclose(out.loss, expected.mean(), atol=1e-5)
    # Each answer token's own loss, row by row (the order answer_index lists them in).
    torch.testing.assert_close(out.answer_losses, expected, atol=1e-5, rtol=1e-5)


def test_vision_rope_golden_and_relative_property():
    head_dim, theta = 16, 10_000.0
    positions = torch.tensor([[3, 5]])
    cos, sin = vision_rope_cos_sin(positions, head_dim, theta)
    # Channels 0..3 rotate with the row, 4..7 with the column, at theta^(-2j/8); 8..15 repeat them.
    freqs = [theta ** (-2 * j / 8) for j in range(4)]
    expected = torch.tensor([3 * f for f in freqs] + [5 * f for f in freqs]).repeat(2)
    assert torch.allclose(cos[0], expected.cos(), atol=1e-6) and torch.allclose(sin[0], expected.sin(), atol=1e-6)
    # q.k after rotation depends only on the (row, col) offset between the two patches.
    q, k = torch.randn(2, head_dim, dtype=torch.float64).float()

    def score(a, b):
        cos, sin = vision_rope_cos_sin(torch.tensor([a, b]), head_dim, theta)
        return (apply_rotary(q, cos[0], sin[0]) * apply_rotary(k, cos[1], sin[1])).sum()

    assert torch.allclose(score((1, 2), (4, 0)), score((7, 9), (10, 7)), atol=1e-5)
    assert not torch.allclose(score((1, 2), (4, 0)), score((1, 2), (0, 4)), atol=1e-3)


def test_vit_attention_stays_inside_each_frame(tokenizer, processor):
    """Features of one image (or one temporal group of a video) ignore every other frame's pixels."""
    model = VLM(tiny_config(tokenizer)).eval()
    frames = [noise_image(30 + i, 32, 32) for i in range(4)]
    video = chat_sample(processor, "v", "q", "a", videos=[{"frames": frames, "fps": 2.0}])
    image = chat_sample(processor, "i", "q", "a", images=[noise_image(4, 48, 32)])
    batch = training_batch(model, [video, image], tokenizer.pad_id)
    encode = lambda b: model.vision(b["pixel_values"], b["vision_grid"], b["patch_positions"])[0]  # noqa: E731
    together = encode(batch)
    # The same frames encoded alone (different padding in the frame layout) give the same features.
    alone = torch.cat([encode(training_batch(model, [s], tokenizer.pad_id)) for s in (video, image)])
    assert torch.allclose(together, alone, atol=1e-5)
    # Changing the second temporal group of the video leaves the first group and the image alone.
    group = 16  # a 32x32 frame is 4x4 patches
    changed = dict(batch, pixel_values=batch["pixel_values"].clone())
    changed["pixel_values"][group:2 * group] += 1.0
    after = encode(changed)
    assert torch.equal(after[:group], together[:group]) and torch.equal(after[2 * group:], together[2 * group:])
    assert not torch.allclose(after[group:2 * group], together[group:2 * group])


def test_vit_position_switches(tokenizer, processor):
    """With vit_rope and vit_abs_pos off, a frame's patches are a set: permuting them permutes the
    features; either switch on makes the features depend on where each patch lies."""
    image = chat_sample(processor, "i", "q", "a", images=[noise_image(5, 32, 32)])
    batch = training_batch(VLM(tiny_config(tokenizer)), [image], tokenizer.pad_id)
    permutation = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    for vit_rope, vit_abs_pos, equivariant in [(False, 0, True), (True, 0, False), (False, 4, False)]:
        torch.manual_seed(0)
        vision = VLM(tiny_config(tokenizer, vit_rope=vit_rope, vit_abs_pos=vit_abs_pos)).vision.eval()
        base = vision(batch["pixel_values"], batch["vision_grid"], batch["patch_positions"])[0]
        shuffled = vision(batch["pixel_values"][permutation], batch["vision_grid"], batch["patch_positions"])[0]
        assert torch.allclose(shuffled, base[permutation], atol=1e-5) == equivariant


@pytest.mark.parametrize("init", ["sincos", "normal"])
def test_absolute_positions_resample_the_table_to_each_frame(init):
    table = AbsolutePositions(side=4, dim=8, init=init)
    cells = torch.tensor([[row, col] for row in range(4) for col in range(4)])
    same_size = table(cells, torch.tensor([[1, 4, 4]]))  # a 4x4 frame reads the table cell by cell
    assert torch.allclose(same_size, table.table[0].permute(1, 2, 0).reshape(16, 8), atol=1e-6)
    # An 8x8 frame: its 2x2 central patches straddle the table's four central cells equally.
    fine = table(torch.tensor([[row, col] for row in range(8) for col in range(8)]), torch.tensor([[1, 8, 8]]))
    centre = table.table[0, :, 1:3, 1:3].mean(dim=(1, 2))
    assert torch.allclose(fine.view(8, 8, 8)[3:5, 3:5].mean(dim=(0, 1)), centre, atol=1e-6)


def test_sincos_table_golden():
    """dim 8: frequencies 1 and 100**-0.5 = 0.1 rad per cell; channels sin, cos of the row, then of the column."""
    table = AbsolutePositions(side=3, dim=8).table[0]
    row, col = 2, 1
    expected = [math.sin(2), math.sin(0.2), math.cos(2), math.cos(0.2),
                math.sin(1), math.sin(0.1), math.cos(1), math.cos(0.1)]
    assert torch.allclose(table[:, row, col], torch.tensor(expected), atol=1e-6)
    assert torch.equal(table[:, 0, 0], torch.tensor([0.0, 0, 1, 1, 0, 0, 1, 1]))
    with pytest.raises(ValueError, match="divisible by 4"):
        AbsolutePositions(side=3, dim=6)
    assert torch.allclose(AbsolutePositions(side=3, dim=8, scale=0.25).table[0], 0.25 * table)


def test_merger_merges_each_window_of_four_consecutive_patches():
    merger = PatchMerger(vit_dim=8, lm_dim=6, window=4).eval()
    patches = torch.randn(12, 8)
    merged = merger(patches)
    assert merged.shape == (3, 6)
    changed = patches.clone()
    changed[5] = torch.randn(8)  # patch 5 lies in window 1 (patches 4..7)
    after = merger(changed)
    assert torch.equal(after[0], merged[0]) and torch.equal(after[2], merged[2])
    assert not torch.allclose(after[1], merged[1])
    # A window is its four patches' features, concatenated in order.
    assert torch.allclose(merged[1], merger.mlp(merger.norm(patches[4:8]).reshape(-1)), atol=1e-6)
    with pytest.raises(ValueError, match="merge windows"):
        merger(patches[:10])


def test_deepstack_off_equals_a_model_without_it(tokenizer, train_samples):
    torch.manual_seed(0)
    stacked = VLM(tiny_config(tokenizer, deepstack_layers=(0, 1))).eval()
    plain = VLM(tiny_config(tokenizer)).eval()
    missing, unexpected = plain.load_state_dict(stacked.state_dict(), strict=False)
    assert not missing and all(key.startswith("deepstack_mergers") for key in unexpected)
    batch = training_batch(plain, train_samples, tokenizer.pad_id)
    with_features = stacked(batch, return_logits=True).logits
    assert not torch.allclose(with_features, plain(batch, return_logits=True).logits, atol=1e-4)
    for merger in stacked.deepstack_mergers:  # a DeepStack that adds zeros is no DeepStack
        torch.nn.init.zeros_(merger.mlp.fc2.weight)
        torch.nn.init.zeros_(merger.mlp.fc2.bias)
    assert torch.allclose(stacked(batch, return_logits=True).logits, plain(batch, return_logits=True).logits,
                          atol=1e-6)
    # DeepStack adds only at vision positions: text-only rows are untouched even with live mergers.
    torch.manual_seed(0)
    live = VLM(tiny_config(tokenizer, deepstack_layers=(1, 0))).eval()
    plain.load_state_dict(live.state_dict(), strict=False)
    text_batch = training_batch(plain, [train_samples[2]], tokenizer.pad_id)
    assert torch.equal(live(text_batch, return_logits=True).logits, plain(text_batch, return_logits=True).logits)


def test_placeholder_count_mismatch_names_both_counts(tokenizer, train_samples):
    model = VLM(tiny_config(tokenizer))
    batch = training_batch(model, [train_samples[0]], tokenizer.pad_id)
    ids = batch["input_ids"].clone()
    first_pad = int((ids[0] == model.config.image_token_id).nonzero()[0])
    ids[0, first_pad] = tokenizer.pad_id
    # Without the collator's vision_index the model finds the placeholders in the ids itself.
    with pytest.raises(ValueError, match=r"has 5 vision placeholder tokens but .* give 6 merged features"):
        model(dict(batch, input_ids=ids, vision_index=None))
    with pytest.raises(ValueError, match="no pixel_values"):
        model(dict(batch, pixel_values=None))


def test_wrong_patch_size_and_missing_design_are_clear(tokenizer, train_samples):
    model = VLM(tiny_config(tokenizer))
    batch = training_batch(model, [train_samples[0]], tokenizer.pad_id)
    with pytest.raises(ValueError, match="build the Processor with the model's patch_size"):
        model(dict(batch, pixel_values=batch["pixel_values"][:, :-4]))
    circle = VLM(tiny_config(tokenizer, rope={"variant": "circle"}))
    with pytest.raises(ValueError, match="collate with the model's schedule"):
        circle(batch)


def test_named_sizes_parameter_counts():
    totals = {size: parameter_counts(ModelConfig(size=size))["total"] for size in ("tiny", "small", "base")}
    assert 2e6 < totals["tiny"] < 10e6
    assert 10e6 < totals["small"] < 100e6
    assert 150e6 < totals["base"] < 250e6


def test_bad_configs_fail_at_construction():
    with pytest.raises(ValueError, match="lm_kv_heads=3 must divide lm_heads"):
        ModelConfig(lm_kv_heads=3)
    with pytest.raises(ValueError, match="unknown model size"):
        ModelConfig(size="huge")
    with pytest.raises(ValueError, match="deepstack_layers"):
        ModelConfig(deepstack_layers=(7,))
    with pytest.raises(ValueError, match="vit_abs_pos_init='zeros'"):
        ModelConfig(vit_abs_pos_init="zeros")
    with pytest.raises(ValueError, match="vit_abs_pos_scale must be a positive number"):
        ModelConfig(vit_abs_pos_scale=0)


def test_a_saved_config_with_a_field_this_version_lacks_is_a_value_error_naming_it():
    saved = asdict(ModelConfig(size="tiny"))
    assert ModelConfig.from_saved(saved) == ModelConfig(size="tiny")
    saved["merger_skip"] = False  # a field since removed
    saved["rope"]["spin"] = 1
    with pytest.raises(ValueError, match=r"does not have: \['merger_skip', 'rope.spin'\], so the checkpoint"):
        ModelConfig.from_saved(saved)
