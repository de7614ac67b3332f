"""Video frame sampling and the time of each temporal group.

A video reaches the processor as frames at a known ``fps``. We keep frames at (at most) a target
rate, as Qwen2-VL does (arXiv 2409.12191, section 2.1: two frames per second), then pair frames
into temporal groups of ``temporal_patch`` for the Conv3d. Time enters the LM in one of two ways
(SPEC.md section 3):

- Qwen2.5-VL absolute time: the group index is scaled by ``seconds_per_grid`` in the M-RoPE
  temporal id, with ``seconds_per_grid = temporal_patch / fps``;
- Qwen3-VL timestamps: each group is preceded by the text ``<{t:.1f} seconds>``, ``t`` the mean
  timestamp of the frames in the group.
"""

from __future__ import annotations

import math
import numbers


def sample_frame_indices(num_frames: int, source_fps: float, target_fps: float) -> tuple[list[int], float]:
    """Which of ``num_frames`` frames given at ``source_fps`` to keep for a rate of ``target_fps``.

    Frame ``j`` of the output is the last input frame at or before time ``j / target_fps``. A
    target at or above the source rate keeps every frame (we never invent frames).

    Returns:
        ``(indices, fps)``: the kept frame indices (increasing) and the rate they represent.
    """
    if num_frames < 1:
        raise ValueError("video has no frames; a video needs at least one frame.")
    if not all(isinstance(fps, numbers.Real) and 0 < fps < math.inf for fps in (source_fps, target_fps)):
        raise ValueError(f"video fps must be positive finite numbers, got source {source_fps!r} and "
                         f"target {target_fps!r}; give each video's frame rate as 'fps'.")
    if target_fps >= source_fps:
        return list(range(num_frames)), float(source_fps)
    step = source_fps / target_fps
    count = max(1, math.floor(num_frames / step + 1e-9))
    # The epsilon keeps exact ratios (30 fps -> 2 fps) from flooring 14.999... to 14.
    return [min(num_frames - 1, math.floor(j * step + 1e-9)) for j in range(count)], float(target_fps)


def group_times(frame_times: list[float], temporal_patch: int) -> list[float]:
    """Mean time of each temporal group; the last frame is repeated to fill the last group."""
    missing = -len(frame_times) % temporal_patch
    padded = frame_times + frame_times[-1:] * missing
    return [
        sum(padded[start:start + temporal_patch]) / temporal_patch
        for start in range(0, len(padded), temporal_patch)
    ]


def timestamp_text(seconds: float) -> str:
    """The Qwen3-VL text that precedes a temporal group, e.g. ``<1.2 seconds>``."""
    return f"<{seconds:.1f} seconds>"
