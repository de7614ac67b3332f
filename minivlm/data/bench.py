"""Throughput of the synthetic tasks: `python -m minivlm.data.bench`.

Prints samples/s per CPU core (one process, one torch thread) for each task: generation alone,
and generation + the processor (resize, patches, chat template, token ids), the work one
DataLoader worker does per sample, with the shipped tokenizer (data/tokenizer/), or one trained on
the fly on a few hundred samples when it is absent (its size barely changes the processor's cost).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from minivlm.data.build import TOKENIZER_DIR
from minivlm.data.tasks import TASKS, generate
from minivlm.processing import Processor
from minivlm.tokenizer import BPETokenizer, corpus_from_samples


def rate(step, seconds: float) -> float:
    """Calls of step() per second, measured over about `seconds` (after one warm-up call)."""
    step(0)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        step(count + 1)
        count += 1
    return count / elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", default=list(TASKS), help="tasks to measure")
    parser.add_argument("--split", default="train", help="split whose distribution is measured")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per task and mode")
    parser.add_argument("--tokenizer", default=TOKENIZER_DIR, help="folder of a saved tokenizer")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # per-core numbers: a DataLoader worker runs on one core
    if (Path(args.tokenizer) / "tokenizer.json").is_file():
        tokenizer = BPETokenizer.load(args.tokenizer)
    else:
        corpus = [generate(task, i, "train") for task in TASKS for i in range(50)]
        tokenizer = BPETokenizer.train(corpus_from_samples(corpus), vocab_size=512)
    processor = Processor(tokenizer)
    print(f"{'task':14s} {'generate/s':>11s} {'+process/s':>11s}   (per core, split {args.split})")
    for task in args.tasks:
        generation = rate(lambda i, task=task: generate(task, i, args.split), args.seconds)
        processing = rate(lambda i, task=task: processor(generate(task, i, args.split)), args.seconds)
        print(f"{task:14s} {generation:11.0f} {processing:11.0f}")


if __name__ == "__main__":
    main()
