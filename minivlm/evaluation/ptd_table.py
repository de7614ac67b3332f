"""PTD table: the analogue of Circle-RoPE's Table 1 for minivlm's position designs, and PTD vs image size.

    python -m minivlm.evaluation.ptd_table --out results/ptd

Circle-RoPE (arXiv 2505.16416, section 3.1, Table 1) compares the cross-modal positional bias,
PTD (:mod:`minivlm.rope.ptd`), of the ways to give image tokens positions: flattened 1D
positions ("hard" embedding), one position shared by every image token, M-RoPE's spatial ids,
and its own ring. The setting is SPEC.md section 5's: 2 text tokens, a 3x3 image on the
merged grid, 3 text tokens. PTD depends on the ids alone, never on the frequency allocation, so
``mrope_interleaved`` has M-RoPE's PTD. Only flattened positions grow with the image; the
shared index and the ring are 0 at every size, but the shared index keeps no spatial layout.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.figure import Figure  # pyplot-free: rendered by Agg on save

from minivlm.rope import Segment, TextSegment, VisionSegment, position_ids, ptd, vision_mask

TEXT_BEFORE, TEXT_AFTER = 2, 3  # text tokens around the image (SPEC.md section 5)
DESIGNS: dict[str, str] = {  # row name -> how its image tokens are placed
    "rope1d": "hard: the next integers, in raster order (1D)",
    "shared": "one shared index: every image token at the same position (1D)",
    "mrope": "M-RoPE: (s, s + y, s + x)",
    "videorope": "VideoRoPE: diagonal (s, s + y - (H-1)//2, s + x - (W-1)//2)",
    "circle": "Circle-RoPE: a ring of radius 10 orthogonal to the text axis",
}


def image_layout(h: int, w: int) -> list[Segment]:
    """Text, an ``h x w`` image on the merged grid, text."""
    return [TextSegment(TEXT_BEFORE), VisionSegment(1, h, w), TextSegment(TEXT_AFTER)]


def shared_index_ids(segments: Sequence[Segment]) -> torch.Tensor:
    """1D ids ``(1, L)`` where every vision block occupies a single position, repeated per token."""
    collapsed = [TextSegment(1) if isinstance(s, VisionSegment) else s for s in segments]
    ids = position_ids(collapsed, "rope1d")[:1]
    repeats = [n for s in segments for n in ([s.num_tokens] if isinstance(s, VisionSegment) else [1] * s.length)]
    return ids.repeat_interleave(torch.tensor(repeats), dim=1)


def design_ids(design: str, segments: Sequence[Segment]) -> torch.Tensor:
    """The ids PTD is measured on: ``(1, L)`` for the 1D rows, ``(3, L)`` for the 3D designs."""
    if design not in DESIGNS:
        raise ValueError(f"unknown PTD row {design!r}; choose one of {list(DESIGNS)}")
    if design == "shared":
        return shared_index_ids(segments)
    ids = position_ids(list(segments), design)
    return ids[:1] if design == "rope1d" else ids  # a 1D position is one number (SPEC.md section 5)


def ptd_of(design: str, h: int, w: int) -> float:
    """PTD of a design on the text / ``h x w`` image / text layout."""
    segments = image_layout(h, w)
    return ptd(design_ids(design, segments), vision_mask(segments))


def markdown_table(h: int = 3, w: int = 3) -> str:
    lines = [f"PTD, {TEXT_BEFORE} text tokens + a {h}x{w} image + {TEXT_AFTER} text tokens "
             "(Circle-RoPE Table 1 setting)", "", "| design | image token ids | PTD |", "|---|---|---|"]
    lines += [f"| {design} | {text} | {abs(ptd_of(design, h, w)):.4f} |" for design, text in DESIGNS.items()]
    return "\n".join(lines)  # abs(): Circle-RoPE's float ~1e-7 would print as -0.0000


def plot_ptd_vs_size(sides: Sequence[int], path: Path) -> None:
    """PTD of every design on square images of the given sides (merged tokens per side)."""
    figure = Figure(figsize=(5.5, 3.4), dpi=100)
    axes = figure.subplots()
    styles = {"rope1d": "o-", "shared": "s--", "mrope": "^-", "videorope": "v-", "circle": "x:"}
    for design in DESIGNS:
        axes.plot(sides, [ptd_of(design, n, n) for n in sides], styles[design], label=design, markersize=4)
    axes.set_xlabel("image side (merged tokens; the image has side x side tokens)")
    axes.set_yscale("symlog", linthresh=1.0)  # 1D grows ~ side^2; keep 0 visible and the 3D designs apart
    axes.set_ylabel("PTD (linear below 1, log above)")
    axes.set_title(f"PTD vs image size ({TEXT_BEFORE} text + image + {TEXT_AFTER} text)")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/ptd"), help="folder for ptd_table.md and the plot")
    parser.add_argument("--max-side", type=int, default=16, help="largest image side of the plot")
    args = parser.parse_args(argv)
    if args.max_side < 2:
        parser.error(f"--max-side must be >= 2, got {args.max_side}")
    table = markdown_table()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    command = f"python -m minivlm.evaluation.ptd_table --out {args.out} --max-side {args.max_side}"
    (args.out / "ptd_table.md").write_text(f"{table}\n\nMade by `{command}`.\n")
    plot_ptd_vs_size(range(1, args.max_side + 1), args.out / "ptd_vs_image_size.png")
    print(f"wrote {args.out / 'ptd_table.md'} and {args.out / 'ptd_vs_image_size.png'}")


if __name__ == "__main__":
    main()
