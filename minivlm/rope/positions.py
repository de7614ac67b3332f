"""Position designs: which 3D position id ``(t, h, w)`` every token of a sequence gets.

All designs agree on text: a text token at position ``p`` gets ``(p, p, p)``, so a text-only
sequence is plain 1D RoPE whatever the design. They differ on vision blocks (SPEC.md
section 3; ``s`` is the next free position when the block starts):

- ``rope1d`` flattens the block: every token takes the next integer (Circle-RoPE's "Hard").
- ``mrope`` (Qwen2-VL, arXiv 2409.12191 section 2.1) decomposes the position: token ``(k, y, x)``
  gets ``(s + tau(k), s + y, s + x)``; text resumes at ``1 + max`` of the block. With
  ``tokens_per_second`` and a video's ``seconds_per_grid``, ``tau(k)`` is absolute time
  (Qwen2.5-VL, arXiv 2502.13923 section 2.1): ``floor(k * seconds_per_grid * tokens_per_second)``.
- ``circle`` (Circle-RoPE, arXiv 2505.16416 section 3) puts the block on a ring orthogonal to the
  text diagonal, see :mod:`minivlm.rope.circle`.
- ``videorope`` (VideoRoPE, arXiv 2502.05173 section 3.2-3.3) lays frames along the diagonal:
  ``t = s + delta * k`` and the spatial ids are centred on ``t``; text resumes at ``1 + max(t)``.

Ids are built one segment at a time with tensor ops (never one token at a time) in float64, and
returned as float32 ``(3, L)``. Every design also reports the *next position*: the id the first
token after the sequence takes on all three rows, which KV-cached decoding continues from.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from minivlm.rope.circle import circle_offsets
from minivlm.rope.segments import Segment, TextSegment, VisionSegment

# Options each design accepts, with their defaults (SPEC.md section 3).
DESIGN_DEFAULTS: dict[str, dict[str, Any]] = {
    "rope1d": {},
    "mrope": {"tokens_per_second": None},
    "circle": {"alpha": 0.5, "radius": 10.0, "temporal_stride": 1.0},
    "videorope": {"delta": 2.0},
}
DESIGNS = tuple(DESIGN_DEFAULTS)


def resolve_design_options(design: str, options: dict[str, Any]) -> dict[str, Any]:
    """The design's full option dict: defaults overridden by ``options``; bad names raise."""
    if design not in DESIGN_DEFAULTS:
        raise ValueError(f"unknown position design {design!r}; valid designs: {', '.join(DESIGNS)}.")
    allowed = DESIGN_DEFAULTS[design]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) or "none"
        raise ValueError(f"design {design!r} has no option(s) {unknown}; its options: {valid}.")
    return {**allowed, **options}


def _block_coordinates(block: VisionSegment) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(k, y, x)`` of every token of a block in raster order, each ``(t*h*w,)`` float64."""
    k, y, x = torch.meshgrid(
        torch.arange(block.t, dtype=torch.float64),
        torch.arange(block.h, dtype=torch.float64),
        torch.arange(block.w, dtype=torch.float64),
        indexing="ij",
    )
    return k.flatten(), y.flatten(), x.flatten()


# A block rule maps (block, start, options) to the block's ids (3, N) and the next position.
BlockRule = Callable[[VisionSegment, float, dict[str, Any]], tuple[torch.Tensor, float]]


def _rope1d_block(block: VisionSegment, start: float, options: dict[str, Any]) -> tuple[torch.Tensor, float]:
    flat = start + torch.arange(block.num_tokens, dtype=torch.float64)
    return flat.expand(3, -1), start + block.num_tokens


def _mrope_block(block: VisionSegment, start: float, options: dict[str, Any]) -> tuple[torch.Tensor, float]:
    k, y, x = _block_coordinates(block)
    tokens_per_second = options["tokens_per_second"]
    if tokens_per_second is not None and block.seconds_per_grid is not None:
        # Absolute time: computed in float, floored once (never cast seconds_per_grid to int).
        k = torch.floor(k * block.seconds_per_grid * tokens_per_second)
    ids = start + torch.stack([k, y, x])
    return ids, float(ids.max()) + 1


def _circle_block(block: VisionSegment, start: float, options: dict[str, Any]) -> tuple[torch.Tensor, float]:
    ring = circle_offsets(block.h, block.w, options["alpha"], options["radius"])  # (3, h*w)
    # Video (our extension): frame group k is its frame's ring shifted by k*stride on all rows.
    shift = options["temporal_stride"] * torch.arange(block.t, dtype=torch.float64)
    ids = start + (ring.unsqueeze(1) + shift.view(1, -1, 1)).reshape(3, -1)
    return ids, float(ids.max()) + 1


def _videorope_block(block: VisionSegment, start: float, options: dict[str, Any]) -> tuple[torch.Tensor, float]:
    k, y, x = _block_coordinates(block)
    t = start + options["delta"] * k
    # Centre the spatial ids on the diagonal; floor division as the official code does.
    h = t + y - (block.h - 1) // 2
    w = t + x - (block.w - 1) // 2
    return torch.stack([t, h, w]), float(t.max()) + 1


BLOCK_RULES: dict[str, BlockRule] = {
    "rope1d": _rope1d_block,
    "mrope": _mrope_block,
    "circle": _circle_block,
    "videorope": _videorope_block,
}


def build_positions(segments: list[Segment], design: str, **options: Any) -> tuple[torch.Tensor, float]:
    """Position ids ``(3, L)`` float32 and the next position, for one sequence.

    Args:
        segments: the sequence as text runs and vision blocks (merged grid).
        design: one of ``rope1d``, ``mrope``, ``circle``, ``videorope``.
        **options: the design's options (see ``DESIGN_DEFAULTS``).

    Returns:
        ``(ids, next_position)``: ``ids[:, i]`` is ``(t, h, w)`` of token ``i``; a token appended
        after the sequence takes ``next_position`` on all three rows.
    """
    options = resolve_design_options(design, options)
    rule = BLOCK_RULES[design]
    parts: list[torch.Tensor] = []
    start = 0.0
    for segment in segments:
        if isinstance(segment, TextSegment):
            parts.append((start + torch.arange(segment.length, dtype=torch.float64)).expand(3, -1))
            start += segment.length
        elif isinstance(segment, VisionSegment):
            ids, start = rule(segment, start, options)
            parts.append(ids)
        else:
            raise ValueError(
                f"segments must be TextSegment or VisionSegment, got {type(segment).__name__}."
            )
    ids = torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.float64)
    if not math.isfinite(start):
        raise ValueError(f"design {design!r} produced a non-finite position; check its options {options}.")
    return ids.to(torch.float32), start


def position_ids(segments: list[Segment], design: str, **options: Any) -> torch.Tensor:
    """Position ids ``(3, L)`` float32 of a sequence under ``design`` (see :func:`build_positions`)."""
    return build_positions(segments, design, **options)[0]


def next_position(segments: list[Segment], design: str, **options: Any) -> float:
    """The position the first token after ``segments`` takes on all three rows under ``design``."""
    return build_positions(segments, design, **options)[1]
