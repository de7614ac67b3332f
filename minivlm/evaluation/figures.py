"""Teaching figures: which frequency reads which axis, and where each design puts an image.

    python -m minivlm.evaluation.figures --out results/figures

``frequency_maps.png``: for the ``chunked`` (M-RoPE, Qwen2-VL), ``interleaved`` (MRoPE-I,
Qwen3-VL) and ``lta`` (VideoRoPE, arXiv 2502.05173 section 3.1) allocations (SPEC.md
section 2), the rotary pair -> axis map: a coloured cell where pair ``i`` (x) reads axis t, h or
w (y), its colour the pair's wavelength. Chunked gives time only the fast pairs and width only
the slow ones; interleaved spreads every axis over the spectrum; lta gives time the slowest.

``image_ids.png``: the ids of text, a 4x4 image, text under ``mrope``, ``circle`` and
``videorope`` (SPEC.md section 3). Top: the 3D id space, text on the diagonal, grey lines
from the first text token after the image to every image token (equal lengths: a cone, PTD 0,
for Circle-RoPE). Bottom: the same ids seen down the text axis (projected on the plane
orthogonal to (1, 1, 1)): M-RoPE's and VideoRoPE's grids vs Circle-RoPE's ring around the axis.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure  # pyplot-free: rendered by Agg on save

from minivlm.rope import (
    DEFAULT_THETA,
    TextSegment,
    VisionSegment,
    axis_string,
    default_sections,
    inverse_frequencies,
    pair_axes,
    position_ids,
    vision_mask,
)

ALLOCATIONS_SHOWN = ("chunked", "interleaved", "lta")
DESIGNS_SHOWN = ("mrope", "circle", "videorope")
# Orthonormal basis of the plane orthogonal to the text direction (1, 1, 1), as (t, h, w): circle.py's.
PLANE = torch.tensor([[0.0, 1.0, -1.0], [2.0, -1.0, -1.0]]) / torch.tensor([[math.sqrt(2)], [math.sqrt(6)]])


def wavelength_map(allocation: str, head_dim: int, theta: float) -> torch.Tensor:
    """``(3, P)``: log10 wavelength (positions per turn) where pair i reads axis t/h/w, NaN elsewhere."""
    axes = pair_axes(allocation, head_dim // 2)
    log_wavelength = torch.log10(2 * math.pi / inverse_frequencies(head_dim, theta).double())
    grid = torch.full((3, head_dim // 2), math.nan, dtype=torch.float64)
    grid[axes, torch.arange(head_dim // 2)] = log_wavelength
    return grid


def plot_frequency_maps(path: Path, head_dim: int = 128, theta: float = DEFAULT_THETA) -> None:
    """``frequency_maps.png`` (module docstring): one pair -> axis map per allocation."""
    figure = Figure(figsize=(9, 4.8), dpi=100, layout="constrained")
    panels = figure.subplots(len(ALLOCATIONS_SHOWN), 1, sharex=True)
    cmap = colormaps["viridis"].with_extremes(bad="#eeeeee")  # grey: the pair does not read this axis
    for axes, allocation in zip(panels, ALLOCATIONS_SHOWN, strict=True):
        grid = wavelength_map(allocation, head_dim, theta)
        image = axes.imshow(grid.numpy(), aspect="auto", cmap=cmap, interpolation="nearest",
                            vmin=0, vmax=math.log10(2 * math.pi * theta))
        letters = axis_string(pair_axes(allocation, head_dim // 2))
        sections = list(default_sections(allocation, head_dim // 2))
        axes.set_title(f"{allocation} {sections}: {letters[:18]}...{letters[-6:]}", fontsize=9, loc="left")
        axes.set_yticks(range(3), ["t", "h", "w"])
    panels[-1].set_xlabel(f"rotary pair i (0 = highest frequency), head_dim {head_dim}, theta {theta:g}")
    figure.colorbar(image, ax=list(panels), label="log10 wavelength (positions per turn)")
    figure.savefig(path)


def plot_image_ids(path: Path, h: int = 4, w: int = 4) -> None:
    """``image_ids.png`` (module docstring): ids in 3D and seen down the text axis, per design."""
    segments = [TextSegment(3), VisionSegment(1, h, w), TextSegment(3)]
    is_vision = vision_mask(segments)
    first_after = int(torch.nonzero(is_vision)[-1]) + 1  # the first text token after the image
    figure = Figure(figsize=(12, 7.2), dpi=80)
    colours = colormaps["plasma"]
    for column, design in enumerate(DESIGNS_SHOWN):
        ids = position_ids(segments, design)
        image, text = ids[:, is_vision], ids[:, ~is_vision]
        order = torch.arange(image.shape[1]) / max(1, image.shape[1] - 1)  # raster index, coloured
        space = figure.add_subplot(2, len(DESIGNS_SHOWN), column + 1, projection="3d")
        for token in image.T:  # the "cone": segments from one text token to every image token
            space.plot(*zip(ids[:, first_after].tolist(), token.tolist()), color="grey", linewidth=0.5)
        space.plot(*text.tolist(), "k.-")  # text: on the diagonal t = h = w
        space.scatter(*image.tolist(), c=colours(order.numpy()), s=25, depthshade=False)
        space.set_xlabel("t")
        space.set_ylabel("h")
        space.set_zlabel("w")
        space.set_aspect("equal")  # equal units on t, h, w: the cone is not squashed
        space.set_title(design)
        down_axis = figure.add_subplot(2, len(DESIGNS_SHOWN), len(DESIGNS_SHOWN) + column + 1)
        flat_image, flat_text = PLANE @ image, PLANE @ text
        down_axis.scatter(*flat_text.tolist(), marker="*", s=120, color="black", label="text axis (all text)")
        down_axis.scatter(*flat_image.tolist(), c=colours(order.numpy()), s=40)
        for k, (u, v) in enumerate(flat_image.T.tolist()):
            down_axis.annotate(str(k), (u, v), fontsize=7, xytext=(3, 3), textcoords="offset points")
        down_axis.set_aspect("equal", adjustable="datalim")
        down_axis.set_title(f"{design}: seen down the text axis", fontsize=9)
        down_axis.set_xlabel("(h - w)/sqrt2")
        down_axis.set_ylabel("(2t - h - w)/sqrt6")
        down_axis.grid(alpha=0.3)
        if column == 0:
            down_axis.legend(fontsize=8, loc="upper left")
    figure.suptitle(f"Position ids of 3 text tokens, a {h}x{w} image (colour: raster index), 3 text tokens")
    figure.tight_layout()
    figure.savefig(path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/figures"), help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    plot_frequency_maps(args.out / "frequency_maps.png")
    plot_image_ids(args.out / "image_ids.png")
    for name in ("frequency_maps.png", "image_ids.png"):
        print(f"wrote {args.out / name} ({(args.out / name).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
