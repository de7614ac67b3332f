"""The two kinds of run a multimodal sequence is made of, as the position designs see it.

A sequence is a list of segments: runs of text tokens and vision blocks. A vision block is given
on the *merged* LLM grid (SPEC.md section 1): an image of ``grid_h x grid_w`` ViT patches with
spatial merge ``m`` becomes ``h = grid_h / m`` by ``w = grid_w / m`` LLM tokens, and a video adds
``t`` temporal groups. Tokens of a block are laid out in raster order ``(k, y, x)``, ``k`` slowest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TextSegment:
    """``length`` consecutive text tokens (special tokens such as ``<|vision_start|>`` included)."""

    length: int

    def __post_init__(self) -> None:
        if not isinstance(self.length, int) or self.length < 0:
            raise ValueError(
                f"TextSegment length must be a non-negative int, got {self.length!r}; "
                "pass the number of text tokens in the run."
            )

    @property
    def num_tokens(self) -> int:
        return self.length


@dataclass(frozen=True)
class VisionSegment:
    """A vision block of ``t * h * w`` LLM tokens on the merged grid.

    Args:
        t: temporal groups (1 for an image).
        h, w: merged rows and columns (``grid_h / merge``, ``grid_w / merge``).
        seconds_per_grid: seconds one temporal group spans (videos); enables absolute-time
            temporal ids (Qwen2.5-VL) when the design also gets ``tokens_per_second``.
    """

    t: int
    h: int
    w: int
    seconds_per_grid: float | None = None

    def __post_init__(self) -> None:
        for name in ("t", "h", "w"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"VisionSegment.{name} must be a positive int, got {value!r}; a vision block "
                    "needs at least one temporal group, row and column on the merged grid."
                )
        spg = self.seconds_per_grid
        if spg is not None and (isinstance(spg, bool) or not isinstance(spg, (int, float)) or not 0 < spg < float("inf")):
            raise ValueError(
                f"VisionSegment.seconds_per_grid must be a positive finite number or None, got {spg!r}."
            )

    @property
    def num_tokens(self) -> int:
        return self.t * self.h * self.w


Segment = TextSegment | VisionSegment


def sequence_length(segments: list[Segment]) -> int:
    """Total number of tokens the segments describe."""
    return sum(segment.num_tokens for segment in segments)


def vision_mask(segments: list[Segment]) -> torch.Tensor:
    """Bool tensor ``(L,)``: True at the tokens of vision blocks (the image tokens of PTD)."""
    parts = [torch.full((s.num_tokens,), isinstance(s, VisionSegment)) for s in segments]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)
