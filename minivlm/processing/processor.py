"""The processor: one sample of the data schema to model inputs (token ids, labels, patches).

It ties the steps of Qwen2-VL's input pipeline (arXiv 2409.12191, section 2.1) together: decode
and smart-resize each image or frame (:mod:`~minivlm.processing.resize`), cut it into patches in
merge-window order (:mod:`~minivlm.processing.patches`), lay videos out in time
(:mod:`~minivlm.processing.media`), and template the conversation with one placeholder per merged
vision token (:mod:`~minivlm.processing.template`). Every error is a :class:`SampleError` (a
``ValueError``) that names the sample it came from and the kind of fault, so that a real dataset
can skip and count the samples the processor rejects (:mod:`minivlm.data.adapters`). Runs on CPU
inside DataLoader workers; position ids are built later, by the collator.

``save_pretrained`` / ``from_pretrained`` write and read the processor's part of an export folder
(:class:`~minivlm.run_folder.ExportFolder`): its settings, the tokenizer and the chat template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from minivlm.processing.media import EncodedMedia, VisionSpec, encode_image, encode_video
from minivlm.processing.template import CHAT_TEMPLATE, render_chat
from minivlm.run_folder import ExportFolder
from minivlm.schema import EncodedSample, Sample
from minivlm.tokenizer import BPETokenizer


class SampleError(ValueError):
    """A sample the processor rejects: ``reason`` is the kind of fault (``bad image``, ``bad video``,
    ``bad conversation``, ``longer than max_seq_len``, ``malformed sample``), the message the details."""

    def __init__(self, sample_id: Any, reason: str, detail: str) -> None:
        super().__init__(f"sample {sample_id!r}: {detail}")
        self.reason = reason


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def check_sample(sample: Any) -> None:
    """The shape of a :class:`~minivlm.schema.Sample` outside its messages (checked by the template)."""
    if not isinstance(sample, Mapping):
        raise ValueError(f"a sample must be a dict (minivlm.schema.Sample), got {type(sample).__name__}.")
    for key in ("id", "task", "answer"):
        if key in sample and not isinstance(sample[key], str):
            raise ValueError(f"sample {key!r} must be a string, got {sample[key]!r:.80}.")
    if "messages" not in sample:
        raise ValueError("the sample has no 'messages'; give the conversation as a list of messages.")
    if not _is_list(sample.get("images", [])):
        raise ValueError(f"'images' must be a list of images, got {type(sample['images']).__name__}.")
    videos = sample.get("videos", [])
    if not _is_list(videos) or not all(isinstance(v, Mapping) and _is_list(v.get("frames")) for v in videos):
        raise ValueError("'videos' must be a list of {'frames': [image, ...], 'fps': number} dicts.")


class Processor:
    """:class:`~minivlm.schema.Sample` -> :class:`~minivlm.schema.EncodedSample`.

    The defaults suit the tiny model and the synthetic tasks (images of 112 to 224 px, 64 px
    video frames at 1 fps): 8 px patches merged 2x2, so one LLM token covers 16x16 pixels.

    Args:
        tokenizer: the BPE tokenizer (special tokens at their fixed ids).
        patch_size: ViT patch side in pixels (must equal the vision encoder's).
        temporal_patch: frames per Conv3d temporal patch (must equal the vision encoder's).
        merge: merge window side (must equal the patch merger's).
        min_pixels: smaller images are scaled up to at least this many pixels (default 2x2 tokens).
        max_pixels: larger images are scaled down to at most this many pixels (default 24x24 tokens).
        image_mean, image_std: per-channel normalisation of pixels in [0, 1]; 0.5/0.5 maps them to
            [-1, 1], a neutral choice for a ViT trained from scratch.
        fps: target video frame rate; faster videos are subsampled, slower ones kept whole.
        video_layout: ``timestamps`` (Qwen3-VL text timestamps) or ``absolute_time`` (Qwen2.5-VL;
            pair with the mrope option ``tokens_per_second``).
        max_seq_len: longest templated sample allowed, in tokens (the LM's context).
        train_user_text: also train on the user's text, not only the answers
            (:func:`~minivlm.processing.template.render_chat`).
    """

    def __init__(
        self,
        tokenizer: BPETokenizer,
        patch_size: int = 8,
        temporal_patch: int = 2,
        merge: int = 2,
        min_pixels: int = 32 * 32,
        max_pixels: int = 384 * 384,
        image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        image_std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        fps: float = 2.0,
        video_layout: str = "timestamps",
        max_seq_len: int = 2048,
        train_user_text: bool = False,
    ) -> None:
        if not isinstance(max_seq_len, int) or max_seq_len < 1:
            raise ValueError(f"processor max_seq_len must be a positive int, got {max_seq_len!r}.")
        self.tokenizer = tokenizer
        self.spec = VisionSpec(
            patch_size=patch_size, temporal_patch=temporal_patch, merge=merge,
            min_pixels=min_pixels, max_pixels=max_pixels,
            mean=tuple(image_mean), std=tuple(image_std), fps=fps, video_layout=video_layout,
        )
        self.max_seq_len = max_seq_len
        self.train_user_text = bool(train_user_text)

    def __call__(self, sample: Sample, prompt_only: bool = False) -> EncodedSample:
        """Encode one sample.

        Args:
            sample: media and a conversation (see :class:`~minivlm.schema.Sample`).
            prompt_only: template for generation: no answer, ends with ``<|im_start|>assistant\\n``.

        Returns:
            the encoded sample (empty vision tensors when the sample has no media), with ``id``,
            ``task`` and ``answer`` carried for the collator.

        Raises:
            SampleError: naming the sample, for any bad image, video, message or length.
        """
        sample_id = sample.get("id", "<no id>") if isinstance(sample, Mapping) else "<no id>"
        reason = "malformed sample"
        try:
            check_sample(sample)
            reason = "bad image"
            images = [encode_image(image, self.spec) for image in sample.get("images", [])]
            reason = "bad video"
            videos = [encode_video(video["frames"], video.get("fps"), self.spec) for video in sample.get("videos", [])]
            reason = "bad conversation"
            chat = render_chat(sample["messages"], images, videos, self.tokenizer, prompt_only, self.train_user_text)
        except ValueError as error:
            raise SampleError(sample_id, reason, str(error)) from None
        length = chat.input_ids.numel()
        if length > self.max_seq_len:
            raise SampleError(sample_id, "longer than max_seq_len", (
                f"templated sample has {length} tokens, more than max_seq_len={self.max_seq_len}; "
                "raise max_seq_len (and the model's context), or lower max_pixels or the video fps "
                "so the media take fewer tokens. Samples are never truncated."
            ))
        return {
            "input_ids": chat.input_ids,
            "labels": chat.labels,
            "segments": chat.segments,
            **self._vision_tensors(chat.media),
            "id": sample.get("id", ""),
            "task": sample.get("task", ""),
            "answer": sample.get("answer", ""),
        }

    def settings(self) -> dict[str, Any]:
        """The constructor's arguments but the tokenizer: what ``processor_config.json`` holds."""
        spec = self.spec
        return {"patch_size": spec.patch_size, "temporal_patch": spec.temporal_patch, "merge": spec.merge,
                "min_pixels": spec.min_pixels, "max_pixels": spec.max_pixels, "image_mean": list(spec.mean),
                "image_std": list(spec.std), "fps": spec.fps, "video_layout": spec.video_layout,
                "max_seq_len": self.max_seq_len, "train_user_text": self.train_user_text}

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the settings, the tokenizer and the chat template into ``folder`` (created); returns it."""
        files = ExportFolder(folder)
        files.root.mkdir(parents=True, exist_ok=True)
        files.processor.write_text(json.dumps(self.settings(), indent=2))
        self.tokenizer.save(files.tokenizer_dir)
        files.chat_template.write_text(CHAT_TEMPLATE)
        return files.root

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> Processor:
        """The processor that :meth:`save_pretrained` wrote into ``folder``, with its tokenizer.

        Raises:
            ValueError: ``folder`` has no processor settings or no tokenizer.
        """
        files = ExportFolder(folder)
        if not files.processor.is_file():
            raise ValueError(f"{files.root} has no {files.processor.name}; pass an export folder written by "
                             "training (outputs/<run>/export) or by Processor.save_pretrained")
        return cls(BPETokenizer.load(files.tokenizer_dir), **json.loads(files.processor.read_text()))

    def _vision_tensors(self, media: list[EncodedMedia]) -> dict[str, torch.Tensor]:
        """Patch rows, grids and patch coordinates of all media, in token order."""
        if not media:
            return {
                "pixel_values": torch.zeros(0, self.spec.patch_dim),
                "vision_grid": torch.zeros(0, 3, dtype=torch.long),
                "patch_positions": torch.zeros(0, 2, dtype=torch.long),
            }
        return {
            "pixel_values": torch.cat([m.pixel_values for m in media]),
            "vision_grid": torch.tensor([grid for m in media for grid in m.grids], dtype=torch.long),
            "patch_positions": torch.cat([m.patch_positions for m in media]),
        }
