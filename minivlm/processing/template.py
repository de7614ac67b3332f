"""The chat template: messages and vision blocks to token ids, loss labels and rope segments.

Qwen-style ChatML (the data format of Qwen2-VL, arXiv 2409.12191)::

    <|im_start|>user\\n<|vision_start|><|image_pad|>*N<|vision_end|>question<|im_end|>\\n
    <|im_start|>assistant\\nANSWER<|im_end|>

Each vision part expands to its blocks (:mod:`minivlm.processing.media`), every block to
``prefix <|vision_start|> pad * n <|vision_end|>`` with ``n`` the block's merged token count, so
placeholders and vision features agree by construction. Only assistant text and the
``<|im_end|>`` that closes an assistant turn are trained on (the model must learn to stop); the
rest gets label -100. With ``train_user_text`` the user's text is trained on too (its words, never
the markers or vision placeholders): after an image, predicting the question's words asks the
model to name what it sees, and each attribute word the one it belongs with. A prompt drops the final assistant turn and ends with
``<|im_start|>assistant\\n``, exactly the prefix of the training sequence the answer follows.

For the position designs the sequence is a list of segments: text runs (the start/end markers and
timestamp text included, SPEC.md section 7) and one :class:`~minivlm.rope.VisionSegment` per
block.

:data:`CHAT_TEMPLATE` writes the same text as Jinja, the form Hugging Face tools read from an
export (``chat_template.jinja``), with one pad token per image or video as Qwen2-VL's template
does: the processor expands an image's pad to its merged tokens, and a video's to its temporal
groups, each after its timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch

from minivlm.processing.media import EncodedMedia, VisionBlock
from minivlm.rope import Segment, TextSegment
from minivlm.schema import IGNORE_INDEX
from minivlm.tokenizer import IM_END, IM_START, ROLES, SPECIAL_TOKENS, VISION_END, VISION_START, BPETokenizer

CHAT_TEMPLATE = (  # newlines inside {{ }} so that Jinja's whitespace control cannot strip them
    "{%- for message in messages -%}"
    "{%- if not loop.first -%}{{ '\\n' }}{%- endif -%}"
    "<|im_start|>{{ message.role + '\\n' }}"
    "{%- if message.content is string -%}{{ message.content }}"
    "{%- else -%}{%- for part in message.content -%}"
    "{%- if part.type == 'text' -%}{{ part.text }}"
    "{%- elif part.type == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif part.type == 'video' -%}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|im_end|>"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{%- if messages -%}{{ '\\n' }}{%- endif -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


@dataclass(frozen=True)
class RenderedChat:
    """A templated conversation."""

    input_ids: torch.Tensor  # (L,) long
    labels: torch.Tensor  # (L,) long, IGNORE_INDEX where no loss
    segments: list[Segment]  # text runs and vision blocks, lengths summing to L
    media: list[EncodedMedia]  # the media in the order their tokens appear


class _SequenceBuilder:
    """Appends token runs, tracking labels and rope segments."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.trained: list[bool] = []
        self.segments: list[Segment] = []
        self._text_run = 0

    def text(self, ids: list[int], trained: bool = False) -> None:
        self.ids += ids
        self.trained += [trained] * len(ids)
        self._text_run += len(ids)

    def vision(self, pad_id: int, block: VisionBlock) -> None:
        self._close_text_run()
        count = block.segment.num_tokens
        self.ids += [pad_id] * count
        self.trained += [False] * count
        self.segments.append(block.segment)

    def _close_text_run(self) -> None:
        if self._text_run:
            self.segments.append(TextSegment(self._text_run))
            self._text_run = 0

    def finish(self) -> tuple[torch.Tensor, torch.Tensor, list[Segment]]:
        self._close_text_run()
        input_ids = torch.tensor(self.ids, dtype=torch.long)
        labels = torch.where(torch.tensor(self.trained, dtype=torch.bool), input_ids, IGNORE_INDEX)
        return input_ids, labels, self.segments


def _parts(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content", [])
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _check_messages(messages: Any, prompt_only: bool) -> None:
    """The shape of :class:`minivlm.schema.Sample` ``messages``, so that a malformed conversation is a
    ValueError here rather than a KeyError or TypeError somewhere inside the template."""
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise ValueError(f"messages must be a non-empty list of {{'role', 'content'}} dicts, got {messages!r:.80}.")
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in ROLES:
            raise ValueError(f"message {index} must be a dict whose role is one of {', '.join(ROLES)}, "
                             f"got {message!r:.80}.")
        content = message.get("content", [])
        if isinstance(content, str):
            continue
        if not isinstance(content, Sequence) or not all(isinstance(part, Mapping) for part in content):
            raise ValueError(f"message {index} content must be a string or a list of part dicts, got {content!r:.80}.")
        for part in content:
            if part.get("type") == "text" and not isinstance(part.get("text"), str):
                raise ValueError(f"message {index} has a text part without a string 'text': {part!r:.80}.")
    if not prompt_only and not any(message["role"] == "assistant" for message in messages):
        raise ValueError("the conversation has no assistant turn, so it has nothing to train on; end it with the "
                         "answer as an assistant message (prompts for generation: prompt_only=True).")


def _checked_text(text: str) -> str:
    # A special token typed in plain text would add a turn or a placeholder without features.
    found = [token for token in SPECIAL_TOKENS if token in text]
    if found:
        raise ValueError(f"message text contains special token(s) {found}; remove them from the text.")
    return text


def render_chat(
    messages: Sequence[Mapping[str, Any]],
    images: Sequence[EncodedMedia],
    videos: Sequence[EncodedMedia],
    tokenizer: BPETokenizer,
    prompt_only: bool = False,
    train_user_text: bool = False,
) -> RenderedChat:
    """Template ``messages`` whose ``{"type": "image"}`` / ``{"type": "video"}`` parts take
    ``images`` / ``videos`` in order.

    Args:
        messages: ``[{"role": ..., "content": [parts] or str}, ...]`` (:class:`minivlm.schema.Sample`).
        images, videos: encoded media, one per image / video part.
        tokenizer: the BPE tokenizer.
        prompt_only: drop a final assistant turn and end with ``<|im_start|>assistant\\n``.
        train_user_text: also train on the text of user turns (a prompt trains on nothing).

    Raises:
        ValueError: malformed messages, no assistant turn to train on (unless ``prompt_only``),
            media that do not match the parts, special tokens in text.
    """
    _check_messages(messages, prompt_only)
    wanted = {kind: sum(p.get("type") == kind for m in messages for p in _parts(m)) for kind in ("image", "video")}
    if wanted["image"] != len(images) or wanted["video"] != len(videos):
        raise ValueError(
            f"messages have {wanted['image']} image and {wanted['video']} video parts but the sample has "
            f"{len(images)} images and {len(videos)} videos; give one {{'type': 'image'}} part per image "
            "and one {'type': 'video'} part per video."
        )
    if prompt_only and messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    pending = {"image": iter(images), "video": iter(videos)}
    builder, used = _SequenceBuilder(), []
    im_start, im_end = tokenizer.token_id(IM_START), tokenizer.token_id(IM_END)
    vision_start, vision_end = tokenizer.token_id(VISION_START), tokenizer.token_id(VISION_END)
    newline = tokenizer.encode("\n")
    for turn, message in enumerate(messages):
        role = message["role"]
        answer = role == "assistant" and not prompt_only  # a prompt's earlier answers are context, not targets
        trained_text = answer or (train_user_text and role == "user" and not prompt_only)
        if role == "assistant" and not any(p.get("type") == "text" and p["text"].strip() for p in _parts(message)):
            raise ValueError(f"message {turn} is an assistant turn without text, so its answer would be only the "
                             "end of the turn; give the answer's text (or drop the turn).")
        if turn:
            builder.text(newline)
        builder.text([im_start] + tokenizer.encode(f"{role}\n"))
        for part in _parts(message):
            kind = part.get("type")
            if kind == "text":
                builder.text(tokenizer.encode(_checked_text(part["text"])), trained=trained_text)
            elif kind in pending:
                media = next(pending[kind])
                used.append(media)
                for block in media.blocks:
                    builder.text(tokenizer.encode(block.prefix) + [vision_start])
                    builder.vision(tokenizer.token_id(block.pad_token), block)
                    builder.text([vision_end])
            else:
                raise ValueError(f"unknown content part type {kind!r}; valid types: text, image, video.")
        builder.text([im_end], trained=answer)
    if prompt_only:
        builder.text((newline if messages else []) + [im_start] + tokenizer.encode("assistant\n"))
    input_ids, labels, segments = builder.finish()
    return RenderedChat(input_ids, labels, segments, used)
