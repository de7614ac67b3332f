"""Autoregressive decoding with a KV cache, every layer on its own design's positions.

The prompt runs once and fills the cache; then one token per step. Generated tokens are text, so
the j-th new token (j = 0, 1, ...) takes id ``next_position[design] + j`` on all three axes for
each position design of the schedule (SPEC.md section 4). ``next_position`` comes from the
collator, which knows where each design's positions end, also when a prompt ends right after a
vision block (Circle-RoPE's next position follows the image's largest ring coordinate, M-RoPE's
the image's largest id). Prompts of different lengths are left-padded so all rows decode in step;
the cache keeps their padding masked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from minivlm.model.cache import KVCache
from minivlm.schema import Batch

if TYPE_CHECKING:
    from minivlm.model.vlm import VLM


def decode_position_ids(next_position: dict[str, torch.Tensor], start: int, count: int) -> dict[str, torch.Tensor]:
    """Ids ``(B, 3, count)`` of generated tokens ``start .. start+count-1`` for each design."""
    ids = {}
    for key, first in next_position.items():
        steps = torch.arange(start, start + count, device=first.device, dtype=torch.float32)
        ids[key] = (first.float()[:, None] + steps).unsqueeze(1).expand(-1, 3, -1)
    return ids


def next_token(logits: torch.Tensor, temperature: float, top_k: int | None,
               generator: torch.Generator | None) -> torch.Tensor:
    """Greedy when ``temperature == 0``, else a sample from the (top-k) softened distribution."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator).squeeze(1)


@torch.no_grad()
def generate(model: VLM, batch: Batch, max_new_tokens: int, eos_token_id: int | None = None,
             temperature: float = 0.0, top_k: int | None = None, generator: torch.Generator | None = None,
             output_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """New tokens ``(B, n)`` for a prompt batch (``n <= max_new_tokens``; stops once every row has
    emitted ``eos_token_id``, and a finished row repeats it).

    Args:
        model: the VLM.
        batch: prompts from ``Collator(mode="pad", padding_side="left")`` (with ``next_position``).
        max_new_tokens: the most tokens to generate.
        eos_token_id: end-of-answer token, or None to always generate ``max_new_tokens``.
        temperature: 0 for greedy decoding; above 0 samples from ``softmax(logits / temperature)``.
        top_k: sample only among the k most likely tokens.
        generator: random generator of the sampling.
        output_logits: also return the float32 logits ``(B, n, vocab)`` each token was chosen from.
    """
    if batch.get("next_position") is None:
        raise ValueError("generate needs next_position per design: collate prompts with mode='pad' "
                         "and padding_side='left' (packed rows cannot be decoded).")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    config = model.config
    rows, prompt_length = batch["input_ids"].shape
    capacity = prompt_length + max_new_tokens
    if capacity > config.max_seq_len:
        raise ValueError(
            f"prompt of {prompt_length} tokens plus max_new_tokens={max_new_tokens} exceeds the model's "
            f"max_seq_len={config.max_seq_len}; shorten the prompt or generate fewer tokens."
        )
    parameter = next(model.parameters())
    cache = KVCache(config.lm_layers, rows, config.lm_kv_heads, capacity, config.lm_head_dim,
                    parameter.dtype, parameter.device)
    prompt = dict(batch, labels=None)
    hidden = model(prompt, cache=cache).hidden[:, -1]
    finished = torch.zeros(rows, dtype=torch.bool, device=hidden.device)
    tokens, all_logits = [], []
    for step in range(max_new_tokens):
        logits = model.lm.head(hidden).float()
        token = next_token(logits, temperature, top_k, generator)
        if eos_token_id is not None:
            token = token.masked_fill(finished, eos_token_id)
            finished |= token == eos_token_id
        tokens.append(token)
        all_logits.append(logits)
        if step == max_new_tokens - 1 or bool(finished.all()):
            break
        step_batch = {"input_ids": token[:, None], "position_ids": decode_position_ids(batch["next_position"], step, 1)}
        hidden = model(step_batch, cache=cache).hidden[:, -1]
    generated = torch.stack(tokens, dim=1)
    return (generated, torch.stack(all_logits, dim=1)) if output_logits else generated
