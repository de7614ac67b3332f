"""Cut frames into ViT patches in merge-window order, with their 2D patch coordinates.

Qwen2-VL's vision tower (arXiv 2409.12191, section 2.1) embeds ``temporal_patch x patch x patch``
cubes with a Conv3d and later merges every ``merge x merge`` window of neighbouring patches into
one LLM token. Emitting the patches *window by window* (SPEC.md section 6: each run of
``merge**2`` consecutive patches is one window, windows in raster order) makes that merge a plain
reshape of consecutive rows, with no gather. For a 4x4 grid and ``merge = 2`` the order is
(0,0) (0,1) (1,0) (1,1) (0,2) (0,3) (1,2) (1,3) (2,0) (2,1) (3,0) (3,1) (2,2) ...

Each patch is the channels-first flatten of its ``(C, temporal_patch, patch, patch)`` cube, the
layout of a Conv3d weight ``(D, C, tp, p, p)``, so the embedding may be a Linear on these rows.
"""

from __future__ import annotations

import torch


def pad_to_temporal_patch(frames: torch.Tensor, temporal_patch: int) -> torch.Tensor:
    """Repeat the last frame of ``(T, C, H, W)`` until ``T`` is a multiple of ``temporal_patch``.

    An image (``T = 1``) becomes ``temporal_patch`` copies of itself; an odd video gets its last
    frame twice.
    """
    missing = -frames.shape[0] % temporal_patch
    if missing == 0:
        return frames
    return torch.cat([frames, frames[-1:].expand(missing, *frames.shape[1:])])


def patchify(
    frames: torch.Tensor, patch_size: int, temporal_patch: int, merge: int
) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Patch rows of ``frames`` in merge-window order.

    Args:
        frames: ``(T, C, H, W)``, ``H`` and ``W`` multiples of ``patch_size * merge``; ``T`` is
            padded to a multiple of ``temporal_patch`` by repeating the last frame.
        patch_size, temporal_patch, merge: the ViT's patch and merge sizes.

    Returns:
        ``(pixel_values, grid)``: ``pixel_values`` is ``(grid_t * grid_h * grid_w, C * tp * p * p)``,
        groups slowest, then merge windows in raster order, then patches in raster order inside a
        window; ``grid = (grid_t, grid_h, grid_w)`` in un-merged patches.
    """
    factor = patch_size * merge
    _, channels, height, width = frames.shape
    if height % factor or width % factor:
        raise ValueError(
            f"frames of size {height}x{width} are not multiples of patch_size*merge={factor}; "
            "resize them with smart_resize first."
        )
    frames = pad_to_temporal_patch(frames, temporal_patch)
    grid_t, grid_h, grid_w = frames.shape[0] // temporal_patch, height // patch_size, width // patch_size
    cubes = frames.reshape(
        grid_t, temporal_patch, channels,
        grid_h // merge, merge, patch_size,
        grid_w // merge, merge, patch_size,
    )
    # -> (group, window row, window col, row in window, col in window, C, tp, p, p)
    cubes = cubes.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return cubes.reshape(grid_t * grid_h * grid_w, -1), (grid_t, grid_h, grid_w)


def patch_positions(grid_t: int, grid_h: int, grid_w: int, merge: int) -> torch.Tensor:
    """``(row, col)`` of every patch of :func:`patchify`'s output: LongTensor ``(grid_t*grid_h*grid_w, 2)``.

    Un-merged patch coordinates (the ViT's 2D RoPE ids), repeated for every temporal group.
    """
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    coords = torch.stack([rows, cols], dim=-1)  # (grid_h, grid_w, 2)
    windows = coords.reshape(grid_h // merge, merge, grid_w // merge, merge, 2).permute(0, 2, 1, 3, 4)
    return windows.reshape(-1, 2).repeat(grid_t, 1)
