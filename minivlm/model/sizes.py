"""Parameter counts of the named model sizes: ``python -m minivlm.model.sizes``.

Prints a Markdown table; the README quotes it, and tests/test_readme.py checks that it still does.
"""

from __future__ import annotations

import argparse

import torch

from minivlm.model.config import SIZES, ModelConfig
from minivlm.model.vlm import VLM


def parameter_counts(config: ModelConfig) -> dict[str, int]:
    """Parameters of the ViT, the mergers and the LM (tied embeddings counted once)."""
    with torch.device("meta"):  # shapes only: no memory, no init time, even for `base`
        model = VLM(config)
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    mergers = count(model.merger) + count(model.deepstack_mergers)
    return {"vit": count(model.vision), "mergers": mergers, "lm": count(model.lm), "total": count(model)}


def size_table(vocab_size: int) -> str:
    """The Markdown table of every named size's parameter counts at ``vocab_size``."""
    lines = ["| size | LM width x layers | ViT width x blocks | patch | ViT | mergers | LM | total |",
             "|---|---|---|---|---|---|---|---|"]
    for name in SIZES:
        config = ModelConfig(size=name, vocab_size=vocab_size)
        counts = {k: f"{v / 1e6:.1f}M" for k, v in parameter_counts(config).items()}
        lines.append(f"| {name} | {config.lm_dim} x {config.lm_layers} | {config.vit_dim} x {config.vit_depth} | "
                     f"{config.patch_size} | {counts['vit']} | {counts['mergers']} | {counts['lm']} | {counts['total']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=ModelConfig.vocab_size,
                        help="tokenizer vocabulary (the shipped synthetic tokenizer has far fewer tokens)")
    args = parser.parse_args()
    print(f"vocab_size {args.vocab_size}\n")
    print(size_table(args.vocab_size))


if __name__ == "__main__":
    main()
