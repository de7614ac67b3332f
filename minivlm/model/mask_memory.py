"""Memory of a packed batch's attention mask, dense against a block mask, as rows grow.

``python -m minivlm.model.mask_memory`` packs rows of ``--samples`` equal samples, builds the
batch's :class:`~minivlm.model.attention.DocumentMask` and prints the bytes each kernel keeps
alive through the forward and the backward: the ``(B, 1, L, L)`` boolean mask of masked SDPA,
against flex_attention's ``BlockMask`` (a few integers per 128 x 128 tile). These are measured
tensor sizes, not formulas; activations are the same for both and left out.
"""

from __future__ import annotations

import argparse

import torch

from minivlm.model.attention import DocumentMask, use_kernel


def mask_bytes(rows: int, length: int, samples: int) -> dict[str, int]:
    """Bytes of each kernel's mask for ``rows`` rows of ``length`` tokens, ``samples`` samples a row."""
    documents = torch.arange(samples).repeat_interleave(length // samples)
    documents = torch.cat([documents, documents.new_full((length - documents.numel(),), -1)]).repeat(rows, 1)
    sizes = {}
    for kernel in ("sdpa", "flex"):
        with use_kernel(kernel):
            sizes[kernel] = DocumentMask(documents).nbytes()
    return sizes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8, help="rows of the batch")
    parser.add_argument("--samples", type=int, default=8, help="samples packed into each row")
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    args = parser.parse_args(argv)
    print(f"{args.rows} rows of {args.samples} packed samples")
    print("| row length | dense mask (SDPA) | block mask (flex) | ratio |")
    print("|---|---|---|---|")
    for length in args.lengths:
        sizes = mask_bytes(args.rows, length, args.samples)
        print(f"| {length} | {sizes['sdpa'] / 2**20:,.1f} MB | {sizes['flex'] / 2**10:,.1f} KB | "
              f"{sizes['sdpa'] / sizes['flex']:,.0f}x |")


if __name__ == "__main__":
    main()
