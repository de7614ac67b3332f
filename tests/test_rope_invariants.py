"""Invariants of every design and allocation: text-only is 1D RoPE, relative property, circle ring."""

import itertools

import pytest
import torch

from minivlm.rope import (
    ALLOCATIONS, DESIGNS, TextSegment as T, VisionSegment as V, apply_rotary, axis_string,
    circle_offsets, default_sections, pair_axes, position_ids, ptd, rotary_cos_sin, vision_mask,
)


def plain_rope_cos_sin(length: int, head_dim: int, theta: float):
    inv_freq = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angle = torch.arange(length, dtype=torch.float64)[:, None] * inv_freq
    angle = torch.cat([angle, angle], dim=-1)
    return angle.cos().float(), angle.sin().float()


@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("allocation", ALLOCATIONS)
@pytest.mark.parametrize("head_dim", [8, 64, 128])
def test_text_only_equals_plain_rope(design, allocation, head_dim):
    ids = position_ids([T(37)], design)
    assert torch.equal(ids, torch.arange(37.0).expand(3, -1))
    cos, sin = rotary_cos_sin(ids, head_dim, 1e4, allocation)
    ref_cos, ref_sin = plain_rope_cos_sin(37, head_dim, 1e4)
    torch.testing.assert_close(cos, ref_cos, atol=1e-5, rtol=0)
    torch.testing.assert_close(sin, ref_sin, atol=1e-5, rtol=0)


@pytest.mark.parametrize("allocation", ALLOCATIONS)
def test_relative_property_per_row(allocation):
    """q(a) . k(b) depends only on a - b, for shifts along each row separately and together."""
    head_dim, generator = 32, torch.Generator().manual_seed(0)
    q, k = torch.randn(2, head_dim, generator=generator).unbind(0)

    def score(a: torch.Tensor, b: torch.Tensor) -> float:
        ids = torch.stack([a, b], dim=1)  # (3, 2)
        cos, sin = rotary_cos_sin(ids, head_dim, 100.0, allocation)
        return float(apply_rotary(q, cos[0], sin[0]) @ apply_rotary(k, cos[1], sin[1]))

    a, b = torch.tensor([3.0, 5.0, 2.0]), torch.tensor([1.0, 4.0, 7.5])
    base = score(a, b)
    for shift in (torch.tensor([7.0, 0, 0]), torch.tensor([0, -4.0, 0]), torch.tensor([0, 0, 2.5]),
                  torch.tensor([11.0, 3.0, -6.0])):
        assert score(a + shift, b + shift) == pytest.approx(base, abs=1e-4)
    # ... and it does change when the difference changes on a row the allocation reads.
    read_rows = set(pair_axes(allocation, head_dim // 2).tolist())
    for row in read_rows:
        moved = a.clone()
        moved[row] += 1.0
        assert abs(score(moved, b) - base) > 1e-3


def test_pair_axis_maps_released():
    assert axis_string(pair_axes("interleaved", 64)) == "THW" * 20 + "TTTT"
    assert axis_string(pair_axes("lta", 64)) == "HW" * 24 + "T" * 16
    assert axis_string(pair_axes("chunked", 64)) == "T" * 16 + "H" * 24 + "W" * 24
    assert axis_string(pair_axes("1d", 64)) == "T" * 64


def test_default_sections_scale_with_head_dim():
    assert default_sections("chunked", 64) == (16, 24, 24)
    assert default_sections("chunked", 32) == (8, 12, 12)
    assert default_sections("interleaved", 64) == (24, 20, 20)
    assert default_sections("interleaved", 32) == (12, 10, 10)
    assert default_sections("lta", 64) == (16, 24, 24)
    for allocation, pairs in itertools.product(ALLOCATIONS, [4, 12, 16, 24, 48, 96]):
        counts = torch.bincount(pair_axes(allocation, pairs), minlength=3)
        assert tuple(counts.tolist()) == default_sections(allocation, pairs)


@pytest.mark.parametrize("h, w", [(1, 1), (1, 7), (5, 1), (2, 3), (4, 4), (7, 5), (16, 16), (32, 48)])
@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_circle_ring_invariants(h, w, alpha):
    ring = circle_offsets(h, w, alpha=alpha, radius=10.0)
    assert ring.shape == (3, h * w)
    torch.testing.assert_close(ring.sum(0), torch.zeros(h * w, dtype=torch.float64), atol=1e-9, rtol=0)
    torch.testing.assert_close(ring.norm(dim=0), torch.full((h * w,), 10.0, dtype=torch.float64))
    segments = [T(5), V(1, h, w), T(4)]
    assert ptd(position_ids(segments, "circle", alpha=alpha), vision_mask(segments)) < 1e-5


def test_circle_radius_auto():
    ring = circle_offsets(5, 9, radius="auto")  # max(|x'|, |y'|) = 4
    torch.testing.assert_close(ring.norm(dim=0), torch.full((45,), 4.0, dtype=torch.float64))
    ring = circle_offsets(5, 9, radius="auto-2.5")
    torch.testing.assert_close(ring.norm(dim=0), torch.full((45,), 10.0, dtype=torch.float64))


def test_circle_ids_are_fractional_and_text_resumes_after_max():
    ids = position_ids([T(2), V(1, 3, 3), T(1)], "circle")
    block = ids[:, 2:11]
    assert not torch.equal(block, block.round())
    assert ids[0, 11].item() == pytest.approx(block.max().item() + 1, abs=1e-5)


class TestVideos:
    """Videos under every design (SPEC.md section 3)."""

    segments = [T(2), V(3, 2, 3), T(2)]

    def test_rope1d_is_flat(self):
        assert torch.equal(position_ids(self.segments, "rope1d"), torch.arange(22.0).expand(3, -1))

    def test_mrope_time_is_group_index(self):
        ids = position_ids(self.segments, "mrope")
        assert ids[0, 2:20].tolist() == [2.0] * 6 + [3.0] * 6 + [4.0] * 6
        assert ids[:, 20].tolist() == [5.0] * 3  # 1 + max(4, 2 + 1, 2 + 2)

    def test_circle_frames_shift_along_the_text_diagonal(self):
        ids = position_ids(self.segments, "circle", temporal_stride=1.5)
        frames = ids[:, 2:20].reshape(3, 3, 6)
        ring = circle_offsets(2, 3).float()
        for k in range(3):
            torch.testing.assert_close(frames[:, k], 2 + 1.5 * k + ring, atol=1e-5, rtol=0)
        # Each frame's ring is still equidistant from text; the whole video keeps PTD 0 per frame.
        assert ptd(torch.cat([ids[:, :2], frames[:, 1]], 1), torch.tensor([False] * 2 + [True] * 6)) < 1e-5

    def test_videorope_diagonal_layout(self):
        ids = position_ids(self.segments, "videorope", delta=2.0)
        t, h, w = ids[:, 2:20].reshape(3, 3, 2, 3)
        for k in range(3):
            assert torch.all(t[k] == 2 + 2 * k)
            # h = t + y - (H-1)//2 with H=2 -> offset 0; w = t + x - (W-1)//2 with W=3 -> offset 1
            assert h[k].tolist() == [[2 + 2 * k] * 3, [3 + 2 * k] * 3]
            assert w[k].tolist() == [[1 + 2 * k, 2 + 2 * k, 3 + 2 * k]] * 2
        assert ids[:, 20].tolist() == [7.0] * 3  # 1 + max(t) = 1 + 6


def test_ids_are_float32_and_batched_cos_sin():
    ids = torch.stack([position_ids([T(3), V(1, 2, 2), T(1)], d) for d in ("mrope", "circle")])
    assert ids.dtype == torch.float32
    cos, sin = rotary_cos_sin(ids, 16, 1e4, "chunked")
    assert cos.shape == (2, 8, 16)
    single, _ = rotary_cos_sin(ids[1], 16, 1e4, "chunked")
    torch.testing.assert_close(cos[1], single)
