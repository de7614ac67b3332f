"""Images and videos to patch rows plus the vision blocks they occupy in the prompt.

One image or video becomes patch rows (:mod:`minivlm.processing.patches`) and one or more
*vision blocks*: a ``<|vision_start|> pad * n <|vision_end|>`` run of the prompt, described to the
position designs as a :class:`~minivlm.rope.VisionSegment` on the merged grid. An image is one
block with one temporal group (the frame repeated to fill the temporal patch). A video is laid out
in one of two ways (SPEC.md section 3):

- ``timestamps`` (Qwen3-VL, arXiv 2511.21631, "text-based time alignment"): one block per group, each
  preceded by the text ``<{t:.1f} seconds>``; time is read from the text, ids follow M-RoPE.
- ``absolute_time`` (Qwen2.5-VL, arXiv 2502.13923 section 2.1): one block for the whole video,
  with ``seconds_per_grid = temporal_patch / fps`` so M-RoPE's ``tokens_per_second`` option can
  turn group indices into absolute time.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import torch

from minivlm.processing.images import ImageInput, load_rgb, normalised_tensor
from minivlm.processing.patches import patch_positions, patchify
from minivlm.processing.resize import smart_resize
from minivlm.processing.video import group_times, sample_frame_indices, timestamp_text
from minivlm.rope import VisionSegment
from minivlm.tokenizer import IMAGE_PAD, VIDEO_PAD

VIDEO_LAYOUTS = ("timestamps", "absolute_time")


@dataclass(frozen=True)
class VisionSpec:
    """How pixels become patches; must agree with the vision encoder's config.

    Args:
        patch_size: side of a ViT patch in pixels.
        temporal_patch: frames per Conv3d temporal patch (images are repeated to fill it).
        merge: side of the merge window (``merge**2`` patches become one LLM token).
        min_pixels, max_pixels: bounds on a resized image's (or frame's) pixel count.
        mean, std: per-channel normalisation of pixel values in ``[0, 1]``.
        fps: target frame rate of videos (frames given faster are subsampled).
        video_layout: ``timestamps`` or ``absolute_time``.
    """

    patch_size: int
    temporal_patch: int
    merge: int
    min_pixels: int
    max_pixels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    fps: float
    video_layout: str

    def __post_init__(self) -> None:
        for name in ("patch_size", "temporal_patch", "merge", "min_pixels", "max_pixels"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"processor {name} must be a positive int, got {getattr(self, name)!r}.")
        if not self.min_pixels <= self.max_pixels or self.max_pixels < self.factor**2:
            raise ValueError(
                f"processor needs min_pixels <= max_pixels and max_pixels >= (patch_size*merge)**2 = "
                f"{self.factor**2}; got min_pixels={self.min_pixels}, max_pixels={self.max_pixels}."
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"processor mean/std need 3 values each, std positive; got {self.mean}, {self.std}.")
        if self.video_layout not in VIDEO_LAYOUTS:
            raise ValueError(f"unknown video_layout {self.video_layout!r}; valid layouts: {', '.join(VIDEO_LAYOUTS)}.")
        if not (isinstance(self.fps, numbers.Real) and 0 < self.fps < math.inf):
            raise ValueError(f"processor fps must be a positive finite number, got {self.fps!r}.")

    @property
    def factor(self) -> int:
        """Image sides are multiples of this: one merged LLM token covers ``factor x factor`` pixels."""
        return self.patch_size * self.merge

    @property
    def patch_dim(self) -> int:
        """Length of one patch row: ``3 * temporal_patch * patch_size**2``."""
        return 3 * self.temporal_patch * self.patch_size**2


@dataclass(frozen=True)
class VisionBlock:
    """One ``<|vision_start|> ... <|vision_end|>`` run of the prompt.

    Args:
        pad_token: the placeholder repeated ``segment.num_tokens`` times (image or video pad).
        segment: the block on the merged grid, for the position designs.
        prefix: text written before ``<|vision_start|>`` (a Qwen3-VL timestamp, or empty).
    """

    pad_token: str
    segment: VisionSegment
    prefix: str = ""


@dataclass(frozen=True)
class EncodedMedia:
    """Patch rows of one image or video and the blocks that stand for them in the prompt."""

    pixel_values: torch.Tensor  # (N, patch_dim), merge-window order
    patch_positions: torch.Tensor  # (N, 2) un-merged (row, col)
    grids: tuple[tuple[int, int, int], ...]  # (T_groups, grid_h, grid_w) per block, un-merged
    blocks: tuple[VisionBlock, ...]


def _frames_tensor(frames: Sequence[ImageInput], spec: VisionSpec) -> torch.Tensor:
    """Frames as one normalised ``(T, 3, H, W)`` tensor, resized together.

    Raises:
        ValueError: frames of different sizes (resizing them to one would stretch some).
    """
    images = [load_rgb(frame) for frame in frames]
    sizes = [image.size for image in images]
    if any(size != sizes[0] for size in sizes):
        index = next(i for i, size in enumerate(sizes) if size != sizes[0])
        raise ValueError(f"video frame {index} is {sizes[index][0]}x{sizes[index][1]} pixels but frame 0 is "
                         f"{sizes[0][0]}x{sizes[0][1]}; give every frame of a video the same size.")
    height, width = smart_resize(images[0].height, images[0].width, spec.factor, spec.min_pixels, spec.max_pixels)
    return torch.stack([normalised_tensor(image, height, width, spec.mean, spec.std) for image in images])


def encode_image(image: ImageInput, spec: VisionSpec) -> EncodedMedia:
    """One image: a single block of ``(grid_h / merge) * (grid_w / merge)`` image pads."""
    pixel_values, (grid_t, grid_h, grid_w) = patchify(
        _frames_tensor([image], spec), spec.patch_size, spec.temporal_patch, spec.merge
    )
    segment = VisionSegment(grid_t, grid_h // spec.merge, grid_w // spec.merge)
    return EncodedMedia(
        pixel_values=pixel_values,
        patch_positions=patch_positions(grid_t, grid_h, grid_w, spec.merge),
        grids=((grid_t, grid_h, grid_w),),
        blocks=(VisionBlock(IMAGE_PAD, segment),),
    )


def encode_video(frames: Sequence[ImageInput], fps: float, spec: VisionSpec) -> EncodedMedia:
    """A video given as ``frames`` at ``fps``: sampled at ``spec.fps``, grouped, laid out per
    ``spec.video_layout``."""
    indices, kept_fps = sample_frame_indices(len(frames), fps, spec.fps)
    pixel_values, (grid_t, grid_h, grid_w) = patchify(
        _frames_tensor([frames[i] for i in indices], spec), spec.patch_size, spec.temporal_patch, spec.merge
    )
    height, width = grid_h // spec.merge, grid_w // spec.merge
    positions = patch_positions(grid_t, grid_h, grid_w, spec.merge)
    if spec.video_layout == "absolute_time":
        segment = VisionSegment(grid_t, height, width, seconds_per_grid=spec.temporal_patch / kept_fps)
        return EncodedMedia(pixel_values, positions, ((grid_t, grid_h, grid_w),), (VisionBlock(VIDEO_PAD, segment),))
    times = group_times([index / fps for index in indices], spec.temporal_patch)
    # Patch rows are already group-major, so each group's rows are one contiguous chunk.
    blocks = tuple(VisionBlock(VIDEO_PAD, VisionSegment(1, height, width), timestamp_text(t)) for t in times)
    return EncodedMedia(pixel_values, positions, ((1, grid_h, grid_w),) * grid_t, blocks)
