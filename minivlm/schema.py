"""The data contract: what each stage of the pipeline hands to the next.

    Sample --Processor--> EncodedSample --Collator--> Batch --VLM--> loss / generated tokens

A :class:`Sample` is what a synthetic task (:mod:`minivlm.data.tasks`) or a real-data adapter
(:mod:`minivlm.data.adapters`) yields: media and a conversation, in plain Python. The
:class:`~minivlm.processing.Processor` turns it into an :class:`EncodedSample` (token ids, loss
labels, rope segments, patches), on CPU in a DataLoader worker. The
:class:`~minivlm.data.collate.Collator` pads or packs encoded samples into a :class:`Batch` with
the position ids of every position design the rope schedule needs, still in the worker, so the
model's ``forward`` only looks things up. These types are the one description of those dicts;
the modules that make or read them cite it.
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np
import torch
from PIL import Image

from minivlm.rope import Segment

IGNORE_INDEX = -100  # label of tokens without loss (the cross-entropy ``ignore_index``)

# An image or a video frame: a PIL image, encoded file bytes, a ``datasets`` Image dict
# (``{"bytes": ..., "path": ...}``, read from the path when the bytes are absent) or a uint8
# array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4).
ImageInput = Image.Image | bytes | bytearray | dict[str, Any] | np.ndarray


class Video(TypedDict):
    """A video as frames at a known rate (the processor resamples it to its own ``fps``)."""

    frames: list[ImageInput]
    fps: float  # frames per second of ``frames``


class Sample(TypedDict, total=False):
    """One training or evaluation example, before processing. Only ``messages`` is required.

    ``messages`` is ChatML-like: ``[{"role": "user" | "assistant" | "system", "content": str |
    [part, ...]}]`` where a part is ``{"type": "text", "text": str}``, ``{"type": "image"}`` or
    ``{"type": "video"}``; the i-th image part takes ``images[i]``, the i-th video part ``videos[i]``.
    """

    id: str  # unique name, quoted in every error about the sample
    task: str  # task family (synthetic) or source name (real data); scores are kept per task
    images: list[ImageInput]
    videos: list[Video]
    messages: list[dict[str, Any]]
    answer: str  # the expected final answer (scored by exact match)
    meta: dict[str, Any]  # anything else: the scene, the query, provenance (JSON-serialisable)


class EncodedSample(TypedDict):
    """The processor's output for one sample (``L`` tokens, ``N`` patches, ``G`` temporal groups)."""

    input_ids: torch.Tensor  # (L,) long: the templated conversation, one placeholder per merged vision token
    labels: torch.Tensor  # (L,) long: the token where it is trained on (answers), IGNORE_INDEX elsewhere
    segments: list[Segment]  # text runs and vision blocks, lengths summing to L (for the position ids)
    pixel_values: torch.Tensor  # (N, C * temporal_patch * patch**2) float: patches in merge-window order
    vision_grid: torch.Tensor  # (G, 3) long: (frames, rows, columns) of patches per vision block
    patch_positions: torch.Tensor  # (N, 2) long: (row, column) of every patch within its frame
    id: str
    task: str
    answer: str


class Batch(TypedDict):
    """The collator's output (``B`` rows of ``L`` tokens); the model's only input."""

    input_ids: torch.Tensor  # (B, L) long, padding = the tokenizer's pad id
    labels: torch.Tensor  # (B, L) long, IGNORE_INDEX where no loss (prompts, padding)
    position_ids: dict[str, torch.Tensor]  # design key -> (B, 3, L) float32 ids (RopeSchedule.design_keys)
    document_ids: torch.Tensor | None  # (B, L) long: the sample of its row each token is (-1: padding); None = plain causal
    vision_index: torch.Tensor  # (2, V) long: (row, column) of every vision placeholder, in token order
    answer_index: torch.Tensor  # (2, A) long: (row, column) of the positions whose next token is an answer token
    answer_task: torch.Tensor | None  # (A,) long: the task of each of those positions, an index into the collator's task_names; None: not asked for
    next_position: dict[str, torch.Tensor] | None  # design key -> (B,) first decoding id; None when packed
    packing_efficiency: float  # share of the B * L slots holding real tokens
    real_tokens: int  # non-padding tokens (counts are Python numbers: reading them never waits for a device)
    answer_tokens: int  # tokens the loss averages over (A)
    vision_frames: int  # attention frames of the ViT (0 without media)
    longest_frame: int  # patches of the largest frame (0 without media)
    pixel_values: torch.Tensor | None  # (N, patch_dim) patches of every vision block in token order; None: no media
    vision_grid: torch.Tensor | None  # (G, 3) long, same order
    patch_positions: torch.Tensor | None  # (N, 2) long, same order
    tasks: list[str]  # per sample, in the order samples appear row by row
    answers: list[str]
    sample_ids: list[str]


def token_index(selected: torch.Tensor) -> torch.Tensor:
    """``(2, n)`` long (row, column) of the True entries of a ``(B, L)`` bool tensor, row by row.

    The collator builds a batch's ``vision_index`` and ``answer_index`` with it on CPU; the model
    falls back to it only for batches that lack them (on a GPU, finding the entries waits for the
    device).
    """
    return torch.stack(torch.nonzero(selected, as_tuple=True))


def answer_index(labels: torch.Tensor) -> torch.Tensor:
    """(row, column) of the positions whose next label is an answer token (column ``c`` predicts ``c + 1``)."""
    return token_index(labels[:, 1:] != IGNORE_INDEX)
