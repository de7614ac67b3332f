"""Key/value cache for incremental decoding, preallocated for the whole generation.

Each LM layer writes its new keys and values at the cache's current length and attends over
everything written so far; the LM advances the length once all layers have written. The cache
also remembers the document of every key slot (:mod:`minivlm.model.attention`; -1 = padding),
so left-padded prompts stay masked while decoding.
"""

from __future__ import annotations

import torch

from minivlm.model.attention import DocumentMask


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
        # Generated tokens continue the prompt's last document (0 without a document mask).
        self.key_documents = torch.zeros(batch, capacity, dtype=torch.long, device=device)
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

    def attention_mask(self, new: int, prompt_documents: torch.Tensor | None) -> DocumentMask | None:
        """The mask of ``new`` queries over every key so far; None when plain causal suffices.

        On the first call (the prompt) ``prompt_documents`` (``(B, L)``, -1 = padding) is the
        prompt's own mask and is recorded for the keys; its last column, a real token in a
        left-padded batch, is the document the generated tokens join.
        """
        if self.length == 0:
            if prompt_documents is None:
                return None
            self.key_documents[:, :new] = prompt_documents
            self.key_documents[:, new:] = prompt_documents[:, -1:]
            return DocumentMask(prompt_documents)
        end = self.length + new
        return DocumentMask(self.key_documents[:, self.length:end], self.key_documents[:, :end])

    def advance(self, new: int) -> None:
        self.length += new
