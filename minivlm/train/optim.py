"""AdamW with decoupled weight decay on matrices only, and a warmup + cosine learning rate.

Weight decay pulls weights towards zero; on norm gains, biases and embedding tables that is a
bias rather than a regulariser (decayed norm gains shrink activations, decayed embeddings of
rare tokens vanish), so, as in GPT-2/LLaMA training recipes, only weight matrices of linear and
convolution layers are decayed. The schedule warms up linearly (Adam's second-moment estimate
is noisy for the first steps) and then follows a cosine down to ``min_lr_ratio * lr``
(Loshchilov & Hutter, SGDR, arXiv 1608.03983).

``lr_scale`` gives a part of the model (``vision``, ``merger``, ``deepstack_mergers``, ``lm``) its
own multiple of the learning rate, 0 freezing it: the lever that tests whether one part moving
too fast costs the others (results/learning/merger).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn


def check_lr_scale(model: nn.Module, lr_scale: Mapping[str, float] | None) -> None:
    """Raise a ``ValueError`` if ``lr_scale`` names a part (a child module) that ``model`` does not have."""
    parts = [name for name, _ in model.named_children()]
    unknown = sorted(set(lr_scale or {}) - set(parts))
    if unknown:
        raise ValueError(f"optim.lr_scale names {unknown}, which the model does not have; its parts are {parts}.")


def parameter_groups(model: nn.Module, weight_decay: float,
                     lr_scale: Mapping[str, float] | None = None) -> list[dict]:
    """AdamW groups: decayed weight matrices and everything else (norms, biases, embeddings), per
    learning-rate scale; the unscaled pair first, each group's ``lr_scale`` its multiple of the lr.

    Raises:
        ValueError: ``lr_scale`` names a part the model does not have.
    """
    check_lr_scale(model, lr_scale)
    lr_scale = dict(lr_scale or {})
    embedding_params = {
        id(p) for module in model.modules() if isinstance(module, nn.Embedding) for p in module.parameters()
    }
    scales = [1.0] + [scale for scale in dict.fromkeys(lr_scale.values()) if scale != 1.0]
    groups = {(scale, decayed): [] for scale in scales for decayed in (True, False)}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_matrix = param.dim() >= 2 and id(param) not in embedding_params
        groups[(lr_scale.get(name.split(".", 1)[0], 1.0), is_matrix)].append(param)
    return [{"params": params, "weight_decay": weight_decay if decayed else 0.0, "lr_scale": scale}
            for (scale, decayed), params in groups.items() if params or scale == 1.0]


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
    lr_scale: Mapping[str, float] | None = None,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over :func:`parameter_groups` (``lr_scale`` as there) and its per-step warmup + cosine scheduler."""
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(
            f"need total_steps >= 1 and warmup_steps >= 0, got {total_steps} and {warmup_steps}."
        )
    # Fused: one kernel per step, and it skips its update on the device when told to (``found_inf``,
    # set by the training module's loss guard) without the host having to look.
    groups = parameter_groups(model, weight_decay, lr_scale)
    for group in groups:
        group["lr"] = lr * group["lr_scale"]  # the scheduler's multiplier then applies to each group's own lr
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, warmup_steps, total_steps, min_lr_ratio)
    )
    return optimizer, scheduler
