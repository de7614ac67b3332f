"""minivlm.rope: every multimodal rotary position encoding, as pure functions on tensors.

Read the modules in this order to learn the field:

1. :mod:`~minivlm.rope.segments`: a sequence is text runs and vision blocks on the merged grid.
2. :mod:`~minivlm.rope.positions`: designs assign 3D ids ``(t, h, w)``: 1D, M-RoPE, VideoRoPE.
3. :mod:`~minivlm.rope.circle`: Circle-RoPE's ring orthogonal to the text direction.
4. :mod:`~minivlm.rope.allocation`: which row each frequency pair reads: chunked, interleaved, lta.
5. :mod:`~minivlm.rope.rotary`: cos/sin tables and the rotation itself.
6. :mod:`~minivlm.rope.variants` and :mod:`~minivlm.rope.schedule`: named presets, per-layer mixes.
7. :mod:`~minivlm.rope.ptd`: the Per-Token Distance metric of cross-modal positional bias.
8. :mod:`~minivlm.rope.scaling`: linear, NTK-aware and YaRN scaling for longer sequences.

The maths follows ``minivlm/SPEC.md`` exactly; the tests pin its golden values.
"""

from minivlm.rope.allocation import ALLOCATIONS, axis_string, default_sections, pair_axes
from minivlm.rope.circle import circle_offsets
from minivlm.rope.positions import DESIGNS, build_positions, next_position, position_ids
from minivlm.rope.ptd import ptd
from minivlm.rope.rotary import apply_rotary, inverse_frequencies, rotary_cos_sin, rotate_half
from minivlm.rope.scaling import SCALING_TYPES, RopeScaling, scaled_inverse_frequencies
from minivlm.rope.schedule import SCHEDULES, RopeSchedule, make_schedule
from minivlm.rope.segments import Segment, TextSegment, VisionSegment, sequence_length, vision_mask
from minivlm.rope.variants import DEFAULT_THETA, PRESETS, RopeVariant, get_variant

__all__ = [
    "ALLOCATIONS", "DEFAULT_THETA", "DESIGNS", "PRESETS", "SCALING_TYPES", "SCHEDULES",
    "RopeScaling", "RopeSchedule", "RopeVariant", "Segment", "TextSegment", "VisionSegment",
    "apply_rotary", "axis_string", "build_positions", "circle_offsets", "default_sections",
    "get_variant", "inverse_frequencies", "make_schedule", "next_position", "pair_axes",
    "position_ids", "ptd", "rotary_cos_sin", "rotate_half", "scaled_inverse_frequencies", "sequence_length",
    "vision_mask",
]
