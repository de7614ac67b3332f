"""Presets, per-layer schedules, decoding positions, and bad input."""

import pytest
import torch

from minivlm.rope import (
    PRESETS, TextSegment as T, VisionSegment as V, build_positions, get_variant, make_schedule,
    next_position, pair_axes, position_ids, rotary_cos_sin,
)


def test_presets_pair_design_and_allocation():
    pairs = {name: (v.design, v.allocation) for name, v in PRESETS.items()}
    assert pairs == {
        "rope1d": ("rope1d", "1d"), "mrope": ("mrope", "chunked"),
        "mrope_interleaved": ("mrope", "interleaved"), "circle": ("circle", "chunked"),
        "videorope": ("videorope", "lta"),
    }


@pytest.mark.parametrize(
    "schedule, expected",
    [
        ("all", ["mrope"] * 5),
        ("alternate", ["circle", "mrope", "circle", "mrope", "circle"]),
        ("lower", ["circle", "circle", "circle", "mrope", "mrope"]),
        ("upper", ["mrope", "mrope", "mrope", "circle", "circle"]),
        (["rope1d", "videorope", "mrope", "circle", "mrope_interleaved"],
         ["rope1d", "videorope", "mrope", "circle", "mrope_interleaved"]),
    ],
)
def test_named_schedules(schedule, expected):
    assert [v.name for v in make_schedule(schedule, 5).layers] == expected


@pytest.mark.parametrize("num_layers", [1, 2, 3, 8, 13])
def test_alternate_any_depth(num_layers):
    names = [v.name for v in make_schedule("alternate", num_layers).layers]
    assert names == ["circle" if l % 2 == 0 else "mrope" for l in range(num_layers)]


def test_schedule_shares_ids_between_variants_of_one_design():
    schedule = make_schedule(["mrope", "mrope_interleaved", "mrope", "circle"], 4)
    assert len(schedule.variants) == 3
    assert schedule.design_keys == tuple(sorted({get_variant("mrope").design_key, get_variant("circle").design_key}))


def test_schedule_options_go_to_the_designs_that_take_them():
    schedule = make_schedule("alternate", 2, theta=5e5, options={"alpha": 0.2, "radius": "auto"})
    circle, mrope = schedule.layers
    assert dict(circle.options)["alpha"] == 0.2 and dict(circle.options)["radius"] == "auto"
    assert dict(mrope.options) == {"tokens_per_second": None}
    assert circle.theta == mrope.theta == 5e5
    with pytest.raises(ValueError, match="delta"):
        make_schedule("all", 2, variant="mrope", options={"delta": 3.0})


@pytest.mark.parametrize("design", ["rope1d", "mrope", "circle", "videorope"])
def test_next_position_continues_each_design(design):
    """Appending text to the prompt gives the decode positions next + j on all rows."""
    prompt = [T(3), V(2, 2, 3)]  # ends right after a vision block
    start = next_position(prompt, design)
    full = position_ids(prompt + [T(4)], design)
    expected = (start + torch.arange(4.0)).expand(3, -1)
    torch.testing.assert_close(full[:, -4:], expected)


def test_schedule_build_positions_per_design():
    schedule = make_schedule("alternate", 4)
    ids, nxt = schedule.build_positions([T(2), V(1, 2, 2), T(1)])
    assert set(ids) == set(nxt) == set(schedule.design_keys)
    for key in schedule.design_keys:
        expected_ids, expected_next = build_positions([T(2), V(1, 2, 2), T(1)], key.split("(")[0])
        assert torch.equal(ids[key], expected_ids) and nxt[key] == expected_next


class TestBadInput:
    def test_unknown_design(self):
        with pytest.raises(ValueError, match="valid designs: rope1d, mrope, circle, videorope"):
            position_ids([T(2)], "mrope3")

    def test_unknown_allocation(self):
        with pytest.raises(ValueError, match="valid allocations: 1d, chunked, interleaved, lta"):
            rotary_cos_sin(torch.zeros(3, 2), 8, 1e4, "spiral")

    def test_unknown_option(self):
        with pytest.raises(ValueError, match="alpha"):
            position_ids([T(2)], "mrope", alpha=0.5)

    def test_sections_must_sum_to_half_head_dim(self):
        with pytest.raises(ValueError, match="summing to head_dim/2 = 32"):
            rotary_cos_sin(torch.zeros(3, 2), 64, 1e4, "chunked", sections=(16, 24, 24))

    def test_sections_the_allocation_cannot_realise(self):
        with pytest.raises(ValueError, match="cannot be realised"):
            pair_axes("interleaved", 64, (16, 24, 24))

    @pytest.mark.parametrize("head_dim", [7, 0, -4])
    def test_odd_or_nonpositive_head_dim(self, head_dim):
        with pytest.raises(ValueError, match="even"):
            rotary_cos_sin(torch.zeros(3, 2), head_dim, 1e4, "chunked")

    @pytest.mark.parametrize("t, h, w", [(0, 2, 2), (1, 0, 2), (1, 2, 0), (-1, 2, 2)])
    def test_zero_sized_grid(self, t, h, w):
        with pytest.raises(ValueError, match="positive int"):
            V(t, h, w)

    @pytest.mark.parametrize("seconds", ["3", 0, -1.0, float("nan"), float("inf"), True])
    def test_seconds_per_grid_must_be_a_positive_finite_number(self, seconds):
        with pytest.raises(ValueError, match="seconds_per_grid must be a positive finite number"):
            V(2, 1, 1, seconds_per_grid=seconds)

    def test_negative_text_length(self):
        with pytest.raises(ValueError, match="non-negative"):
            T(-3)

    def test_bad_radius_and_alpha(self):
        with pytest.raises(ValueError, match="auto-k"):
            position_ids([V(1, 2, 2)], "circle", radius="big")
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            position_ids([V(1, 2, 2)], "circle", alpha=1.5)

    def test_unknown_schedule_and_preset(self):
        with pytest.raises(ValueError, match="valid schedules"):
            make_schedule("zigzag", 4)
        with pytest.raises(ValueError, match="valid presets"):
            make_schedule(["mrope", "nope"], 2)
        with pytest.raises(ValueError, match="one preset name per layer"):
            make_schedule(["mrope"] * 3, 4)

    def test_variant_checks_head_dim_early(self):
        variant = get_variant("mrope", sections=(4, 6, 6))
        variant.check_head_dim(32)
        with pytest.raises(ValueError, match="head_dim 64"):
            variant.check_head_dim(64)
