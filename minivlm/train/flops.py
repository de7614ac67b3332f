"""Floating-point operations of a batch, for tokens/s and model FLOPs utilisation (MFU).

A matrix multiply of a ``(n, k)`` input with a ``(k, m)`` weight costs ``2 n k m`` FLOPs, so a
token passing through a weight matrix of ``P`` entries costs ``2 P`` forward, and training costs
three times the forward (the backward computes input and weight gradients, ``2x`` forward):
the ``6 N`` per token of Kaplan et al., "Scaling Laws for Neural Language Models" (arXiv
2001.08361, section 2.1). Attention adds ``QK^T`` and ``AV``, ``4 L^2 d`` forward per sequence of
length ``L`` and width ``d``, counted over the full ``L x L`` square as in PaLM's MFU (Chowdhery
et al., arXiv 2204.02311, appendix B). Only weight matrices count: norms, activations and rope
rotations are a few FLOPs per element, negligible beside the matmuls.

Counts follow the shapes the model computes: each module sees only its own tokens (the ViT its
patches, the mergers the merged tokens, the LM every row position, the output head only the
answer tokens it scores), and padding counts as work, so pad-heavy batches show in the MFU
(``data.layout=pack`` reduces padding; the share is logged as ``train/packing_efficiency``).
Everything counted is a shape or one of the collator's Python counts (``answer_tokens``,
``vision_frames``, ``longest_frame``), so counting never waits for the device.
"""

from __future__ import annotations

from torch import nn

from minivlm.model import VLM
from minivlm.schema import Batch


def matmul_weights(module: nn.Module) -> int:
    """Entries of the weight matrices (linear and convolution kernels) of ``module``."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv3d)))


def forward_flops(model: VLM, batch: Batch) -> int:
    """FLOPs of one forward pass over ``batch`` (see the module docstring for what counts).

    The output head is applied to the answer tokens of a training batch, or to one position per
    row of a prompt batch (no answer tokens: the next-token logits that start generation).
    """
    config = model.config
    rows, length = batch["input_ids"].shape
    lm_layers = matmul_weights(model.lm.layers)
    attention = 4 * rows * length**2 * config.lm_heads * config.lm_head_dim * config.lm_layers
    scored = batch["answer_tokens"] or rows
    flops = 2 * lm_layers * rows * length + attention + 2 * model.lm.head.weight.numel() * scored
    if batch.get("vision_grid") is not None:
        patches = batch["pixel_values"].shape[0]
        merged = patches // config.spatial_merge**2
        # The ViT attends within each frame, padded to the longest frame of the batch.
        frames, longest = batch["vision_frames"], batch["longest_frame"]
        vit_attention = 4 * frames * longest**2 * config.vit_dim * config.vit_depth
        mergers = matmul_weights(model.merger) + matmul_weights(model.deepstack_mergers)
        flops += 2 * matmul_weights(model.vision) * patches + vit_attention + 2 * mergers * merged
    return flops


def training_flops(model: VLM, batch: Batch) -> int:
    """FLOPs of a forward and backward pass over ``batch``: three forwards."""
    return 3 * forward_flops(model, batch)
