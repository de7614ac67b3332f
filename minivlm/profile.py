"""Where a training step's time goes: ``python -m minivlm.profile`` (the default run's model and batch).

It measures, on the device and threads it runs with:

- the step itself (forward, backward, fused AdamW), timed, and under ``torch.profiler`` its time split into
  matmuls (linear layers, the patch convolution), attention kernels, norms, rope (cos/sin tables
  and rotations), and the rest (activations, embedding, loss, optimizer, copies), each bucket the
  self time of its operators; norms and rope are found by wrapping their functions in
  ``record_function`` here, so the library itself carries no profiling code;
- the data: making one batch (processing and collation, what each DataLoader worker does), which
  on a machine of few cores competes with the step for the same cores;
- Lightning: a short ``train()`` of the default config, whose time per step beyond the bare
  step is the loop, logging, callbacks and the wait for data, and whose own FLOP rate (the
  model FLOPs it logs, ``train/flops_per_sec``) is the default run's MFU.

Each is set beside the fp32 (or bf16) matmul peak measured by :func:`minivlm.bench.peak_flops`,
so the step's MFU and what keeps it from the peak are printed together. The batch is the
default run's: grounding samples through the processor at the default config's pixel limits.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from collections import defaultdict
from collections.abc import Callable
from time import perf_counter

import torch
from omegaconf import DictConfig
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

import minivlm.model.lm as lm_module
import minivlm.model.vision as vision_module
from minivlm.bench import peak_flops, time_steps, training_step
from minivlm.data.collate import Collator
from minivlm.data.tasks import generate
from minivlm.model import VLM, ModelConfig
from minivlm.processing import Processor
from minivlm.resources import CONFIG_DIR, TOKENIZER_DIR
from minivlm.rope import RopeVariant
from minivlm.run_folder import RunFolder
from minivlm.tokenizer import BPETokenizer
from minivlm.train.flops import training_flops

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::convolution", "aten::_convolution",
           "aten::mkldnn_convolution", "aten::convolution_backward", "aten::matmul")
ATTENTION = ("scaled_dot_product", "flash_attention", "_efficient_attention", "flex_attention")
LABELLED = ("norm", "rope")  # record_function labels added by labelled()


def labelled(owner: object, name: str, label: str) -> Callable[[], None]:
    """Wrap ``owner.name`` in ``record_function(label)``; returns the undo."""
    original = getattr(owner, name)

    def wrapped(*args, **kwargs):
        with record_function(label):
            return original(*args, **kwargs)

    setattr(owner, name, wrapped)
    return lambda: setattr(owner, name, original)


def default_config(*overrides: str) -> DictConfig:
    """``python train.py``'s config, with ``overrides``."""
    from minivlm.train.config_store import compose_train

    return compose_train(*overrides)


def default_batch(config: ModelConfig, tokenizer: BPETokenizer, batch_size: int) -> tuple[Callable, dict]:
    """The default run's batch maker (its processor and collator on grounding samples) and one batch."""
    data = default_config().data
    processor = Processor(tokenizer, patch_size=config.patch_size, merge=config.spatial_merge,
                          max_seq_len=config.max_seq_len, min_pixels=data.min_pixels, max_pixels=data.max_pixels)
    collator = Collator(config.rope_schedule(), tokenizer.pad_id, config.max_seq_len)

    def make(first: int) -> dict:
        return collator([processor(generate("grounding", first + i, "train", 0)) for i in range(batch_size)])

    return make, make(0)


def step_buckets(step: Callable[[], None], repeats: int) -> dict[str, float]:
    """The shares of a step's time (summing to 1) of each bucket, from the profiler's self times.

    The profiler slows every operator down, so only the shares are kept; the step's own time is
    measured without it.
    """
    undo = [labelled(lm_module, "apply_rotary", "rope"), labelled(vision_module, "apply_rotary", "rope"),
            labelled(vision_module, "vision_rope_cos_sin", "rope"), labelled(RopeVariant, "cos_sin", "rope"),
            labelled(nn.RMSNorm, "forward", "norm"), labelled(nn.LayerNorm, "forward", "norm")]
    try:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = perf_counter()
            for _ in range(repeats):
                step()
            seconds = (perf_counter() - start) / repeats
    finally:
        for restore in undo:
            restore()
    buckets: dict[str, float] = defaultdict(float)
    labelled_total = {label: 0.0 for label in LABELLED}
    for event in prof.key_averages():
        if event.key in LABELLED:  # inclusive time of the wrapped functions (forward; backward is in its ops)
            labelled_total[event.key] += event.cpu_time_total
        elif event.key.startswith(MATMULS):
            buckets["matmuls"] += event.self_cpu_time_total
        elif any(part in event.key for part in ATTENTION):
            buckets["attention"] += event.self_cpu_time_total
    for label, total in labelled_total.items():
        buckets[label + "s (forward)"] = total
    scale = 1e-6 / repeats / seconds
    buckets = {name: value * scale for name, value in buckets.items()}
    buckets["everything else"] = 1 - sum(buckets.values())
    return buckets


def lightning_run(steps: int) -> tuple[float, float]:
    """Seconds per step and model FLOP/s of ``train()`` on the default config (training only:
    validation left out), as the run logs them over its last ``steps // 2`` steps (the first half
    warms up: allocator, kernels, DataLoader workers)."""
    from minivlm.train.run import train

    half = max(1, steps // 2)
    cfg = default_config(f"steps={steps}", f"eval_every={steps}", "trainer.enable_progress_bar=false",
                         f"trainer.log_every_n_steps={half}", "data.val_per_task=1", "data.final_eval_per_task=1",
                         "name=profile")
    with tempfile.TemporaryDirectory() as folder:
        train(cfg, folder)
        with open(RunFolder(folder).logs / "version_0" / "metrics.csv") as file:
            first, last = [row for row in csv.DictReader(file) if row.get("train/flops_per_sec")][-2:]
    seconds = (float(last["train/time"]) - float(first["train/time"])) / (int(last["step"]) - int(first["step"]))
    return seconds, float(last["train/flops_per_sec"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small", "base"])
    parser.add_argument("--batch-size", type=int, default=16, help="samples per step (the default run's data.batch_size)")
    parser.add_argument("--repeats", type=int, default=5, help="profiled steps")
    parser.add_argument("--lightning-steps", type=int, default=40, help="steps of the Lightning run (0: skip it)")
    args = parser.parse_args(argv)
    tokenizer = BPETokenizer.load(TOKENIZER_DIR)
    config = ModelConfig(size=args.size, vocab_size=tokenizer.vocab_size)
    make_batch, batch = default_batch(config, tokenizer, args.batch_size)
    model = VLM(config).train()
    step = training_step(model, lambda: model(batch).loss, torch.device("cpu"))
    step()  # warm up
    peak = peak_flops(torch.device("cpu"))
    seconds = time_steps(step, args.repeats, torch.device("cpu"))
    buckets = step_buckets(step, args.repeats)
    flops = training_flops(model, batch)
    start = perf_counter()
    make_batch(args.batch_size)
    data = perf_counter() - start
    print(f"{args.size}, batch {args.batch_size} ({batch['real_tokens']} tokens), torch threads {torch.get_num_threads()}; "
          f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s")
    print(f"step {1e3 * seconds:.1f} ms: {flops / seconds / 1e9:.1f} GFLOP/s of model FLOPs, MFU {100 * flops / seconds / peak:.1f} %")
    for name, share in sorted(buckets.items(), key=lambda item: -item[1]):
        print(f"  {name:<22} {1e3 * share * seconds:8.1f} ms  {100 * share:5.1f} %")
    print(f"data: one batch made in {1e3 * data:.1f} ms (processing + collation, in a DataLoader worker)")
    if args.lightning_steps:
        lightning, rate = lightning_run(args.lightning_steps)
        print(f"Lightning: {1e3 * lightning:.1f} ms per step of train() (default config, its own batches), "
              f"{rate / 1e9:.1f} GFLOP/s of model FLOPs: {100 * rate / peak:.1f} % of the matmul peak")


if __name__ == "__main__":
    main()
