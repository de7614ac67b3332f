"""Training speed of minivlm beside transformers' Qwen2-VL built at the same size, on the same batch.

``python -m minivlm.bench`` times full training steps (forward, backward, fused AdamW step) of
both models for each size, on one batch of the grounding task made by minivlm's own processor
and collator (the reference reads the same token ids, patches and grids: minivlm's layout *is*
Qwen2-VL's). The two models alternate, a block of steps each, for several rounds, so that a
neighbour's load on a shared machine slows both alike and their ratio stays true. Per model and
size it prints tokens/s, the median step time, peak memory and MFU.

MFU counts the same model FLOPs for both models (:func:`minivlm.train.flops.training_flops` of
minivlm's batch: the work a step must do; the reference's output head over every position is
extra work it chooses), against the device's peak: on a GPU Lightning's table for bf16, on a CPU
the fp32 matmul rate measured here on the same threads (a large square matmul, the best case of
the hardware). Peak memory is the allocator's high-water mark on a GPU; a CPU has none, so there
it is what a step keeps alive: parameters, gradients, AdamW state and the activations saved for
the backward (counted through ``saved_tensors_hooks``).

transformers is an optional dependency: ``pip install -e ".[bench]"``.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from contextlib import nullcontext
from time import perf_counter

import torch
from lightning.fabric.utilities.throughput import get_available_flops

from minivlm.data.collate import Collator
from minivlm.data.tasks import generate
from minivlm.model import VLM, ModelConfig
from minivlm.processing import Processor
from minivlm.resources import TOKENIZER_DIR
from minivlm.schema import Batch
from minivlm.tokenizer import IM_END, IMAGE_PAD, VIDEO_PAD, VISION_START, BPETokenizer
from minivlm.train.flops import training_flops

Step = Callable[[], None]


def grounding_batch(config: ModelConfig, tokenizer: BPETokenizer, batch_size: int) -> Batch:
    """``batch_size`` grounding samples of the default distribution (one image each), right-padded."""
    processor = Processor(tokenizer, patch_size=config.patch_size, temporal_patch=config.temporal_patch,
                          merge=config.spatial_merge, max_seq_len=config.max_seq_len)
    samples = [processor(generate("grounding", index, "train", 0)) for index in range(batch_size)]
    return Collator(config.rope_schedule(), tokenizer.pad_id, config.max_seq_len)(samples)


def reference_model(config: ModelConfig, tokenizer: BPETokenizer) -> torch.nn.Module:
    """transformers' Qwen2-VL with minivlm's widths, depths, heads, vocabulary and special tokens."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    sections = [s * config.lm_head_dim // 128 for s in (16, 24, 24)]  # Qwen2-VL's M-RoPE split, scaled to the head
    reference = Qwen2VLConfig(
        text_config={"vocab_size": config.vocab_size, "hidden_size": config.lm_dim,
                     "intermediate_size": config.lm_mlp_hidden, "num_hidden_layers": config.lm_layers,
                     "num_attention_heads": config.lm_heads, "num_key_value_heads": config.lm_kv_heads,
                     "rms_norm_eps": config.norm_eps, "tie_word_embeddings": config.tie_embeddings,
                     "bos_token_id": None, "eos_token_id": tokenizer.token_id(IM_END), "pad_token_id": tokenizer.pad_id,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "mrope_section": sections}},
        vision_config={"depth": config.vit_depth, "embed_dim": config.vit_dim, "num_heads": config.vit_heads,
                       "mlp_ratio": int(config.vit_mlp_ratio), "hidden_size": config.lm_dim,
                       "patch_size": config.patch_size, "temporal_patch_size": config.temporal_patch,
                       "spatial_merge_size": config.spatial_merge},
        image_token_id=tokenizer.token_id(IMAGE_PAD), video_token_id=tokenizer.token_id(VIDEO_PAD),
        vision_start_token_id=tokenizer.token_id(VISION_START), tie_word_embeddings=config.tie_embeddings,
    )
    return Qwen2VLForConditionalGeneration(reference).train()


def training_step(model: torch.nn.Module, loss: Callable[[], torch.Tensor], device: torch.device) -> Step:
    """One step: forward and loss (bf16 autocast on a GPU), backward, fused AdamW, gradients cleared."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    autocast = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else nullcontext()

    def step() -> None:
        with autocast:
            value = loss()
        value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step.optimizer = optimizer
    return step


def contenders(size: str, batch_size: int, device: torch.device, compile: bool) -> tuple[dict[str, Step], Batch, int]:
    """The training steps of minivlm and of the reference at ``size``, minivlm's batch and its training FLOPs."""
    tokenizer = BPETokenizer.load(TOKENIZER_DIR)
    config = ModelConfig(size=size, vocab_size=tokenizer.vocab_size)
    batch = grounding_batch(config, tokenizer, batch_size)
    on_device = {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
    on_device["position_ids"] = {key: ids.to(device) for key, ids in batch["position_ids"].items()}
    reference_inputs = {"input_ids": batch["input_ids"], "labels": batch["labels"],
                        "attention_mask": (batch["input_ids"] != tokenizer.pad_id).long(),
                        "pixel_values": batch["pixel_values"], "image_grid_thw": batch["vision_grid"],
                        # The modality of each token (0 text, 1 image), which its M-RoPE ids are computed from.
                        "mm_token_type_ids": (batch["input_ids"] == tokenizer.token_id(IMAGE_PAD)).int()}
    reference_inputs = {key: value.to(device) for key, value in reference_inputs.items()}
    ours, theirs = VLM(config).to(device).train(), reference_model(config, tokenizer).to(device)
    flops = training_flops(ours, batch)
    if compile:
        ours.compile()
        theirs.compile()
    return {
        "minivlm": training_step(ours, lambda: ours(on_device).loss, device),
        "transformers": training_step(theirs, lambda: theirs(**reference_inputs).loss, device),
    }, batch, flops


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_flops(device: torch.device) -> float:
    """bf16 peak of the GPU (Lightning's table), or the fp32 matmul rate measured on this CPU."""
    if device.type == "cuda":
        return float(get_available_flops(device, torch.bfloat16) or "nan")
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b  # warm the kernels and caches
    rates = []
    for _ in range(5):  # the best of five rounds: a shared machine's neighbours only ever slow one down
        start, repeats = perf_counter(), 3
        for _ in range(repeats):
            a @ b
        rates.append(2 * 2048**3 * repeats / (perf_counter() - start))
    return max(rates)


def step_memory(step: Step, device: torch.device) -> float:
    """Bytes of one step: the allocator's peak on a GPU; on a CPU what the step keeps alive (see the docstring)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        step()
        synchronize(device)
        return float(torch.cuda.max_memory_allocated(device))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.nbytes) or t, lambda t: t):
        step()
    state = [t for group in step.optimizer.param_groups for p in group["params"] for t in
             (p, *step.optimizer.state[p].values()) if isinstance(t, torch.Tensor)]
    grads = sum(t.nbytes for group in step.optimizer.param_groups for t in group["params"])  # cleared, but held at peak
    return float(sum(saved) + sum(t.nbytes for t in state) + grads)


def time_steps(step: Step, steps: int, device: torch.device) -> float:
    """Seconds per step over ``steps`` consecutive steps."""
    synchronize(device)
    start = perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return (perf_counter() - start) / steps


def bench_size(size: str, args: argparse.Namespace, device: torch.device, peak: float) -> list[dict]:
    steps_of, batch, flops = contenders(size, args.batch_size, device, args.compile)
    for step in steps_of.values():
        for _ in range(args.warmup):  # compilation, allocator and kernel caches
            step()
    memory = {name: step_memory(step, device) for name, step in steps_of.items()}
    times: dict[str, list[float]] = {name: [] for name in steps_of}
    for _ in range(args.rounds):  # alternating blocks: a load that comes and goes slows both alike
        for name, step in steps_of.items():
            times[name].append(time_steps(step, args.steps, device))
    tokens = batch["real_tokens"]
    rows = []
    for name, seconds in times.items():
        median = statistics.median(seconds)
        rows.append({"size": size, "model": name, "tokens_per_s": tokens / median, "step_ms": 1e3 * median,
                     "peak_mb": memory[name] / 2**20, "mfu": flops / median / peak,
                     "tokens": tokens, "rows": tuple(batch["input_ids"].shape)})
    rows[0]["ratio"] = statistics.median(times["transformers"]) / statistics.median(times["minivlm"])
    return rows


def report(rows: list[dict], device: torch.device, peak: float, args: argparse.Namespace) -> str:
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"CPU, torch threads {torch.get_num_threads()}")
    precision = "bf16 autocast" if device.type == "cuda" else "fp32"
    lines = [f"{where}, {precision}, compile {'on' if args.compile else 'off'}; batch {args.batch_size} grounding "
             f"samples; median of {args.rounds} alternating blocks of {args.steps} steps; peak {peak / 1e9:.1f} GFLOP/s",
             "", "| size | model | tokens/s | step ms | peak MB | MFU | minivlm speed-up |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        speedup = f"{row['ratio']:.2f}x" if "ratio" in row else ""
        lines.append(f"| {row['size']} | {row['model']} | {row['tokens_per_s']:,.0f} | {row['step_ms']:.1f} | "
                     f"{row['peak_mb']:,.0f} | {100 * row['mfu']:.1f} % | {speedup} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small", "base"], choices=["tiny", "small", "base"])
    parser.add_argument("--batch-size", type=int, default=8, help="samples per step")
    parser.add_argument("--steps", type=int, default=3, help="steps per timed block")
    parser.add_argument("--rounds", type=int, default=3, help="alternating blocks per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first (more with --compile)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise SystemExit('the benchmark compares against transformers: pip install -e ".[bench]"') from None
    if min(args.batch_size, args.steps, args.rounds) < 1 or args.warmup < 0:
        raise SystemExit("--batch-size, --steps and --rounds must be at least 1 and --warmup at least 0")
    device = torch.device(args.device)
    peak = peak_flops(device)
    rows = [row for size in args.sizes for row in bench_size(size, args, device, peak)]
    table = report(rows, device, peak, args)
    print(table)
    if args.out:
        with open(args.out, "w") as file:
            file.write(table + "\n")


if __name__ == "__main__":
    main()
