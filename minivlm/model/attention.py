"""Document masking: which tokens may attend to which, without a dense ``(B, L, L)`` mask.

A packed row holds several samples back to back (Krell et al., arXiv 2107.02027), a left-padded
prompt batch has padding before each prompt, and the ViT's flat run of patches holds many frames.
In each case every token belongs to a *document* (its sample, its frame; padding is document -1)
and token ``i`` may attend to token ``j`` exactly when both belong to the same document (and, for
causal attention, ``j`` is not after ``i``). So the batch carries document ids ``(B, L)`` and the
mask is built from them once per forward, shared by every layer.

Two kernels apply it:

- ``flex``: ``flex_attention`` with a ``BlockMask`` (FlexAttention, Dong et al., arXiv
  2412.05496, section 3): the rule is evaluated per 128 x 128 tile, tiles outside every document
  are skipped, and the mask itself takes ``O(B (L/128)^2)`` integers instead of ``B L^2`` bytes.
  Compiled, it is one fused flash-style kernel. The default on CUDA for queries of a tile or
  more.
- ``sdpa``: the rule expanded to a boolean mask for ``scaled_dot_product_attention``. The
  default on CPU, because torch 2.14's ``flex_attention`` has no backward on CPU and runs
  unfused there without compilation; and for decoding steps, whose one-token mask is tiny.

Both give the same attention (tests/test_attention.py checks it to 1e-5 on CPU, forcing
``flex`` there with :func:`use_kernel`). Padding attends to earlier padding of its row, so no
softmax row is ever empty (an all-masked row would give NaN that leaks into later layers); real
tokens never see padding.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import BlockMask, create_block_mask, flex_attention

KERNELS = ("auto", "flex", "sdpa")
TILE = 128  # flex_attention's block size: below one tile of queries a block mask saves nothing
_forced: str = "auto"  # set by use_kernel
_compiled_flex = None  # flex_attention compiled on first use on CUDA (compiling is what makes it fused)


@contextmanager
def use_kernel(kernel: str) -> Iterator[None]:
    """Apply document masks with ``kernel`` (``flex`` | ``sdpa`` | ``auto``) inside the block."""
    global _forced
    if kernel not in KERNELS:
        raise ValueError(f"unknown attention kernel {kernel!r}; valid kernels: {', '.join(KERNELS)}.")
    previous, _forced = _forced, kernel
    try:
        yield
    finally:
        _forced = previous


def kernel_for(device: torch.device, queries: int) -> str:
    """The kernel a mask over ``queries`` query tokens on ``device`` uses (see the module docstring)."""
    if _forced != "auto":
        return _forced
    return "flex" if device.type == "cuda" and queries >= TILE else "sdpa"


def _flex(device: torch.device):
    global _compiled_flex
    if device.type != "cuda":
        return flex_attention  # CPU: eager (tests), unfused but exact
    if _compiled_flex is None:
        # Automatic dynamic shapes (compile's default), not dynamic=False: batches are padded to their
        # longest row, so lengths vary, and a static kernel per length would hit the recompile limit
        # after a few batches and fall back to eager flex (the unfused path).
        _compiled_flex = torch.compile(flex_attention)
    return _compiled_flex


class DocumentMask:
    """Attention allowed within documents; queries are the last ``Lq`` of the ``Lk`` keys.

    Args:
        query_documents: ``(B, Lq)`` long, the document of each query token (-1: padding).
        key_documents: ``(B, Lk)`` long, the document of each key (None: the queries themselves).
            With ``Lk > Lq`` (cached decoding) query ``i`` sits at key position ``Lk - Lq + i``.
        causal: also forbid keys after the query.
    """

    def __init__(self, query_documents: torch.Tensor, key_documents: torch.Tensor | None = None,
                 causal: bool = True) -> None:
        self.query_documents = query_documents
        self.key_documents = query_documents if key_documents is None else key_documents
        self.causal = causal
        self.offset = self.key_documents.shape[1] - query_documents.shape[1]
        if self.offset < 0:
            raise ValueError(f"a document mask needs at least as many keys as queries, got "
                             f"{self.key_documents.shape[1]} keys for {query_documents.shape[1]} queries.")
        self.kernel = kernel_for(query_documents.device, query_documents.shape[1])
        self._block_mask: BlockMask | None = None
        self._dense: torch.Tensor | None = None

    def dense(self) -> torch.Tensor:
        """``(B, 1, Lq, Lk)`` bool, True = may attend (built once, then reused by every layer)."""
        if self._dense is None:
            allowed = self.query_documents[:, :, None] == self.key_documents[:, None, :]
            if self.causal:
                query = torch.arange(self.offset, self.key_documents.shape[1], device=allowed.device)
                key = torch.arange(self.key_documents.shape[1], device=allowed.device)
                allowed = allowed & (key[None, :] <= query[:, None])
            self._dense = allowed.unsqueeze(1)
        return self._dense

    def block_mask(self) -> BlockMask:
        """The same rule as a flex_attention ``BlockMask`` (built once, then reused by every layer)."""
        if self._block_mask is None:
            queries, keys, offset, causal = self.query_documents, self.key_documents, self.offset, self.causal

            def allowed(b, h, q, k):
                same = queries[b, q] == keys[b, k]
                return same & (k <= q + offset) if causal else same

            rows, length = queries.shape
            self._block_mask = create_block_mask(allowed, rows, None, length, keys.shape[1], device=queries.device,
                                                 _compile=queries.device.type == "cuda")
        return self._block_mask

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, enable_gqa: bool = False) -> torch.Tensor:
        """Attention of ``q (B, H, Lq, d)`` over ``k, v (B, H_kv, Lk, d)`` under this mask."""
        if self.kernel == "flex":
            return _flex(q.device)(q, k, v, block_mask=self.block_mask(), enable_gqa=enable_gqa)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=self.dense(), enable_gqa=enable_gqa)

    def nbytes(self) -> int:
        """Bytes the kernel's mask holds (what stays alive through the forward and the backward)."""
        if self.kernel == "flex":
            mask = self.block_mask()
            return sum(t.nbytes for t in (mask.kv_num_blocks, mask.kv_indices, mask.full_kv_num_blocks,
                                          mask.full_kv_indices, mask.q_num_blocks, mask.q_indices,
                                          mask.full_q_num_blocks, mask.full_q_indices) if t is not None)
        return self.dense().nbytes


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: DocumentMask | None,
           enable_gqa: bool = False) -> torch.Tensor:
    """Causal attention when ``mask`` is None (SDPA's flash kernels apply), else ``mask.attend``."""
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=enable_gqa)
    return mask.attend(q, k, v, enable_gqa)
