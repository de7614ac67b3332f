"""Benchmark: building position ids and cos/sin tables for a realistic batch, per design.

    python -m minivlm.rope.bench [--batch 64] [--head-dim 64] [--repeats 5]

Each sequence has about 1,000 tokens: text runs, three images of different sizes and a video
(SPEC.md section 3). Ids are built per sequence on the CPU as a DataLoader worker would;
cos/sin for the whole padded batch at once, as the model does once per forward.
"""

from __future__ import annotations

import argparse
import time

import torch

from minivlm.rope.positions import build_positions
from minivlm.rope.segments import TextSegment, VisionSegment
from minivlm.rope.variants import PRESETS


def example_sequence(index: int) -> list[TextSegment | VisionSegment]:
    """About 1,000 tokens: text, three images, text, a video, text (sizes vary with ``index``)."""
    grow = index % 4
    return [
        TextSegment(40 + grow), VisionSegment(1, 8, 8 + grow),
        TextSegment(30), VisionSegment(1, 12, 10),
        TextSegment(25), VisionSegment(1, 6, 14),
        TextSegment(60), VisionSegment(8, 6, 8, seconds_per_grid=1.0),
        TextSegment(180 - grow),
    ]


def time_call(fn, repeats: int) -> float:
    """Best-of-``repeats`` wall time in seconds (best, to ignore scheduler noise)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="sequences per batch")
    parser.add_argument("--head-dim", type=int, default=64, help="rotary dimension of the LM heads")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (best is shown)")
    args = parser.parse_args()

    sequences = [example_sequence(i) for i in range(args.batch)]
    lengths = [sum(s.num_tokens for s in seq) for seq in sequences]
    print(f"batch {args.batch} x ~{sum(lengths) // len(lengths)} tokens "
          f"(3 images + 1 video each), head_dim {args.head_dim}, torch threads {torch.get_num_threads()}")
    print(f"{'preset':<20}{'ids ms/batch':>14}{'cos/sin ms/batch':>18}{'ids us/seq':>12}")
    for name, variant in PRESETS.items():
        options = dict(variant.options)
        build = lambda: [build_positions(seq, variant.design, **options)[0] for seq in sequences]
        ids_time = time_call(build, args.repeats)
        width = max(lengths)
        batch_ids = torch.zeros(args.batch, 3, width)
        for row, ids in enumerate(build()):
            batch_ids[row, :, : ids.shape[1]] = ids
        table_time = time_call(lambda: variant.cos_sin(batch_ids, args.head_dim), args.repeats)
        print(f"{name:<20}{ids_time * 1e3:>14.2f}{table_time * 1e3:>18.2f}{ids_time / args.batch * 1e6:>12.1f}")


if __name__ == "__main__":
    main()
