"""Rotary embedding tables and their application (RoFormer, arXiv 2104.09864 section 3.4).

Pair ``i`` of a head (channels ``i`` and ``i + d/2``, the "rotate_half" layout of LLaMA/Qwen) is
rotated by the angle ``ids[a(i)] * inv_freq[i]``, where ``a`` is the frequency allocation
(:mod:`minivlm.rope.allocation`) and ``inv_freq[i] = theta ** (-2i/d)``. Because a rotation by
``m`` applied to q and by ``n`` applied to k leaves ``q . k`` depending only on ``m - n`` per
pair, attention sees relative positions on each axis (SPEC.md section 1).

The table is computed once per forward per allocation, in float32, and shared by every layer
that uses it. A RoPE scaling (:mod:`minivlm.rope.scaling`) changes ``inv_freq`` before the pairs
are allocated, and may multiply cos and sin by an attention factor.
"""

from __future__ import annotations

import torch

from collections.abc import Mapping
from typing import Any

from minivlm.rope.allocation import pair_axes
from minivlm.rope.scaling import RopeScaling, scaled_inverse_frequencies


def inverse_frequencies(head_dim: int, theta: float) -> torch.Tensor:
    """``inv_freq[i] = theta ** (-2i / head_dim)`` for ``i < head_dim/2``, float32."""
    return scaled_inverse_frequencies(head_dim, theta, None)[0].to(torch.float32)


def rotary_cos_sin(
    ids: torch.Tensor,
    head_dim: int,
    theta: float,
    allocation: str = "chunked",
    sections: tuple[int, int, int] | None = None,
    scaling: Mapping[str, Any] | RopeScaling | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables for 3D position ids.

    Args:
        ids: position ids ``(..., 3, L)``, rows ``(t, h, w)``.
        head_dim: rotary dimension ``d`` (even).
        theta: RoPE base.
        allocation: ``1d``, ``chunked``, ``interleaved`` or ``lta``.
        sections: pairs per axis ``(s_t, s_h, s_w)`` summing to ``d/2``; None for the default.
        scaling: a RoPE scaling for extrapolation (see :func:`~minivlm.rope.scaled_inverse_frequencies`);
            with ``axes`` only the pairs reading those rows are scaled.

    Returns:
        ``(cos, sin)``, each ``(..., L, d)`` float32, ``cat(angle, angle)`` per token, times the
        scaling's attention factor.
    """
    if ids.dim() < 2 or ids.shape[-2] != 3:
        raise ValueError(
            f"position ids must have shape (..., 3, L) with rows (t, h, w), got {tuple(ids.shape)}."
        )
    scaling = RopeScaling.of(scaling)
    inv_freq, attention = scaled_inverse_frequencies(head_dim, theta, scaling)  # checks head_dim first
    axes = pair_axes(allocation, head_dim // 2, sections)
    if scaling is not None and scaling.axes is not None:  # scale only the pairs of the named rows
        inv_freq = torch.where(scaling.pair_mask(axes), inv_freq, scaled_inverse_frequencies(head_dim, theta, None)[0])
    inv_freq, axes = inv_freq.to(ids.device, torch.float32), axes.to(ids.device)
    # (..., P, L): the row each pair reads; then angle[..., l, i] = ids[a(i), l] * inv_freq[i].
    angle = ids.float().index_select(-2, axes).transpose(-1, -2) * inv_freq
    angle = torch.cat([angle, angle], dim=-1)
    if attention == 1.0:
        return angle.cos(), angle.sin()
    return angle.cos() * attention, angle.sin() * attention


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dim."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x (..., L, d)`` by the table; cos/sin broadcast against ``x``.

    The product is taken in float32 (positions up to many thousands lose precision in bf16) and
    cast back to ``x``'s dtype.
    """
    rotated = x.float() * cos + rotate_half(x.float()) * sin
    return rotated.to(x.dtype)
