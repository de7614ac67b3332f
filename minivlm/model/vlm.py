"""The vision-language model: ViT -> merger -> features in the placeholder tokens -> LM.

Qwen2-VL's layout (arXiv 2409.12191, section 2.1): each image or video is encoded frame by frame,
merged to LM width and written into the embedding of its placeholder tokens (``<|image_pad|>``,
``<|video_pad|>``) in the order they occur, row by row. The collator concatenates vision tensors
in that same order. Training minimises next-token cross entropy on answer tokens only (labels
other than -100), computing the output head only where there is a target. Where the vision
tokens and the answer targets sit comes with the batch (the collator's ``vision_index`` and
``answer_index``, built on CPU), so that a training step never has to find them on the device.

``save_pretrained`` / ``from_pretrained`` write and read the model's part of an export folder
(:class:`~minivlm.run_folder.ExportFolder`) in the layout of Hugging Face models: the weights as
safetensors, the config as ``config.json`` with a ``model_type``; torch and safetensors only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn

from minivlm.model.cache import KVCache
from minivlm.model.config import ModelConfig
from minivlm.model.generate import generate
from minivlm.model.lm import DecoderLayer, LanguageModel
from minivlm.model.merger import PatchMerger
from minivlm.model.vision import VisionBlock, VisionEncoder
from minivlm.run_folder import ExportFolder
from minivlm.schema import Batch, answer_index, token_index

MODEL_TYPE = "minivlm"  # config.json's model_type: what tools that read exports check


@dataclass
class VLMOutput:
    """``loss``: mean answer-token cross entropy (None without labels); ``logits``: ``(B, L, vocab)``
    float32 when asked for; ``hidden``: final-norm hidden states ``(B, L, lm_dim)``; ``answer_losses``:
    the cross entropy of each answer token ``(A,)``, in ``answer_index`` order (None without labels)."""

    loss: torch.Tensor | None
    logits: torch.Tensor | None
    hidden: torch.Tensor
    answer_losses: torch.Tensor | None = None


class VLM(nn.Module):
    """Images, videos and text in; next-token logits out. ``generate`` decodes with a KV cache."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        window = config.spatial_merge**2
        self.vision = VisionEncoder(config)
        self.merger = PatchMerger(config.vit_dim, config.lm_dim, window, eps=config.norm_eps)
        self.deepstack_mergers = nn.ModuleList(
            PatchMerger(config.vit_dim, config.lm_dim, window, norm_after_concat=True, eps=config.norm_eps)
            for _ in config.deepstack_layers
        )
        self.lm = LanguageModel(config)
        self.apply(self._init_weights)
        # GPT-2's scaled init: residual branches write with std / sqrt(2 * layers).
        residual_std = config.init_std / (2 * config.lm_layers) ** 0.5
        for layer in self.lm.layers:
            nn.init.normal_(layer.attn.o_proj.weight, std=residual_std)
            nn.init.normal_(layer.mlp.fc2.weight, std=residual_std)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv3d)):
            nn.init.normal_(module.weight, std=self.config.init_std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def embed(self, batch: Batch) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None, list[torch.Tensor]]:
        """Token embeddings with merged vision features at the placeholders.

        Returns ``(embeds, vision_index, deepstack)``; ``vision_index`` (rows, columns) is None without media.
        """
        input_ids = batch["input_ids"]
        embeds = self.lm.embed(input_ids)
        index = batch.get("vision_index")
        if index is None:  # a batch the Collator did not make (a decoding step): find the placeholders here
            index = token_index((input_ids == self.config.image_token_id) | (input_ids == self.config.video_token_id))
        placeholders = index.shape[1]
        if batch.get("pixel_values") is None:
            if placeholders:
                raise ValueError(
                    f"batch has {placeholders} vision placeholder tokens but no pixel_values; encode "
                    "images and videos with the Processor, which adds both."
                )
            return embeds, None, []
        patches, stacked = self.vision(batch["pixel_values"], batch["vision_grid"], batch["patch_positions"],
                                       batch.get("vision_frames"), batch.get("longest_frame"))
        features = self.merger(patches)
        if features.shape[0] != placeholders:
            raise ValueError(
                f"batch has {placeholders} vision placeholder tokens but the images and videos give "
                f"{features.shape[0]} merged features; every merged token needs exactly one placeholder "
                "(encode samples with the Processor of this model's patch_size and spatial_merge)."
            )
        rows, columns = index.unbind(0)
        embeds = embeds.index_put((rows, columns), features.to(embeds.dtype))
        deepstack = [merger(feature) for merger, feature in zip(self.deepstack_mergers, stacked)]
        return embeds, (rows, columns), deepstack

    def forward(self, batch: Batch, cache: KVCache | None = None, return_logits: bool = False) -> VLMOutput:
        """Loss when the batch has ``labels``; full logits when ``return_logits``.

        A cached decoding step passes only ``input_ids`` and ``position_ids`` (text, no labels).
        """
        embeds, vision_index, deepstack = self.embed(batch)
        hidden = self.lm(embeds, batch["position_ids"], batch.get("document_ids"), cache, vision_index, deepstack)
        loss = answer_losses = None
        if batch.get("labels") is not None:
            index = batch.get("answer_index")
            rows, columns = (answer_index(batch["labels"]) if index is None else index).unbind(0)
            if rows.shape[0] == 0:
                raise ValueError("batch has no answer tokens (every label is -100); nothing to learn from.")
            answer_losses = F.cross_entropy(self.lm.head(hidden[rows, columns]).float(), batch["labels"][rows, columns + 1],
                                            reduction="none")
            loss = answer_losses.mean()
        logits = self.lm.head(hidden).float() if return_logits else None
        return VLMOutput(loss, logits, hidden, answer_losses)

    def with_rope_scaling(self, scaling: dict[str, Any] | None) -> VLM:
        """These weights under another RoPE scaling (a scaling has no weights; SPEC.md section 8), in eval mode."""
        config = replace(self.config, rope=replace(self.config.rope, scaling=scaling))
        parameter = next(self.parameters())
        with torch.device(parameter.device):
            model = VLM(config)
        model.load_state_dict(self.state_dict())
        return model.to(parameter.dtype).eval()

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``folder`` (created); returns the folder."""
        files = ExportFolder(folder)
        files.root.mkdir(parents=True, exist_ok=True)
        save_model(self, str(files.weights))  # stores tied (shared) tensors once
        files.config.write_text(json.dumps({"model_type": MODEL_TYPE, **asdict(self.config)}, indent=2))
        return files.root

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> VLM:
        """The model (eval mode, CPU) that :meth:`save_pretrained` wrote into ``folder``.

        Raises:
            ValueError: no minivlm model in ``folder``; a weight mismatch names the tensors.
        """
        files = ExportFolder(folder)
        if not (files.config.is_file() and files.weights.is_file()):
            raise ValueError(f"{files.root} holds no exported model ({files.config.name} and {files.weights.name}); "
                             "pass an export folder, e.g. outputs/<run>/export")
        fields = json.loads(files.config.read_text())
        model_type = fields.pop("model_type", MODEL_TYPE)  # exports before model_type was written had none
        if model_type != MODEL_TYPE:
            raise ValueError(f"{files.config} is a {model_type!r} model, not {MODEL_TYPE!r}; load it with the "
                             "library it was made for")
        model = cls(ModelConfig.from_saved(fields))
        load_model(model, str(files.weights))  # strict: a mismatch raises, naming the tensors
        return model.eval()

    def generate(self, batch: Batch, max_new_tokens: int, eos_token_id: int | None = None,
                 temperature: float = 0.0, top_k: int | None = None, generator: torch.Generator | None = None,
                 output_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """See :func:`minivlm.model.generate.generate`."""
        return generate(self, batch, max_new_tokens, eos_token_id, temperature, top_k, generator, output_logits)


def transformer_block_classes() -> set[type[nn.Module]]:
    """The repeated blocks, the units FSDP shards and activation checkpointing wraps."""
    return {VisionBlock, DecoderLayer}
