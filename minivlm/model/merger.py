"""Patch merger: each ``m x m`` window of ViT patches becomes one LM token.

Qwen2-VL (arXiv 2409.12191, section 2.1) compresses vision tokens with an MLP over the
concatenated features of 2x2 neighbouring patches. SPEC.md section 6: LayerNorm per patch,
concatenate the window, Linear -> GELU -> Linear to the LM width. Patches arrive in merge-window
order, so a window is a run of ``m*m`` consecutive rows and merging is a reshape.

DeepStack (Qwen3-VL technical report, 2025; after "DeepStack", arXiv 2406.04334) feeds
features from intermediate ViT blocks to the first LM layers, each through its own merger whose
LayerNorm runs over the concatenated window instead of per patch.
"""

from __future__ import annotations

import torch
from timm.layers import Mlp
from torch import nn


class PatchMerger(nn.Module):
    """``(N, vit_dim)`` patches in merge-window order -> ``(N / window, lm_dim)`` tokens.

    Args:
        vit_dim: width of a patch feature.
        lm_dim: width of the LM.
        window: patches per merged token (``m * m``).
        norm_after_concat: LayerNorm over the concatenated window (DeepStack) rather than per patch.
        eps: LayerNorm epsilon.
    """

    def __init__(self, vit_dim: int, lm_dim: int, window: int, norm_after_concat: bool = False,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.window = window
        self.norm_after_concat = norm_after_concat
        hidden = vit_dim * window
        self.norm = nn.LayerNorm(hidden if norm_after_concat else vit_dim, eps=eps)
        self.mlp = Mlp(hidden, hidden, lm_dim, act_layer=nn.GELU)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        if patches.shape[0] % self.window:
            raise ValueError(
                f"{patches.shape[0]} patches do not fill whole {self.window}-patch merge windows; the "
                "processor must resize images to multiples of patch_size * spatial_merge."
            )
        if self.norm_after_concat:
            return self.mlp(self.norm(patches.reshape(-1, self.window * patches.shape[-1])))
        return self.mlp(self.norm(patches).reshape(-1, self.window * patches.shape[-1]))
