"""RoPE scaling (SPEC.md section 8): goldens worked out by hand from the papers' formulas, errors, use."""

import math

import pytest
import torch

from minivlm.rope import (
    RopeScaling,
    TextSegment,
    make_schedule,
    pair_axes,
    position_ids,
    rotary_cos_sin,
    scaled_inverse_frequencies,
)

BASE = 10_000.0 ** -(torch.arange(0, 64, 2, dtype=torch.float64) / 64)  # d = 64, theta 1e4


def test_no_scaling_is_the_plain_table():
    inv, attention = scaled_inverse_frequencies(64, 10_000.0, None)
    assert inv.dtype == torch.float64 and inv.shape == (32,) and attention == 1.0
    assert torch.equal(inv, BASE)


def test_linear_divides_every_frequency():
    inv, attention = scaled_inverse_frequencies(64, 10_000.0, {"type": "linear", "factor": 4.0})
    assert attention == 1.0 and torch.allclose(inv, BASE / 4, rtol=1e-12)


def test_ntk_changes_the_base():  # SPEC.md golden ntk
    inv, attention = scaled_inverse_frequencies(64, 10_000.0, {"type": "ntk", "factor": 4.0})
    # base 1e4 * 4 ** (64 / 62); the fastest pair keeps 1, the slowest is divided by exactly 4.
    assert attention == 1.0 and inv[0] == 1.0
    assert inv[31].item() == pytest.approx(BASE[31].item() / 4, rel=1e-12)
    assert inv[16].item() == pytest.approx((1e4 * 4 ** (64 / 62)) ** -0.5, rel=1e-12)


def test_yarn_golden_ramp_and_temperature():  # SPEC.md golden yarn
    scaling = {"type": "yarn", "factor": 4.0, "original_max_position": 4096}
    inv, attention = scaled_inverse_frequencies(64, 10_000.0, scaling)
    # dim(r) = 64 ln(4096 / (2 pi r)) / (2 ln 1e4): dim(32) = 10.47 -> low 10, dim(1) = 22.51 -> high 23.
    assert torch.equal(inv[:11], BASE[:11])  # ramp 0 up to `low`: unchanged
    assert inv[16].item() == pytest.approx(0.01 * (6 / 13 / 4 + 7 / 13), rel=1e-9)  # ramp 6/13 = 0.006538462
    assert inv[31].item() == pytest.approx(3.333804e-05, rel=1e-6)  # ramp 1: fully interpolated
    assert attention == pytest.approx(0.1 * math.log(4) + 1) == pytest.approx(1.1386294)
    # A 64-position training length puts the ramp at low 0, high 9.
    short, _ = scaled_inverse_frequencies(64, 10_000.0, {**scaling, "original_max_position": 64})
    assert short[0] == 1.0 and short[4].item() == pytest.approx(BASE[4].item() * (4 / 9 / 4 + 5 / 9))
    assert torch.allclose(short[9:], BASE[9:] / 4, rtol=1e-12)


@pytest.mark.parametrize("scaling, message", [
    ({"type": "linear", "factor": 0.5}, "factor must be a number >= 1"),
    ({"type": "rope3", "factor": 2}, "unknown rope scaling type 'rope3'"),
    ({"type": "yarn", "factor": 2}, "yarn scaling needs original_max_position"),
    ({"type": "linear", "factor": 2, "axes": ["x"]}, "name one or more of"),
    ({"type": "linear", "factor": 2, "window": 3}, r"unknown key\(s\) \['window'\]"),
    ({"factor": 2}, "a dict with 'type' and 'factor'"),
])
def test_bad_scalings_raise(scaling, message):
    with pytest.raises(ValueError, match=message):
        scaled_inverse_frequencies(64, 10_000.0, scaling)


def test_every_allocation_scales_the_same_table_before_the_split():
    ids = torch.arange(12.0).expand(3, 12)  # text: every row equal, so every allocation is 1D RoPE
    for allocation in ("1d", "chunked", "interleaved", "lta"):
        cos, sin = rotary_cos_sin(ids, 64, 100.0, allocation, scaling={"type": "linear", "factor": 2})
        plain_cos, plain_sin = rotary_cos_sin(ids / 2, 64, 100.0, allocation)  # interpolation = halved positions
        assert torch.allclose(cos, plain_cos, atol=1e-6) and torch.allclose(sin, plain_sin, atol=1e-6)


def test_yarn_multiplies_cos_and_sin_by_its_attention_factor():
    ids = torch.arange(5.0).expand(3, 5)
    scaling = {"type": "yarn", "factor": 3.0, "original_max_position": 32}
    cos, sin = rotary_cos_sin(ids, 32, 100.0, "interleaved", scaling=scaling)
    inv, attention = scaled_inverse_frequencies(32, 100.0, scaling)
    angle = ids[0, :, None] * inv.float()
    assert torch.allclose(cos, torch.cat([angle.cos(), angle.cos()], -1) * attention, atol=1e-6)
    assert torch.allclose(sin, torch.cat([angle.sin(), angle.sin()], -1) * attention, atol=1e-6)


def test_per_axis_scaling_touches_only_that_rows_pairs():
    ids = torch.tensor([[0.0, 7.0], [0.0, 3.0], [0.0, 5.0]])  # one token at t=7, h=3, w=5
    scaling = {"type": "linear", "factor": 4.0, "axes": ["t"]}
    scaled, _ = rotary_cos_sin(ids, 64, 100.0, "chunked", scaling=scaling)
    plain, _ = rotary_cos_sin(ids, 64, 100.0, "chunked")
    temporal = pair_axes("chunked", 32) == 0
    # Linear on t alone: the temporal pairs read t / 4, the others read h and w as they are.
    expected, _ = rotary_cos_sin(torch.tensor([[0.0, 7 / 4], [0.0, 3.0], [0.0, 5.0]]), 64, 100.0, "chunked")
    assert torch.allclose(scaled, expected, atol=1e-6)
    assert torch.equal(scaled[:, :32][:, ~temporal], plain[:, :32][:, ~temporal])  # spatial pairs untouched
    assert RopeScaling.of(scaling).pair_mask(pair_axes("chunked", 32)).sum() == temporal.sum()


def test_a_schedule_scales_every_layer_and_keeps_the_ids():
    schedule = make_schedule("alternate", 4, variant="circle", partner="mrope",
                             scaling={"type": "ntk", "factor": 2.0})
    assert all(variant.scaling == RopeScaling("ntk", 2.0) for variant in schedule.layers)
    plain = make_schedule("alternate", 4, variant="circle", partner="mrope")
    assert schedule.design_keys == plain.design_keys  # scaling changes frequencies, never positions
    ids = position_ids([TextSegment(4)], "mrope")
    variant = schedule.layers[1]
    assert not torch.allclose(variant.cos_sin(ids, 64)[0], plain.layers[1].cos_sin(ids, 64)[0])
