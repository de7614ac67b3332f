"""Vision encoder: Qwen2-VL's ViT with 2D RoPE and per-frame attention.

Qwen2-VL (arXiv 2409.12191, section 2.1) encodes images at their native resolution: a Conv3d
cuts ``(temporal_patch, patch, patch)`` cubes (an image is its frame repeated), and 2D RoPE puts
each patch's row and column into attention. SPEC.md section 6 fixes the details: the head's
``d/2`` rotary angles are split in half, the first quarter of channels rotating with the patch
row and the second with the column, both at ``inv_freq[j] = theta ** (-2j / (d/2))``.

Patches arrive in merge-window order (the processor's job), so a batch is one flat run of
patches from many frames of many sizes. Attention must stay inside one frame, a document mask
(:mod:`minivlm.model.attention`) whose documents are the frames: with the ``flex`` kernel (CUDA)
over the flat run itself, skipping the tiles between frames; with ``sdpa`` (CPU) over the frames
scattered into a padded ``(frames, longest, dim)`` tensor, where the dense mask is per frame
(``frames x longest^2``), not over the whole run (``N^2``).

Optionally (``vit_abs_pos``), as in Qwen3-VL, a learned ``S x S`` table of absolute position
embeddings is resampled bilinearly to each frame's patch grid and added after the patch
embedding: a patch then knows where it lies *as a fraction of its frame*, which RoPE alone (only
offsets between patches) never tells it. The table starts as the fixed 2D sin-cos embedding of
MAE (arXiv 2111.06377, section 3 / appendix A.1) at unit amplitude, or (``vit_abs_pos_init:
normal``) as small noise: with noise the LM first has to wait for the table to grow before a
token's features say where it is, which results/learning/README.md measures as hundreds of
extra steps on the grounding task. ``vit_abs_pos_scale`` sets the sin-cos start's amplitude: at 1
a token's place explains about three quarters of its features' variance at initialisation and
the colour of the object under it a tenth (results/learning/merger), so the LM reads where
objects are long before what they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import DropPath, Mlp
from torch import nn

from minivlm.model.attention import DocumentMask, kernel_for
from minivlm.model.config import ModelConfig
from minivlm.rope import apply_rotary, inverse_frequencies


def vision_rope_cos_sin(patch_positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """2D RoPE tables ``(N, head_dim)`` for un-merged patch coordinates ``(N, 2)`` = (row, col).

    Row and column share the frequencies ``theta ** (-2j / (head_dim/2))``, ``j < head_dim/4``.
    """
    inv_freq = inverse_frequencies(head_dim // 2, theta).to(patch_positions.device)
    angle = (patch_positions.float().unsqueeze(-1) * inv_freq).flatten(1)  # (N, 2 * head_dim/4): rows, then cols
    angle = torch.cat([angle, angle], dim=-1)
    return angle.cos(), angle.sin()


class FrameLayout:
    """Where each patch of a flat batch sits in the padded ``(frames, longest)`` layout.

    ``vision_grid`` rows are ``(t, h, w)`` in un-merged patches; each of the ``t`` temporal
    groups is one attention frame of ``h * w`` patches. The sizes that shape tensors (patches,
    frames, the longest frame) are Python numbers, the collator's ``vision_frames`` and
    ``longest_frame``, so that building the layout never waits for the device; without them
    they are read from ``vision_grid`` (a host sync on a GPU).
    """

    def __init__(self, vision_grid: torch.Tensor, patches: int, frames: int | None = None,
                 longest: int | None = None) -> None:
        grid = vision_grid.long()
        frames = int(grid[:, 0].sum()) if frames is None else frames
        frame_sizes = torch.repeat_interleave(grid[:, 1] * grid[:, 2], grid[:, 0], output_size=frames)
        self.num_frames = frames
        self.longest = int(frame_sizes.max()) if longest is None else longest
        starts = torch.cumsum(frame_sizes, 0) - frame_sizes
        self.frame = torch.repeat_interleave(torch.arange(frames, device=grid.device), frame_sizes, output_size=patches)
        self.slot = torch.arange(patches, device=grid.device) - starts[self.frame]
        self.valid = torch.zeros(frames, self.longest, dtype=torch.bool, device=grid.device)
        self.valid[self.frame, self.slot] = True

    def pad(self, flat: torch.Tensor) -> torch.Tensor:
        """``(N, ...)`` -> ``(frames, longest, ...)``, zeros at padding."""
        padded = flat.new_zeros(self.num_frames, self.longest, *flat.shape[1:])
        padded[self.frame, self.slot] = flat
        return padded

    def unpad(self, padded: torch.Tensor) -> torch.Tensor:
        return padded[self.frame, self.slot]


def sincos_table(side: int, dim: int, base: float = 100.0) -> torch.Tensor:
    """``(1, dim, side, side)`` 2D sin-cos embedding: a quarter of the channels each for sin and cos
    of the row and of the column, at ``dim / 4`` frequencies from 1 down to ``1 / base`` radians per
    cell. The base is 100, not the 10000 of text, because a table has tens of cells, not thousands
    of tokens: the slowest channel still turns visibly across the frame."""
    if dim % 4:
        raise ValueError(f"a 2D sin-cos table needs vit_dim divisible by 4, got {dim}; change vit_dim.")
    omega = base ** (-torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    angles = torch.arange(side, dtype=torch.float32)[:, None] * omega  # (side, dim / 4)
    rows = torch.cat([angles.sin(), angles.cos()], -1)[:, None, :].expand(side, side, -1)
    cols = torch.cat([angles.sin(), angles.cos()], -1)[None, :, :].expand(side, side, -1)
    return torch.cat([rows, cols], -1).permute(2, 0, 1)[None].contiguous()


class AbsolutePositions(nn.Module):
    """A learned ``(side, side, dim)`` table, sampled at each patch's centre in frame coordinates."""

    def __init__(self, side: int, dim: int, init: str = "sincos", scale: float = 1.0) -> None:
        super().__init__()
        if init == "sincos":
            self.table = nn.Parameter(scale * sincos_table(side, dim))
        else:
            self.table = nn.Parameter(torch.zeros(1, dim, side, side))
            nn.init.normal_(self.table, std=0.02)

    def forward(self, patch_positions: torch.Tensor, vision_grid: torch.Tensor) -> torch.Tensor:
        """``(N, dim)`` embeddings for patches at ``(row, col)`` of frames of ``vision_grid`` sizes."""
        grid = vision_grid.long()
        sizes = torch.repeat_interleave(grid[:, 1:], grid[:, 0] * grid[:, 1] * grid[:, 2], dim=0,
                                        output_size=patch_positions.shape[0])  # (N, 2)
        # Patch centres in [-1, 1] (grid_sample's x, y order); align_corners=False makes the
        # table's cells and the frame's patches both tile the same unit square.
        centres = (2 * (patch_positions.flip(-1).float() + 0.5) / sizes.flip(-1).float() - 1)
        sampled = F.grid_sample(self.table, centres.view(1, 1, -1, 2).to(self.table.dtype),
                                mode="bilinear", padding_mode="border", align_corners=False)
        return sampled[0, :, 0].T


class VisionAttention(nn.Module):
    """Multi-head self-attention inside each frame, with optional 2D RoPE on q and k."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: DocumentMask,
                rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        frames, length, dim = x.shape
        q, k, v = self.qkv(x).view(frames, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if rope is not None:
            cos, sin = rope  # (frames, 1, length, head_dim): same table for every head
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        out = mask.attend(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(frames, length, dim))


class VisionBlock(nn.Module):
    """Pre-norm transformer block: attention then MLP, each with stochastic depth."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, drop_path: float, eps: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = VisionAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, mask: DocumentMask,
                rope: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), mask, rope))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionEncoder(nn.Module):
    """Patches ``(N, patch_dim)`` in merge-window order -> features ``(N, vit_dim)``.

    Returns the last block's output and the outputs of ``config.deepstack_layers`` (in that
    order) for the DeepStack mergers.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        cube = (config.temporal_patch, config.patch_size, config.patch_size)
        self.patch_embed = nn.Conv3d(config.in_channels, config.vit_dim, kernel_size=cube, stride=cube, bias=False)
        self.abs_pos = None
        if config.vit_abs_pos:
            self.abs_pos = AbsolutePositions(config.vit_abs_pos, config.vit_dim, config.vit_abs_pos_init,
                                             config.vit_abs_pos_scale)
        rates = [config.drop_path * i / max(1, config.vit_depth - 1) for i in range(config.vit_depth)]  # 0 -> drop_path
        self.blocks = nn.ModuleList(
            VisionBlock(config.vit_dim, config.vit_heads, config.vit_mlp_ratio, rate, config.norm_eps) for rate in rates
        )

    def forward(self, pixel_values: torch.Tensor, vision_grid: torch.Tensor, patch_positions: torch.Tensor,
                frames: int | None = None, longest: int | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``frames`` and ``longest``: the batch's frame count and longest frame in patches (the
        collator's ``vision_frames`` and ``longest_frame``); None reads them from ``vision_grid``."""
        config = self.config
        if pixel_values.shape[-1] != config.patch_dim:
            raise ValueError(
                f"pixel_values rows have {pixel_values.shape[-1]} values but the model's patches have "
                f"{config.patch_dim} (channels {config.in_channels} x temporal {config.temporal_patch} x "
                f"{config.patch_size}x{config.patch_size}); build the Processor with the model's patch_size."
            )
        cube = pixel_values.view(-1, config.in_channels, config.temporal_patch, config.patch_size, config.patch_size)
        flat = self.patch_embed(cube.to(self.patch_embed.weight.dtype)).flatten(1)
        if self.abs_pos is not None:
            flat = flat + self.abs_pos(patch_positions, vision_grid)
        layout = FrameLayout(vision_grid, flat.shape[0], frames, longest)
        if kernel_for(flat.device, flat.shape[0]) == "flex":
            # One row holding every patch, the frames as documents: no padding at all.
            to_rows, from_rows = (lambda t: t[None]), (lambda x: x[0])
            mask = DocumentMask(layout.frame[None], causal=False)
        else:
            # Frames padded to the longest, padding as document -1 (it sees only padding).
            to_rows, from_rows = layout.pad, layout.unpad
            mask = DocumentMask(torch.where(layout.valid, 0, -1), causal=False)
        x = to_rows(flat)
        rope = None
        if config.vit_rope:
            cos, sin = vision_rope_cos_sin(patch_positions, config.vit_head_dim, config.vit_rope_theta)
            rope = (to_rows(cos).unsqueeze(1), to_rows(sin).unsqueeze(1))
        captured = {}
        for index, block in enumerate(self.blocks):
            x = block(x, mask, rope)
            if index in config.deepstack_layers:
                captured[index] = from_rows(x)
        return from_rows(x), [captured[index] for index in config.deepstack_layers]
