"""RoPE scaling: stretch the frequency table so that a model reads positions beyond its training length.

A rotary pair whose wavelength ``2 pi / inv_freq[i]`` exceeds the training length never turned
through a full cycle in training; at longer lengths it shows the model angles it has never seen.
Each method changes ``inv_freq`` (SPEC.md section 8):

- ``linear``, position interpolation (Chen et al., "Extending Context Window of Large Language
  Models via Positional Interpolation", arXiv 2306.15595, section 2.2): every frequency divided
  by ``factor``, so ``factor`` times the length maps onto the trained range of angles.
- ``ntk``, NTK-aware base change (the base-scaling rule YaRN's section 3.1 names "NTK-aware"):
  ``theta * factor ** (d / (d - 2))`` as the new base, which leaves the fastest pair unchanged
  and divides the slowest by ``factor``.
- ``yarn`` (Peng et al., "YaRN: Efficient Context Window Extension of Large Language Models",
  arXiv 2309.00071, sections 3.2 to 3.4): "NTK-by-parts" keeps the pairs that turn more than
  ``beta_fast`` times over ``original_max_position`` unchanged, interpolates those that turn fewer
  than ``beta_slow`` times by ``factor``, and ramps linearly between; plus an attention temperature:
  cos and sin are multiplied by ``0.1 ln(factor) + 1`` (q and k both, as the paper does).

Scaling acts on the one table ``inv_freq`` *before* the pairs are shared out among the t/h/w rows
(as Qwen2.5-VL and Qwen3-VL compute it once for all sections), so every allocation is scaled
alike; ``axes`` restricts it to the pairs of some rows, e.g. ``["t"]`` for time only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

SCALING_TYPES = ("linear", "ntk", "yarn")
AXIS_NAMES = ("t", "h", "w")  # position rows, in order


@dataclass(frozen=True)
class RopeScaling:
    """A validated scaling (hashable, so rope variants holding one stay usable as table keys).

    Args:
        type: ``linear``, ``ntk`` or ``yarn``.
        factor: how many times the training length to cover, ``>= 1``.
        original_max_position: the training length in positions (yarn's ramp is measured over it).
        beta_fast, beta_slow: yarn's rotation counts bounding the ramp.
        axes: the rows whose pairs are scaled; None scales every pair.
    """

    type: str
    factor: float
    original_max_position: int | None = None
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    axes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in SCALING_TYPES:
            raise ValueError(f"unknown rope scaling type {self.type!r}; valid types: {', '.join(SCALING_TYPES)}.")
        if not isinstance(self.factor, (int, float)) or not math.isfinite(self.factor) or self.factor < 1:
            raise ValueError(f"rope scaling factor must be a number >= 1 (1 = no scaling), got {self.factor!r}.")
        if self.type == "yarn" and not (isinstance(self.original_max_position, int) and self.original_max_position > 0):
            raise ValueError("yarn scaling needs original_max_position, the training length in positions (a "
                             f"positive int), got {self.original_max_position!r}.")
        if not self.beta_fast > self.beta_slow > 0:
            raise ValueError(f"yarn needs beta_fast > beta_slow > 0, got {self.beta_fast} and {self.beta_slow}.")
        if self.axes is not None:
            object.__setattr__(self, "axes", tuple(self.axes))
            bad = sorted(set(self.axes) - set(AXIS_NAMES))
            if bad or not self.axes:
                raise ValueError(f"rope scaling axes {list(self.axes)}: name one or more of {list(AXIS_NAMES)}.")
        object.__setattr__(self, "factor", float(self.factor))

    @classmethod
    def of(cls, scaling: Mapping[str, Any] | RopeScaling | None) -> RopeScaling | None:
        """A scaling from its dict form (``{"type", "factor", ...}``); None stays None."""
        if scaling is None or isinstance(scaling, RopeScaling):
            return scaling
        if not isinstance(scaling, Mapping) or "type" not in scaling or "factor" not in scaling:
            raise ValueError(f"rope scaling must be None or a dict with 'type' and 'factor', got {scaling!r}.")
        known = {"type", "factor", "original_max_position", "beta_fast", "beta_slow", "axes"}
        unknown = sorted(set(scaling) - known)
        if unknown:
            raise ValueError(f"rope scaling has unknown key(s) {unknown}; its keys: {sorted(known)}.")
        return cls(**scaling)

    def attention_factor(self) -> float:
        """The multiplier of cos and sin: yarn's ``0.1 ln(factor) + 1``, else 1."""
        return 0.1 * math.log(self.factor) + 1.0 if self.type == "yarn" and self.factor > 1 else 1.0

    def pair_mask(self, axes: torch.Tensor) -> torch.Tensor:
        """Which pairs are scaled, given the row each pair reads (:func:`~minivlm.rope.pair_axes`)."""
        if self.axes is None:
            return torch.ones_like(axes, dtype=torch.bool)
        return torch.isin(axes, torch.tensor([AXIS_NAMES.index(a) for a in self.axes], device=axes.device))


def _yarn_ramp(head_dim: int, theta: float, scaling: RopeScaling) -> torch.Tensor:
    """0 for the pairs kept as they are, 1 for the fully interpolated ones (YaRN section 3.2)."""

    def pair_dimension(rotations: float) -> float:  # the pair that turns `rotations` times over the length
        return head_dim * math.log(scaling.original_max_position / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(pair_dimension(scaling.beta_fast)), 0)
    high = min(math.ceil(pair_dimension(scaling.beta_slow)), head_dim - 1)
    if low == high:
        high += 0.001  # a ramp of zero width would divide by zero
    return ((torch.arange(head_dim // 2, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)


def scaled_inverse_frequencies(head_dim: int, theta: float,
                               scaling: Mapping[str, Any] | RopeScaling | None) -> tuple[torch.Tensor, float]:
    """The frequency table under a scaling, and the attention factor that multiplies cos and sin.

    Args:
        head_dim: rotary dimension ``d`` (even).
        theta: RoPE base.
        scaling: None (no scaling) or ``{"type": "linear" | "ntk" | "yarn", "factor": float,
            "original_max_position": int, "beta_fast": 32, "beta_slow": 1, "axes": ["t", ...]}``
            (``original_max_position`` needed by yarn only; ``axes`` is applied by
            :func:`~minivlm.rope.rotary_cos_sin`, which knows which row each pair reads).

    Returns:
        ``(inv_freq, attention_factor)``: ``head_dim // 2`` float64 frequencies, and a float.

    Raises:
        ValueError: an unknown type, a factor below 1, yarn without ``original_max_position``.
    """
    if not isinstance(head_dim, int) or head_dim <= 0 or head_dim % 2:
        raise ValueError(f"head_dim must be a positive even int (channels pair up), got {head_dim!r}.")
    if not theta > 0:
        raise ValueError(f"rope theta must be positive, got {theta!r}.")
    scaling = RopeScaling.of(scaling)
    exponent = torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim
    if scaling is None:
        return float(theta) ** -exponent, 1.0
    factor = scaling.factor
    if scaling.type == "linear":
        return float(theta) ** -exponent / factor, 1.0
    if scaling.type == "ntk":
        return (float(theta) * factor ** (head_dim / (head_dim - 2))) ** -exponent, 1.0
    base = float(theta) ** -exponent
    ramp = _yarn_ramp(head_dim, float(theta), scaling)
    return base / factor * ramp + base * (1 - ramp), scaling.attention_factor()
