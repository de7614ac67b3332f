"""Key/value cache for incremental decoding, preallocated for the whole generation.

Each LM layer writes its new keys and values at the cache's current length and attends over
everything written so far; the LM advances the length once all layers have written. The cache
also remembers which key slots are real tokens, so left-padded prompts stay masked while
decoding.
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of every LM layer for up to ``capacity`` positions.

    Args:
        layers: LM layers.
        batch: rows.
        kv_heads: key/value heads per layer.
        capacity: prompt length plus the most tokens that will be generated.
        head_dim: channels per head.
        dtype, device: those of the keys (the model's compute dtype).
    """

    def __init__(self, layers: int, batch: int, kv_heads: int, capacity: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device) -> None:
        shape = (layers, batch, kv_heads, capacity, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.key_valid = torch.ones(batch, capacity, dtype=torch.bool, device=device)
        self.capacity = capacity
        self.length = 0  # positions every layer has written

    def update(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``(B, kv_heads, n, head_dim)`` at the current length; return all keys/values so far."""
        end = self.length + keys.shape[2]
        if end > self.capacity:
            raise ValueError(
                f"KV cache holds {self.capacity} positions but decoding reached {end}; allocate a larger cache."
            )
        self.keys[layer, :, :, self.length:end] = keys
        self.values[layer, :, :, self.length:end] = values
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def attention_mask(self, new: int, prompt_mask: torch.Tensor | None) -> torch.Tensor | None:
        """Mask ``(B, 1, new, length + new)`` for ``new`` queries; None when plain causal suffices.

        On the first call (the prompt) ``prompt_mask`` (``(B, L, L)``, True = may attend) is used
        as given, and its last row, whose query is a real token in a left-padded batch, records
        which prompt keys are real.
        """
        if self.length == 0:
            if prompt_mask is None:
                return None
            self.key_valid[:, :new] = prompt_mask[:, -1, :]
            return prompt_mask.unsqueeze(1)
        end = self.length + new
        query = torch.arange(self.length, end, device=self.key_valid.device)
        key = torch.arange(end, device=self.key_valid.device)
        causal = key[None, :] <= query[:, None]  # (new, end)
        return (causal[None] & self.key_valid[:, None, :end]).unsqueeze(1)

    def advance(self, new: int) -> None:
        self.length += new
