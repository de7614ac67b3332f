"""Per-layer rope schedules: a variant for every LM layer (Circle-RoPE's staggered layers).

Circle-RoPE (arXiv 2505.16416, section 3.3, "AGE") finds that mixing encodings across depth beats
any single one: Circle-RoPE decouples image from text positions, M-RoPE keeps the image's own
spatial structure, and alternating them lets layers use both. SPEC.md section 4 names the
schedules (layer index ``l``, ``L`` layers):

- ``all``: one variant in every layer;
- ``alternate``: the variant on even ``l``, its partner on odd ``l`` (the paper's best);
- ``lower``: the variant for ``l < L/2``, the partner above; ``upper``: the reverse;
- an explicit list of preset names, one per layer.

Every distinct *design* in a schedule has its own ids and its own next position. While decoding
with a KV cache each layer keeps using its own design's positions: the j-th generated token takes
``next_position[design] + j`` on all rows of each design (the official Circle-RoPE code falls back
to circle positions in every layer here; that is a bug we do not reproduce).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from minivlm.rope.positions import DESIGN_DEFAULTS
from minivlm.rope.segments import Segment
from minivlm.rope.variants import PRESETS, RopeVariant, get_variant

SCHEDULES = ("all", "alternate", "lower", "upper")


@dataclass(frozen=True)
class RopeSchedule:
    """The rope variant of each LM layer, and the ids and tables they need."""

    layers: tuple[RopeVariant, ...]

    @property
    def variants(self) -> tuple[RopeVariant, ...]:
        """Distinct variants, in first-use order: one cos/sin table each per forward."""
        return tuple(dict.fromkeys(self.layers))

    @property
    def design_keys(self) -> tuple[str, ...]:
        """Distinct designs, sorted: one set of position ids each per sample."""
        return tuple(sorted({variant.design_key for variant in self.layers}))

    def design_variant(self, key: str) -> RopeVariant:
        """A variant with the given design key (any: they build the same ids)."""
        for variant in self.layers:
            if variant.design_key == key:
                return variant
        raise ValueError(f"design {key!r} is not in this schedule; its designs: {self.design_keys}.")

    def build_positions(self, segments: list[Segment]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """Ids ``(3, L)`` and next position of one sequence, for every design of the schedule."""
        built = {key: self.design_variant(key).build_positions(segments) for key in self.design_keys}
        return {k: ids for k, (ids, _) in built.items()}, {k: nxt for k, (_, nxt) in built.items()}

    def check_head_dim(self, head_dim: int) -> None:
        for variant in self.variants:
            variant.check_head_dim(head_dim)

    def describe(self) -> str:
        return " ".join(variant.name for variant in self.layers)


def _layer_names(schedule: str | Sequence[str], num_layers: int, variant: str, partner: str) -> list[str]:
    if not isinstance(schedule, str):
        names = list(schedule)
        if len(names) != num_layers:
            raise ValueError(
                f"explicit rope schedule has {len(names)} entries but the LM has {num_layers} "
                "layers; give exactly one preset name per layer."
            )
        return names
    if schedule == "all":
        return [variant] * num_layers
    if schedule == "alternate":
        return [variant if layer % 2 == 0 else partner for layer in range(num_layers)]
    if schedule == "lower":
        return [variant if layer < num_layers / 2 else partner for layer in range(num_layers)]
    if schedule == "upper":
        return [partner if layer < num_layers / 2 else variant for layer in range(num_layers)]
    raise ValueError(
        f"unknown rope schedule {schedule!r}; valid schedules: {', '.join(SCHEDULES)}, "
        "or a list of preset names, one per layer."
    )


def make_schedule(
    schedule: str | Sequence[str],
    num_layers: int,
    variant: str | None = None,
    partner: str = "mrope",
    theta: float | None = None,
    options: Mapping[str, Any] | None = None,
    scaling: Mapping[str, Any] | None = None,
) -> RopeSchedule:
    """Build a schedule from names.

    Args:
        schedule: ``all``, ``alternate``, ``lower``, ``upper`` or a list of preset names.
        num_layers: number of LM layers.
        variant: the preset of ``all`` (default ``mrope``) and the first of a staggered pair
            (default ``circle``).
        partner: the other preset of a staggered schedule.
        theta: overrides every variant's base when given.
        options: design options (e.g. ``{"alpha": 0.3, "radius": "auto"}``), each applied to the
            variants whose design accepts it; an option no variant accepts is an error.
        scaling: a RoPE scaling for extrapolation applied to every layer (:mod:`minivlm.rope.scaling`).
    """
    if not isinstance(num_layers, int) or num_layers < 1:
        raise ValueError(f"a rope schedule needs a positive number of layers, got {num_layers!r}.")
    if variant is None:
        variant = "mrope" if schedule == "all" else "circle"
    names = _layer_names(schedule, num_layers, variant, partner)
    unknown = sorted(set(names) - set(PRESETS))
    if unknown:
        raise ValueError(f"unknown rope preset(s) {unknown}; valid presets: {', '.join(PRESETS)}.")

    options = dict(options or {})
    designs = {PRESETS[name].design for name in names}
    accepted = {key for design in designs for key in DESIGN_DEFAULTS[design]}
    stray = sorted(set(options) - accepted)
    if stray:
        raise ValueError(
            f"rope option(s) {stray} are not used by any design of this schedule "
            f"({', '.join(sorted(designs))}); options they accept: {sorted(accepted) or 'none'}."
        )

    def build(name: str) -> RopeVariant:
        own = {k: v for k, v in options.items() if k in DESIGN_DEFAULTS[PRESETS[name].design]}
        return get_variant(name, theta=theta, options=own, scaling=scaling)

    built = {name: build(name) for name in set(names)}
    return RopeSchedule(tuple(built[name] for name in names))
