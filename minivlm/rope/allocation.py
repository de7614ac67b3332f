"""Frequency allocations: which position row (t, h or w) each rotary pair reads.

RoPE rotates channel pair ``i`` by ``position * inv_freq[i]``; pair 0 has the highest frequency
(SPEC.md section 1). With 3D positions every pair must read one row, and how the ``P = d/2``
pairs are shared out among t, h and w is the allocation (SPEC.md section 2; the comparison
is the subject of "Revisiting Multimodal Positional Encoding in VLMs", arXiv 2510.23095):

- ``chunked`` (M-RoPE, Qwen2-VL): contiguous chunks, t first. Time gets only the highest
  frequencies and width only the lowest, so each axis sees a narrow frequency band.
- ``interleaved`` (MRoPE-I, Qwen3-VL): ``T H W T H W ... T T``: every axis spans the whole
  spectrum, from high to low frequency.
- ``lta`` (VideoRoPE's low-frequency temporal allocation, arXiv 2502.05173 section 3.1): the
  high-frequency pairs alternate h and w, the lowest ``s_t`` pairs read t, so temporal distance
  is measured with slow, non-oscillating frequencies that resist periodic distractors.
- ``1d``: every pair reads t (plain RoPE).

Sections ``(s_t, s_h, s_w)`` count pairs per axis and must sum to ``P``.
"""

from __future__ import annotations

from functools import lru_cache

import torch

ALLOCATIONS = ("1d", "chunked", "interleaved", "lta")
T, H, W = 0, 1, 2  # position rows


def default_sections(allocation: str, num_pairs: int) -> tuple[int, int, int]:
    """The released sections scaled to ``num_pairs`` (SPEC.md section 2).

    chunked and lta: ``[16, 24, 24]`` at P=64, i.e. h = w = floor(3P/8); interleaved:
    ``[24, 20, 20]`` at P=64, i.e. h = w = floor(5P/16); time takes the rest.
    """
    _check_allocation(allocation)
    if allocation == "1d":
        return (num_pairs, 0, 0)
    spatial = (5 * num_pairs) // 16 if allocation == "interleaved" else (3 * num_pairs) // 8
    return (num_pairs - 2 * spatial, spatial, spatial)


def _check_allocation(allocation: str) -> None:
    if allocation not in ALLOCATIONS:
        raise ValueError(
            f"unknown frequency allocation {allocation!r}; valid allocations: {', '.join(ALLOCATIONS)}."
        )


def _axes_for(allocation: str, num_pairs: int, s_t: int, s_h: int, s_w: int) -> list[int]:
    if allocation == "1d":
        return [T] * num_pairs
    if allocation == "chunked":
        return [T] * s_t + [H] * s_h + [W] * s_w
    if allocation == "interleaved":
        def axis(i: int) -> int:
            if i % 3 == 1 and i < 3 * s_h:
                return H
            if i % 3 == 2 and i < 3 * s_w:
                return W
            return T
        return [axis(i) for i in range(num_pairs)]
    # lta: the s_h + s_w highest frequencies alternate h, w; the lowest s_t read t.
    return [H if j % 2 == 0 else W for j in range(s_h + s_w)] + [T] * s_t


@lru_cache(maxsize=256)
def _pair_axes_cached(allocation: str, num_pairs: int, sections: tuple[int, int, int]) -> torch.Tensor:
    axes = _axes_for(allocation, num_pairs, *sections)
    counts = tuple(axes.count(a) for a in (T, H, W))
    if counts != sections:
        raise ValueError(
            f"sections {list(sections)} cannot be realised by the {allocation!r} allocation with "
            f"{num_pairs} pairs (it would give t/h/w = {list(counts)}); "
            + ("interleaved gives h and w at most one pair in three." if allocation == "interleaved"
               else "1d needs sections (P, 0, 0).")
        )
    return torch.tensor(axes, dtype=torch.long)


def pair_axes(allocation: str, num_pairs: int, sections: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Row index (0=t, 1=h, 2=w) read by each rotary pair, a ``(num_pairs,)`` long tensor.

    Raises:
        ValueError: unknown allocation, or sections that do not sum to ``num_pairs`` or that the
            allocation cannot realise.
    """
    _check_allocation(allocation)
    if sections is None:
        sections = default_sections(allocation, num_pairs)
    sections = tuple(int(s) for s in sections)
    if len(sections) != 3 or min(sections) < 0 or sum(sections) != num_pairs:
        raise ValueError(
            f"sections {list(sections)} must be three non-negative pair counts (t, h, w) summing to "
            f"head_dim/2 = {num_pairs}; e.g. {list(default_sections(allocation, num_pairs))} for "
            f"{allocation!r}, or sections=None for that default."
        )
    return _pair_axes_cached(allocation, num_pairs, sections)


def axis_string(axes: torch.Tensor) -> str:
    """Human-readable map, e.g. ``"THWTHW...TTTT"``: one letter per pair, highest frequency first."""
    return "".join("THW"[a] for a in axes.tolist())
