"""Where the answer looks: attention mass from the answer position to every image location, per layer.

Circle-RoPE (arXiv 2505.16416, section 3.1) argues that M-RoPE-style ids put a text token nearer
some image tokens than others, so attention from text to image prefers some locations for no
reason of content. This module measures that preference in a model: for prompt batches
(left-padded, ending with ``<|im_start|>assistant\\n``), the softmax weights of the last position,
the one whose output predicts the first answer token, over every key, in every LM layer and head.

On real prompts the map mixes content and position. On content-free prompts (every image one
uniform colour: :func:`content_free`) all image tokens carry the same pixels, so whatever
preference remains is positional by construction: the LM's rope, and the ViT's own position
signal (its 2D RoPE and absolute table) that reaches the LM in the values.

SDPA does not return its weights, so they are recomputed from each attention module's own
inputs (a forward pre-hook: the normed hidden states, cos/sin of that layer's design) with the
module's own projections; tests/test_bias.py checks that the weights times the values give the
module's output at that position.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from PIL import Image

from minivlm.data.tasks.scene import BACKGROUND
from minivlm.model import VLM
from minivlm.model.lm import Attention
from minivlm.rope import apply_rotary
from minivlm.schema import Batch


def last_query_weights(attention: Attention, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                       key_mask: torch.Tensor) -> torch.Tensor:
    """Softmax weights ``(B, heads, L)`` of the last position of ``x`` over all keys, in float32.

    Args:
        attention: an LM attention module (its projections, QK-norm and head layout are used).
        x: its input ``(B, L, lm_dim)`` (after the layer's RMSNorm).
        cos, sin: the layer's rope tables ``(B, 1, L, head_dim)``.
        key_mask: ``(B, L)`` bool, the keys the last position may attend to (its row's real tokens).
    """
    batch, length, _ = x.shape
    q = attention.q_norm(attention.q_proj(x[:, -1:]).view(batch, 1, attention.heads, attention.head_dim))
    k = attention.k_norm(attention.k_proj(x).view(batch, length, attention.kv_heads, attention.head_dim))
    q = apply_rotary(q.transpose(1, 2).float(), cos[:, :, -1:].float(), sin[:, :, -1:].float())
    k = apply_rotary(k.transpose(1, 2).float(), cos.float(), sin.float())
    k = k.repeat_interleave(attention.heads // attention.kv_heads, dim=1)  # SDPA's enable_gqa grouping
    scores = (q @ k.transpose(-1, -2)).squeeze(2) / math.sqrt(attention.head_dim)  # (B, heads, L)
    return scores.masked_fill(~key_mask[:, None, :], float("-inf")).softmax(dim=-1)


@torch.no_grad()
def answer_attention(model: VLM, batch: Batch, pad_id: int) -> torch.Tensor:
    """Attention weights ``(layers, B, heads, L)`` of every prompt's last position, one forward pass.

    The prompts must be left-padded (the prompt collator's layout), so every row ends at its
    answer position and sees all its real tokens (``input_ids != pad_id``).
    """
    weights: list[torch.Tensor] = []
    key_mask = batch["input_ids"] != pad_id

    def capture(module: Attention, args: tuple[Any, ...]) -> None:
        x, cos, sin = args[:3]
        weights.append(last_query_weights(module, x, cos, sin, key_mask))

    hooks = [layer.attn.register_forward_pre_hook(capture) for layer in model.lm.layers]
    try:
        model({**batch, "labels": None})  # no labels: prompts have no answer tokens to score
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(weights)


def image_grid(batch: Batch, row: int) -> tuple[int, int]:
    """Merged-token rows and columns of the one image of prompt ``row`` (its ``vision_grid`` entry)."""
    grids = batch["vision_grid"]
    if grids is None or grids.shape[0] != batch["input_ids"].shape[0]:
        raise ValueError("attention maps need exactly one image per prompt (one vision block each); "
                         "probe an image task such as grounding")
    return int(grids[row, 1]), int(grids[row, 2])


def image_mass(weights: torch.Tensor, batch: Batch, image_token_id: int, merge: int) -> list[torch.Tensor]:
    """Per prompt of a batch with one image each, its answer position's attention mass on every merged
    image location, ``(layers, heads, H, W)``, from :func:`answer_attention`'s ``weights``."""
    vision = batch["input_ids"] == image_token_id
    masses = []
    for row in range(weights.shape[1]):
        rows, columns = image_grid(batch, row)
        masses.append(weights[:, row][:, :, vision[row]].reshape(*weights.shape[:1], weights.shape[2],
                                                                  rows // merge, columns // merge))
    return masses


def location_maps(model: VLM, batches: Iterable[Batch], pad_id: int, merge: int) -> dict[str, dict[str, Any]]:
    """Mean attention mass of the answer position on every image location, per layer and head.

    Args:
        model: the VLM, in eval mode.
        batches: left-padded prompt batches with one image each.
        pad_id: the tokenizer's padding id.
        merge: the ViT's spatial merge (patch rows per merged token row).
    Returns:
        ``{"HxW": {"n": prompts, "maps": (layers, heads, H, W) list, "image_mass": (layers, heads) list}}``,
        one entry per merged image size met; a map's values are fractions of all of the
        position's attention (text keys included), averaged over prompts.
    """
    sums: dict[tuple[int, int], torch.Tensor] = {}
    counts: dict[tuple[int, int], int] = {}
    for batch in batches:
        for mass in image_mass(answer_attention(model, batch, pad_id), batch, model.config.image_token_id, merge):
            shape = tuple(mass.shape[-2:])
            sums[shape] = sums.get(shape, 0) + mass.double()
            counts[shape] = counts.get(shape, 0) + 1
    return {f"{h}x{w}": {"n": counts[(h, w)], "maps": (sums[(h, w)] / counts[(h, w)]).tolist(),
                         "image_mass": (sums[(h, w)] / counts[(h, w)]).sum(dim=(-1, -2)).tolist()}
            for h, w in sorted(sums)}


def content_free(sample: dict) -> dict:
    """The same sample with every image replaced by one of its size in the scenes' background colour."""
    images = [Image.new("RGB", image.size, BACKGROUND) for image in sample["images"]]
    return {**sample, "images": images}
