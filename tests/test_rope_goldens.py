"""SPEC.md sections 5 and 7: every golden value, exactly."""

import pytest
import torch

from minivlm.rope import (
    TextSegment as T,
    VisionSegment as V,
    circle_offsets,
    position_ids,
    ptd,
    rotary_cos_sin,
    vision_mask,
)


def rows(*text_rows: str) -> torch.Tensor:
    return torch.tensor([[float(v) for v in row.split()] for row in text_rows])


@pytest.mark.parametrize(
    "segments, options, expected",
    [
        (  # A: x x x <vs> [image 4x6 patches] <ve> x x
            [T(4), V(1, 2, 3), T(3)], {},
            rows("0 1 2 3 4 4 4 4 4 4 7 8 9", "0 1 2 3 4 4 4 5 5 5 7 8 9", "0 1 2 3 4 5 6 4 5 6 7 8 9"),
        ),
        (  # B: <vs> [video 3x4x4] <ve> x x x
            [T(1), V(3, 2, 2), T(4)], {},
            rows("0 1 1 1 1 2 2 2 2 3 3 3 3 4 5 6 7", "0 1 1 2 2 1 1 2 2 1 1 2 2 4 5 6 7",
                 "0 1 2 1 2 1 2 1 2 1 2 1 2 4 5 6 7"),
        ),
        (  # D: x <vs> [video 3x4x4, 0.5 s per grid, 2 tokens/s] <ve> x
            [T(2), V(3, 2, 2, seconds_per_grid=0.5), T(2)], {"tokens_per_second": 2},
            rows("0 1 2 2 2 2 3 3 3 3 4 4 4 4 5 6", "0 1 2 2 3 3 2 2 3 3 2 2 3 3 5 6",
                 "0 1 2 3 2 3 2 3 2 3 2 3 2 3 5 6"),
        ),
        (  # H: x <vs> [image 4x8 patches] <ve> x
            [T(2), V(1, 2, 4), T(2)], {},
            rows("0 1 2 2 2 2 2 2 2 2 6 7", "0 1 2 2 2 2 3 3 3 3 6 7", "0 1 2 3 4 5 2 3 4 5 6 7"),
        ),
    ],
    ids=["A", "B", "D", "H"],
)
def test_mrope_goldens(segments, options, expected):
    assert torch.equal(position_ids(segments, "mrope", **options), expected)


def test_absolute_time_is_floored_in_float_not_cast_first():
    # 0.75 s per grid at 2 tokens/s: tau = floor(1.5 k) = 0, 1, 3, 4; casting 0.75 to int gives 0.
    ids = position_ids([V(4, 1, 1, seconds_per_grid=0.75)], "mrope", tokens_per_second=2)
    assert ids[0].tolist() == [0, 1, 3, 4]
    # Without tokens_per_second (or for images) time is the group index.
    assert position_ids([V(4, 1, 1, seconds_per_grid=0.75)], "mrope")[0].tolist() == [0, 1, 2, 3]


def test_circle_golden_sequence():
    expected = rows(
        "0 1 2 3 10.8868 -5.1650 -4.8868 11.8868 12.8868",
        "0 1 2 10.0711 -2.7735 7.0825 5.1132 11.8868 12.8868",
        "0 1 2 -4.0711 0.8868 7.0825 8.7735 11.8868 12.8868",
    )
    ids = position_ids([T(3), V(1, 2, 2), T(2)], "circle", alpha=0.5, radius=10.0)
    torch.testing.assert_close(ids, expected, atol=1e-4, rtol=0)


def test_circle_ring_golden_3x3():
    expected = torch.tensor([
        (0, 7.0711, -7.0711), (5.845, 2.0148, -7.8598), (8.1624, -4.2575, -3.9049),
        (-7.0711, 0, 7.0711), (3.1716, -8.1016, 4.93), (0.407, -7.2658, 6.8588),
        (-8.1421, 4.5995, 3.5426), (-8.1624, 3.9049, 4.2575), (-8.1016, 3.1716, 4.93),
    ], dtype=torch.float64).T
    torch.testing.assert_close(circle_offsets(3, 3, alpha=0.5, radius=10.0), expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "allocation, theta, expected",
    [
        ("chunked", 1e6, {0: 0.9601703, 1: 0.1223571, 2: -0.7284790, 16: 0.9820539}),
        ("interleaved", 5e6, {0: 0.9601703, 1: 0.0025911, 2: -0.3798998, 3: -0.9736762}),
    ],
)
def test_cos_golden_at_vision_token(allocation, theta, expected):
    cos, sin = rotary_cos_sin(torch.tensor([[6.0], [6.0], [7.0]]), 128, theta, allocation)
    assert cos.shape == sin.shape == (1, 128)
    for channel, value in expected.items():
        assert cos[0, channel].item() == pytest.approx(value, abs=1e-5)
        assert cos[0, channel + 64].item() == cos[0, channel].item()


@pytest.mark.parametrize("design, expected", [("rope1d", 20 / 9), ("mrope", 0.5326)])
def test_ptd_goldens(design, expected):
    segments = [T(2), V(1, 3, 3), T(3)]
    ids = position_ids(segments, design)
    ids = ids[:1] if design == "rope1d" else ids  # a 1D position is a single number
    assert ptd(ids, vision_mask(segments)) == pytest.approx(expected, abs=1e-4)


def test_ptd_circle_is_zero():
    segments = [T(2), V(1, 3, 3), T(3)]
    assert ptd(position_ids(segments, "circle"), vision_mask(segments)) < 1e-6
