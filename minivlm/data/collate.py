"""Collation: encoded samples to a batch, padded or packed, with every design's position ids.

Runs inside DataLoader workers, so the per-sample work that the model must not do in ``forward``
happens here on CPU: position ids for each position design of the rope schedule (SPEC.md
section 3; a schedule mixing Circle-RoPE and M-RoPE needs both), the next decoding position per
design (section 4), the document of every token (what attention may see,
:mod:`minivlm.model.attention`), where the vision tokens and the answer targets sit (and, for
training, the task of every answer target: the per-task loss), and the batch's counts (tokens,
answer tokens, frames) as Python numbers, so that neither the training step nor its logging ever
waits for the device to count them.

Two layouts:

- ``pad``: one sample per row. Right padding for training (plain causal attention suffices:
  padding only follows real tokens, ``document_ids`` is None); left padding for generation
  prompts, so every prompt ends at the last column and decoding appends in step, the padding
  being document -1, which no real token sees.
- ``pack``: several samples per row up to a token budget, placed first-fit by decreasing length.
  As in "Efficient Sequence Packing without Cross-contamination" (Krell et al., arXiv
  2107.02027), positions restart at each sample and each sample is its own document (a
  block-diagonal causal mask, never materialised here), so a packed row trains exactly like
  separate rows.

Vision tensors are concatenated in the batch's token order (row by row, left to right), the
order in which the model scatters merged features into placeholder tokens.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from minivlm.schema import IGNORE_INDEX, Batch, EncodedSample, answer_index, token_index
from minivlm.rope import RopeSchedule, sequence_length, vision_mask

MODES = ("pad", "pack")
PADDING_SIDES = ("right", "left")


class Collator:
    """Callable for ``DataLoader(collate_fn=...)``: encoded samples -> a :class:`~minivlm.schema.Batch`.

    Args:
        schedule: the LM's rope schedule; ids are built for each of its ``design_keys``.
        pad_id: token id of padding (the tokenizer's ``pad_id``).
        max_tokens: ``pad``: the longest sample allowed; ``pack``: the token budget of one row.
        mode: ``pad`` (one sample per row) or ``pack`` (several samples per row).
        padding_side: ``right`` (training) or ``left`` (generation prompts); ``pad`` mode only.
        task_names: the tasks a batch may hold, in the order ``answer_task`` indexes them; None: no
            ``answer_task`` (prompts, and callers that need no per-task loss).
    """

    def __init__(self, schedule: RopeSchedule, pad_id: int, max_tokens: int, mode: str = "pad",
                 padding_side: str = "right", task_names: Sequence[str] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown collate mode {mode!r}; valid modes: {', '.join(MODES)}.")
        if padding_side not in PADDING_SIDES:
            raise ValueError(f"unknown padding_side {padding_side!r}; valid sides: {', '.join(PADDING_SIDES)}.")
        if mode == "pack" and padding_side == "left":
            raise ValueError("packing fills rows left to right; use mode='pad' for left-padded generation prompts.")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"collate max_tokens must be a positive int, got {max_tokens!r}.")
        self.schedule = schedule
        self.pad_id = pad_id
        self.max_tokens = max_tokens
        self.mode = mode
        self.padding_side = padding_side
        self.task_ids = None if task_names is None else {task: index for index, task in enumerate(task_names)}

    def __call__(self, samples: Sequence[EncodedSample]) -> Batch:
        if not samples:
            raise ValueError("cannot collate an empty list of samples.")
        for sample in samples:
            self._check(sample)
        lengths = [sample["input_ids"].numel() for sample in samples]
        rows = [[i] for i in range(len(samples))] if self.mode == "pad" else self._pack(lengths, self.max_tokens)
        width = max(sum(lengths[i] for i in row) for row in rows)
        batch = self._layout(samples, rows, width)
        order = [samples[i] for row in rows for i in row]
        batch.update(_vision(order))
        batch["tasks"] = [s["task"] for s in order]
        batch["answers"] = [s["answer"] for s in order]
        batch["sample_ids"] = [s["id"] for s in order]
        return batch

    def _check(self, sample: EncodedSample) -> None:
        length = sample["input_ids"].numel()
        described = sequence_length(sample["segments"])
        if described != length:
            raise ValueError(
                f"sample {sample['id']!r}: segments describe {described} tokens but input_ids has {length}; "
                "encode samples with the Processor."
            )
        if length > self.max_tokens:
            budget = "the packing budget" if self.mode == "pack" else "the longest sample allowed"
            raise ValueError(
                f"sample {sample['id']!r} has {length} tokens, more than max_tokens={self.max_tokens} "
                f"({budget}); raise max_tokens or make the sample shorter (lower max_pixels or fps)."
            )
        if self.task_ids is not None and sample["task"] not in self.task_ids:
            raise ValueError(
                f"sample {sample['id']!r} has task {sample['task']!r}, not one of the collator's task_names "
                f"{sorted(self.task_ids)}; add it to task_names (the tasks the training stream can yield)."
            )

    @staticmethod
    def _pack(lengths: list[int], budget: int) -> list[list[int]]:
        """First-fit decreasing: sample indices per row, each row's lengths summing to <= budget."""
        rows: list[list[int]] = []
        room: list[int] = []
        for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
            row = next((r for r, free in enumerate(room) if free >= lengths[index]), None)
            if row is None:
                rows.append([])
                room.append(budget)
                row = len(rows) - 1
            rows[row].append(index)
            room[row] -= lengths[index]
        return rows

    def _layout(self, samples: Sequence[EncodedSample], rows: list[list[int]], width: int) -> dict[str, Any]:
        """Token tensors, position ids, masks and next positions of the given row layout."""
        keys = self.schedule.design_keys
        num_rows = len(rows)
        input_ids = torch.full((num_rows, width), self.pad_id, dtype=torch.long)
        labels = torch.full((num_rows, width), IGNORE_INDEX, dtype=torch.long)
        is_vision = torch.zeros(num_rows, width, dtype=torch.bool)
        positions = {key: torch.zeros(num_rows, 3, width) for key in keys}
        next_position = {key: torch.zeros(num_rows) for key in keys}
        # Which sample of its row each token belongs to (-1 = padding): the packed mask's blocks.
        owner = torch.full((num_rows, width), -1, dtype=torch.long)
        task = torch.full((num_rows, width), -1, dtype=torch.long)  # index into task_names of each token's sample
        left = self.padding_side == "left"
        for r, row in enumerate(rows):
            used = sum(samples[i]["input_ids"].numel() for i in row)
            start = width - used if left else 0
            for slot, i in enumerate(row):
                sample = samples[i]
                span = slice(start, start + sample["input_ids"].numel())
                input_ids[r, span] = sample["input_ids"]
                labels[r, span] = sample["labels"]
                is_vision[r, span] = vision_mask(sample["segments"])
                owner[r, span] = slot
                if self.task_ids is not None:
                    task[r, span] = self.task_ids[sample["task"]]
                ids, nexts = self.schedule.build_positions(sample["segments"])
                for key in keys:
                    positions[key][r, :, span] = ids[key]
                    next_position[key][r] = nexts[key]
                start = span.stop
        real = owner >= 0
        answers = answer_index(labels)
        return {
            "input_ids": input_ids,
            "labels": labels,
            "position_ids": positions,
            # Right padding only follows real tokens: plain causal attention keeps them apart.
            "document_ids": None if self.mode == "pad" and not left else owner,
            "vision_index": token_index(is_vision),
            "answer_index": answers,
            # An answer target and the position predicting it belong to one sample (answers never open one).
            "answer_task": None if self.task_ids is None else task[answers[0], answers[1]],
            "next_position": next_position if self.mode == "pad" else None,
            "packing_efficiency": float(real.sum()) / real.numel(),
            "real_tokens": int(real.sum()),
            "answer_tokens": answers.shape[1],
        }


def _vision(order: Sequence[EncodedSample]) -> dict[str, torch.Tensor | None]:
    """Vision tensors of the samples in batch order, or None when the batch has no media."""
    with_media = [s for s in order if s["vision_grid"].shape[0] > 0]
    if not with_media:
        return {"pixel_values": None, "vision_grid": None, "patch_positions": None, "vision_frames": 0,
                "longest_frame": 0}
    grid = torch.cat([s["vision_grid"] for s in with_media])
    return {
        "pixel_values": torch.cat([s["pixel_values"] for s in with_media]),
        "vision_grid": grid,
        "patch_positions": torch.cat([s["patch_positions"] for s in with_media]),
        "vision_frames": int(grid[:, 0].sum()),
        "longest_frame": int((grid[:, 1] * grid[:, 2]).max()),
    }
