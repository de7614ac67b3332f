"""AdamW with decoupled weight decay on matrices only, and a warmup + cosine learning rate.

Weight decay pulls weights towards zero; on norm gains, biases and embedding tables that is a
bias rather than a regulariser (decayed norm gains shrink activations, decayed embeddings of
rare tokens vanish), so, as in GPT-2/LLaMA training recipes, only weight matrices of linear and
convolution layers are decayed. The schedule warms up linearly (Adam's second-moment estimate
is noisy for the first steps) and then follows a cosine down to ``min_lr_ratio * lr``
(Loshchilov & Hutter, SGDR, arXiv 1608.03983).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed weight matrices, and everything else (norms, biases, embeddings)."""
    embedding_params = {
        id(p) for module in model.modules() if isinstance(module, nn.Embedding) for p in module.parameters()
    }
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        is_matrix = param.dim() >= 2 and id(param) not in embedding_params
        (decay if is_matrix else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Learning-rate multiplier at ``step``: linear warmup to 1, then cosine to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over :func:`parameter_groups` and its per-step warmup + cosine scheduler."""
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(
            f"need total_steps >= 1 and warmup_steps >= 0, got {total_steps} and {warmup_steps}."
        )
    # Fused: one kernel per step, and it skips its update on the device when told to (``found_inf``,
    # set by the training module's loss guard) without the host having to look.
    optimizer = torch.optim.AdamW(
        parameter_groups(model, weight_decay), lr=lr, betas=tuple(betas), fused=True
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup_steps, total_steps, min_lr_ratio)
    )
    return optimizer, scheduler
