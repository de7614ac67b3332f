"""Decoder-only language model whose layers each rotate q/k with their own rope variant.

A Qwen2-style decoder (Qwen2 technical report, arXiv 2407.10671, section 2.2): RMSNorm pre-norm,
SwiGLU MLP, grouped-query attention (Ainslie et al., arXiv 2305.13245) and, as in Qwen3, an
RMSNorm on each head's queries and keys, which keeps attention logits bounded at the high learning
rates that small models train best at. The position encoding is a :class:`minivlm.rope.RopeSchedule`:
layer ``l`` uses variant ``schedule.layers[l]``. Tables are built once per forward for each
distinct variant and shared by the layers that use it, never per layer.
"""

from __future__ import annotations

import torch
from timm.layers import SwiGLU
from torch import nn

from minivlm.model.attention import DocumentMask, attend
from minivlm.model.cache import KVCache
from minivlm.model.config import ModelConfig
from minivlm.rope import RopeVariant, apply_rotary

RopeTables = dict[RopeVariant, tuple[torch.Tensor, torch.Tensor]]


class Attention(nn.Module):
    """Grouped-query causal self-attention, within documents when a :class:`DocumentMask` is given."""

    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.heads, self.kv_heads, self.head_dim = config.lm_heads, config.lm_kv_heads, config.lm_head_dim
        self.q_proj = nn.Linear(config.lm_dim, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(config.lm_dim, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(config.lm_dim, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, config.lm_dim, bias=False)
        norm = (lambda: nn.RMSNorm(self.head_dim, eps=config.norm_eps)) if config.qk_norm else nn.Identity
        self.q_norm, self.k_norm = norm(), norm()

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: DocumentMask | None,
                cache: KVCache | None) -> torch.Tensor:
        batch, length, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(batch, length, self.heads, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(batch, length, self.kv_heads, self.head_dim)).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        out = attend(q, k, v, mask, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1))


class DecoderLayer(nn.Module):
    """Pre-norm block: ``x + attn(norm(x))``, then ``x + swiglu(norm(x))``."""

    def __init__(self, config: ModelConfig, layer: int) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(config.lm_dim, eps=config.norm_eps)
        self.attn = Attention(config, layer)
        self.mlp_norm = nn.RMSNorm(config.lm_dim, eps=config.norm_eps)
        self.mlp = SwiGLU(config.lm_dim, config.lm_mlp_hidden, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: DocumentMask | None,
                cache: KVCache | None) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, cache)
        return x + self.mlp(self.mlp_norm(x))


class LanguageModel(nn.Module):
    """Token embedding, decoder layers under a rope schedule, final norm and output head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.schedule = config.rope_schedule()
        self.embed = nn.Embedding(config.vocab_size, config.lm_dim)
        self.layers = nn.ModuleList(DecoderLayer(config, layer) for layer in range(config.lm_layers))
        self.norm = nn.RMSNorm(config.lm_dim, eps=config.norm_eps)
        self.head = nn.Linear(config.lm_dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight

    def rope_tables(self, position_ids: dict[str, torch.Tensor]) -> RopeTables:
        """cos/sin ``(B, 1, L, head_dim)`` per distinct variant, from ids ``(B, 3, L)`` per design."""
        missing = [key for key in self.schedule.design_keys if key not in position_ids]
        if missing:
            raise ValueError(
                f"batch has position ids for designs {sorted(position_ids)} but the model's rope schedule "
                f"needs {list(self.schedule.design_keys)}; collate with the model's schedule."
            )
        tables = {}
        for variant in self.schedule.variants:
            cos, sin = variant.cos_sin(position_ids[variant.design_key], self.config.lm_head_dim)
            tables[variant] = (cos.unsqueeze(1), sin.unsqueeze(1))
        return tables

    def forward(self, embeds: torch.Tensor, position_ids: dict[str, torch.Tensor],
                document_ids: torch.Tensor | None = None, cache: KVCache | None = None,
                vision_index: tuple[torch.Tensor, torch.Tensor] | None = None,
                deepstack: list[torch.Tensor] = ()) -> torch.Tensor:
        """Final-norm hidden states ``(B, L, lm_dim)``.

        Args:
            embeds: input embeddings ``(B, L, lm_dim)``.
            position_ids: ``(B, 3, L)`` float ids for each design key of the schedule.
            document_ids: ``(B, L)`` long, the document of each token (-1: padding): attention stays
                within documents (:mod:`minivlm.model.attention`); None = plain causal.
            cache: filled and advanced when given.
            vision_index: (rows, columns) of the vision tokens; DeepStack features are added there.
            deepstack: features added after LM layers 0, 1, ... (one ``(n_vision, lm_dim)`` each).
        """
        tables = self.rope_tables(position_ids)
        mask = DocumentMask(document_ids) if document_ids is not None else None
        if cache is not None:
            mask = cache.attention_mask(embeds.shape[1], document_ids)
        x = embeds
        for index, (layer, variant) in enumerate(zip(self.layers, self.schedule.layers)):
            x = layer(x, *tables[variant], mask, cache)
            if index < len(deepstack) and vision_index is not None:
                x = x.index_put(vision_index, deepstack[index].to(x.dtype), accumulate=True)
        if cache is not None:
            cache.advance(embeds.shape[1])
        return self.norm(x)
