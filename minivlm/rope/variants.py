"""Named rope variants: a position design paired with a frequency allocation and a base.

A variant is everything one LM layer needs to rotate q and k: how ids are assigned
(:mod:`minivlm.rope.positions`), which row each frequency pair reads
(:mod:`minivlm.rope.allocation`), and ``theta``. The shipped presets (SPEC.md section 3):

| preset              | design    | allocation  | paper                         |
|---------------------|-----------|-------------|-------------------------------|
| ``rope1d``          | rope1d    | 1d          | RoFormer (flattened vision)   |
| ``mrope``           | mrope     | chunked     | Qwen2-VL M-RoPE               |
| ``mrope_interleaved`` | mrope   | interleaved | Qwen3-VL MRoPE-I              |
| ``circle``          | circle    | chunked     | Circle-RoPE                   |
| ``videorope``       | videorope | lta         | VideoRoPE                     |

Every preset starts at the textbook base ``theta = 1e4`` (:data:`DEFAULT_THETA`); released
models use 1e6 (Qwen2-VL) or 5e6 (Qwen3-VL), which matter only at contexts far longer than
minivlm's. Override it with ``get_variant("mrope", theta=1e6)``. The model's
:class:`~minivlm.model.RopeConfig` sets one base for every layer (its default measured for
the synthetic tasks' small grids), so that an ablation changes the encoding and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import torch

from minivlm.rope.allocation import ALLOCATIONS, pair_axes
from minivlm.rope.positions import build_positions, resolve_design_options
from minivlm.rope.rotary import rotary_cos_sin
from minivlm.rope.scaling import RopeScaling
from minivlm.rope.segments import Segment

DEFAULT_THETA = 10_000.0


@dataclass(frozen=True)
class RopeVariant:
    """One rotary position encoding, complete.

    Args:
        name: a label for logs and tables.
        design: ``rope1d``, ``mrope``, ``circle`` or ``videorope``.
        allocation: ``1d``, ``chunked``, ``interleaved`` or ``lta``.
        theta: RoPE base.
        sections: pairs per axis ``(t, h, w)``; None scales the allocation's default to the head.
        options: the design's options (a mapping is accepted; defaults are filled in).
        scaling: a RoPE scaling for extrapolation (a dict is accepted, see :mod:`minivlm.rope.scaling`);
            None for none.
    """

    name: str
    design: str
    allocation: str
    theta: float = DEFAULT_THETA
    sections: tuple[int, int, int] | None = None
    options: tuple[tuple[str, Any], ...] = field(default=())
    scaling: RopeScaling | None = None

    def __post_init__(self) -> None:
        if self.allocation not in ALLOCATIONS:
            raise ValueError(
                f"rope variant {self.name!r}: unknown allocation {self.allocation!r}; "
                f"valid allocations: {', '.join(ALLOCATIONS)}."
            )
        resolved = resolve_design_options(self.design, dict(self.options))
        object.__setattr__(self, "options", tuple(sorted(resolved.items())))
        if self.sections is not None:
            object.__setattr__(self, "sections", tuple(int(s) for s in self.sections))
        object.__setattr__(self, "theta", float(self.theta))
        object.__setattr__(self, "scaling", RopeScaling.of(self.scaling))

    @property
    def design_key(self) -> str:
        """Identifies the ids this variant needs: variants with equal keys share position ids."""
        options = ",".join(f"{k}={v}" for k, v in self.options)
        return f"{self.design}({options})"

    def build_positions(self, segments: list[Segment]) -> tuple[torch.Tensor, float]:
        """``(ids (3, L), next_position)`` for one sequence."""
        return build_positions(segments, self.design, **dict(self.options))

    def position_ids(self, segments: list[Segment]) -> torch.Tensor:
        return self.build_positions(segments)[0]

    def next_position(self, segments: list[Segment]) -> float:
        return self.build_positions(segments)[1]

    def cos_sin(self, ids: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin ``(..., L, head_dim)`` for ids ``(..., 3, L)``."""
        return rotary_cos_sin(ids, head_dim, self.theta, self.allocation, self.sections, self.scaling)

    def check_head_dim(self, head_dim: int) -> None:
        """Raise ValueError now if this variant cannot be used with ``head_dim``."""
        if not isinstance(head_dim, int) or head_dim <= 0 or head_dim % 2:
            raise ValueError(f"rope needs a positive even head_dim, got {head_dim!r}.")
        try:
            pair_axes(self.allocation, head_dim // 2, self.sections)
        except ValueError as error:
            raise ValueError(f"rope variant {self.name!r} with head_dim {head_dim}: {error}") from None


PRESETS: dict[str, RopeVariant] = {
    "rope1d": RopeVariant("rope1d", "rope1d", "1d"),
    "mrope": RopeVariant("mrope", "mrope", "chunked"),
    "mrope_interleaved": RopeVariant("mrope_interleaved", "mrope", "interleaved"),
    "circle": RopeVariant("circle", "circle", "chunked"),
    "videorope": RopeVariant("videorope", "videorope", "lta"),
}


def get_variant(name: str, theta: float | None = None, sections: tuple[int, int, int] | None = None,
                options: Mapping[str, Any] | None = None,
                scaling: Mapping[str, Any] | RopeScaling | None = None) -> RopeVariant:
    """A preset by name, with optional overrides (options are merged into the preset's)."""
    if name not in PRESETS:
        raise ValueError(f"unknown rope preset {name!r}; valid presets: {', '.join(PRESETS)}.")
    preset = PRESETS[name]
    return replace(
        preset,
        theta=preset.theta if theta is None else theta,
        sections=preset.sections if sections is None else tuple(sections),
        options=tuple({**dict(preset.options), **dict(options or {})}.items()),
        scaling=preset.scaling if scaling is None else scaling,
    )

