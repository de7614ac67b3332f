"""The model: 2D-RoPE ViT, patch merger (+ DeepStack), decoder LM with a per-layer rope schedule."""

from minivlm.model.cache import KVCache
from minivlm.model.config import SIZES, ModelConfig, RopeConfig
from minivlm.model.generate import decode_position_ids, generate
from minivlm.model.lm import LanguageModel
from minivlm.model.merger import PatchMerger
from minivlm.model.vision import VisionEncoder, vision_rope_cos_sin
from minivlm.model.vlm import VLM, VLMOutput, transformer_block_classes

__all__ = [
    "KVCache", "LanguageModel", "ModelConfig", "PatchMerger", "RopeConfig", "SIZES", "VLM", "VLMOutput",
    "VisionEncoder", "decode_position_ids", "generate", "transformer_block_classes",
    "vision_rope_cos_sin",
]
