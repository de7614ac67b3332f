"""The two video layouts, said plainly: where the temporal encoding acts and where it cannot.

``absolute_time`` puts a clip in one vision block whose temporal ids carry time, so the frequency
allocation and VideoRoPE's spacing ``delta`` decide how time is read. ``timestamps`` gives every
temporal group its own block behind its ``<t seconds>`` text; with one token per group (the
clip tasks at 16 px) each block is a single position, so every design except Circle-RoPE gives
exactly the ids of plain 1D RoPE, and the allocations give exactly the same tables.
"""

from __future__ import annotations

import pytest
import torch

from minivlm.data.tasks import generate, split_config
from minivlm.processing import Processor
from minivlm.rope import get_variant, pair_axes

SAME_IN_TIMESTAMPS = ("rope1d", "mrope", "mrope_interleaved", "videorope")


def clip_segments(tokenizer, layout: str) -> list:
    sample = generate("clip_needle", 0, "val", config=split_config("val", frames=(16, 16)))
    return Processor(tokenizer, patch_size=8, min_pixels=256, video_layout=layout)(sample)["segments"]


def tables(preset: str, segments: list) -> tuple[torch.Tensor, torch.Tensor]:
    variant = get_variant(preset, theta=100.0)
    ids = variant.position_ids(segments)
    return ids, variant.cos_sin(ids, 64)[0]


def test_in_the_timestamps_layout_every_design_but_circle_is_1d_rope(tokenizer):
    segments = clip_segments(tokenizer, "timestamps")
    assert sum(s.num_tokens for s in segments if hasattr(s, "t")) == 8  # 8 groups, one token each
    reference_ids, reference_cos = tables("rope1d", segments)
    for preset in SAME_IN_TIMESTAMPS:
        ids, cos = tables(preset, segments)
        assert torch.equal(ids, reference_ids) and torch.allclose(cos, reference_cos, atol=1e-6), preset
    assert not torch.equal(tables("circle", segments)[0], reference_ids)


def test_in_the_absolute_time_layout_the_allocation_and_delta_act(tokenizer):
    segments = clip_segments(tokenizer, "absolute_time")
    (block,) = [s for s in segments if hasattr(s, "t")]
    assert (block.t, block.h, block.w) == (8, 1, 1)  # one block, time on its temporal ids
    ids = {preset: tables(preset, segments) for preset in SAME_IN_TIMESTAMPS}
    start = segments[0].num_tokens
    video = slice(start, start + 8)
    assert ids["mrope"][0][0, video].tolist() == [start + k for k in range(8)]  # t = s + k
    assert ids["mrope"][0][1, video].unique().tolist() == [start]  # h (and w) constant: time on the t pairs only
    assert ids["videorope"][0][0, video].tolist() == [start + 2 * k for k in range(8)]  # delta = 2
    assert not torch.allclose(ids["mrope"][1], ids["mrope_interleaved"][1])  # the allocation changes the tables


@pytest.mark.parametrize("preset", ["mrope", "mrope_interleaved"])
def test_the_temporal_pairs_are_the_only_ones_that_see_the_clip(tokenizer, preset):
    segments = clip_segments(tokenizer, "absolute_time")
    start = segments[0].num_tokens
    cos = tables(preset, segments)[1][start:start + 8, :32]  # the 8 video tokens, one half of the pairs
    varies = (cos != cos[0]).any(dim=0)
    assert torch.equal(varies, pair_axes(get_variant(preset).allocation, 32) == 0)  # exactly the t pairs
