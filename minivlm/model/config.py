"""Model configuration: one dataclass, three named sizes derived from two dials.

The sizes follow nanochat's "one complexity dial" idea with two dials, ``width`` (LM hidden size)
and ``depth`` (LM layers): heads are 64 channels wide, the LM uses grouped-query attention with
half as many key/value heads as query heads (as Qwen2-VL's LM), and the ViT is 3/4 as wide and
3/4 as deep as the LM. Any derived field can still be set by hand:
``ModelConfig(size="tiny", vit_depth=2)``. Fields left at None are filled from ``size`` when the
config is built, so a saved config (``dataclasses.asdict``) holds every value explicitly.

The LM's rope is a per-layer schedule (:func:`minivlm.rope.make_schedule`); ``rope`` holds the
arguments of that call, the same keys as ``configs/rope/*.yaml``.

These dataclasses hold every default: the Hydra configs start from them
(:mod:`minivlm.train.config_store`), so ``ModelConfig(size="tiny")`` is the model that
``python train.py`` trains. Defaults marked "recipe" were chosen by measurement
(results/learning/README.md) rather than copied from a released model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from minivlm.rope import RopeSchedule, make_schedule
from minivlm.tokenizer import IMAGE_PAD, SPECIAL_TOKENS, VIDEO_PAD

HEAD_DIM = 64  # channels per attention head in the named sizes (ViT and LM)
ABS_POS_INITS = ("sincos", "normal")  # how the ViT's learned absolute position table starts

# name: (width = LM hidden size, depth = LM layers, ViT patch side in px)
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (256, 4, 8),     # a few million parameters: minutes on a 2-core CPU
    "small": (512, 8, 8),    # tens of millions: one GPU, the synthetic tasks at full length
    "base": (1024, 12, 14),  # ~200 million: real data, Qwen2-VL's 14 px patches
}


def size_fields(width: int, depth: int, patch_size: int) -> dict[str, int]:
    """Every size-dependent field from the two dials (and the patch side)."""
    vit_dim = 3 * width // 4
    return {
        "patch_size": patch_size,
        "vit_dim": vit_dim,
        "vit_depth": max(2, 3 * depth // 4),
        "vit_heads": max(1, vit_dim // HEAD_DIM),
        "lm_dim": width,
        "lm_layers": depth,
        "lm_heads": max(1, width // HEAD_DIM),
        "lm_kv_heads": max(1, width // HEAD_DIM // 2),
    }


@dataclass
class RopeConfig:
    """The LM's rope schedule: the arguments of :func:`minivlm.rope.make_schedule`."""

    schedule: str | list[str] = "all"   # all | alternate | lower | upper | [preset, ...] one per LM layer
    variant: str | None = "mrope_interleaved"  # preset of `all`, first preset of a staggered schedule
                                        # (recipe: interleaved learns both image axes at every seed)
    partner: str = "mrope"              # second preset of a staggered schedule
    theta: float | None = 100.0         # RoPE base of every layer; None keeps each preset's own (1e4).
                                        # Recipe: at 1e4 the spatial pairs barely turn across the 3 to 10
                                        # tokens of a synthetic image side; real data: raise it (1e6)
    options: dict[str, Any] = field(default_factory=dict)  # design options, e.g. {"alpha": 0.5}; an
                                        # option left out or None takes the design's default
    scaling: dict[str, Any] | None = None  # RoPE scaling for longer sequences, e.g. {"type": "yarn", "factor": 3,
                                        # "original_max_position": 64} (minivlm/rope/scaling.py); None: none.
                                        # It has no weights: set it when evaluating a trained run too

    def __post_init__(self) -> None:
        # The Hydra schema lists every design option and scaling key as None (minivlm/train/config_store.py).
        self.options = {key: value for key, value in dict(self.options).items() if value is not None}
        scaling = {key: value for key, value in dict(self.scaling or {}).items() if value is not None}
        self.scaling = scaling if scaling.get("type") is not None else None

    @property
    def label(self) -> str:
        """The name ``configs/rope/`` gives this schedule: ``mrope``, ``circle_alternate`` ...

        ``schedule: all`` is its variant; a staggered schedule is ``<variant>_<schedule>``, with
        ``+<partner>`` when the partner is not M-RoPE; an explicit per-layer list joins its presets.
        """
        if not isinstance(self.schedule, str):
            return "+".join(self.schedule)
        if self.schedule == "all":
            return str(self.variant)
        label = f"{self.variant}_{self.schedule}"
        return label if self.partner == "mrope" else f"{label}+{self.partner}"


@dataclass
class ModelConfig:
    """Every hyperparameter of :class:`minivlm.model.VLM`; None fields come from ``size``."""

    size: str = "tiny"                    # named size filling the None fields: tiny | small | base
    # Vision encoder (Qwen2-VL ViT, SPEC.md section 6)
    in_channels: int = 3                  # image channels (RGB)
    patch_size: int | None = None         # ViT patch side in pixels
    temporal_patch: int = 2               # frames per Conv3d patch (an image is repeated to fill it)
    spatial_merge: int = 2                # merge window side m: m*m patches become one LLM token
    vit_dim: int | None = None            # ViT hidden size
    vit_depth: int | None = None          # ViT blocks
    vit_heads: int | None = None          # ViT attention heads
    vit_mlp_ratio: float = 4.0            # ViT MLP hidden size / vit_dim
    vit_rope: bool = True                 # 2D RoPE in ViT attention (relative patch offsets)
    vit_abs_pos: int = 8                  # side of a learned absolute position table resampled to each
                                          # frame (Qwen3-VL); 0 = off. With vit_rope off too, the ViT sees no
                                          # positions. Recipe: 8, started as sin-cos
    vit_abs_pos_init: str = "sincos"      # start of that table: sincos (2D sin-cos, unit amplitude) | normal (std 0.02)
    vit_abs_pos_scale: float = 1.0        # amplitude of the sin-cos start (below 1: place weighs less against content)
    vit_rope_theta: float = 10_000.0      # base of the ViT's 2D RoPE
    drop_path: float = 0.0                # stochastic depth rate of the last ViT block (linear from 0)
    deepstack_layers: tuple[int, ...] = ()  # ViT blocks feeding DeepStack mergers (Qwen3-VL); () = off
    # Language model
    vocab_size: int = 8192                # tokenizer vocabulary size
    lm_dim: int | None = None             # LM hidden size
    lm_layers: int | None = None          # LM decoder layers
    lm_heads: int | None = None           # LM query heads
    lm_kv_heads: int | None = None        # LM key/value heads (grouped-query attention; divides lm_heads)
    lm_mlp_ratio: float = 8 / 3           # SwiGLU hidden size / lm_dim (rounded up to a multiple of 64)
    qk_norm: bool = True                  # RMSNorm on each head's q and k (Qwen3): stable at high lr
    norm_eps: float = 1e-6                # epsilon of every RMSNorm / LayerNorm
    tie_embeddings: bool = True           # output head shares the token embedding matrix
    max_seq_len: int = 2048               # longest sequence (prompt + generated) in tokens
    init_std: float = 0.02                # std of weight init; residual projections get std/sqrt(2*lm_layers)
    image_token_id: int = SPECIAL_TOKENS.index(IMAGE_PAD)  # placeholder of one merged image token
    video_token_id: int = SPECIAL_TOKENS.index(VIDEO_PAD)  # placeholder of one merged video token
    rope: RopeConfig = field(default_factory=RopeConfig)   # the LM's per-layer rope schedule

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"unknown model size {self.size!r}; valid sizes: {', '.join(SIZES)}.")
        for name, value in size_fields(*SIZES[self.size]).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if isinstance(self.rope, dict):  # from YAML / JSON
            self.rope = RopeConfig(**self.rope)
        self.deepstack_layers = tuple(int(i) for i in self.deepstack_layers)
        self._validate()

    @classmethod
    def from_saved(cls, saved: dict[str, Any]) -> ModelConfig:
        """The config a checkpoint, an export or a run folder saved (``asdict`` of one).

        Raises:
            ValueError: ``saved`` has fields this version does not (a field since removed).
        """
        unknown = sorted(set(saved) - {f.name for f in fields(cls)})
        rope = saved.get("rope", {})
        if isinstance(rope, dict):
            unknown += [f"rope.{name}" for name in sorted(set(rope) - {f.name for f in fields(RopeConfig)})]
        if unknown:
            raise ValueError(f"the model config has fields this version of minivlm does not have: {unknown}, so the "
                             "checkpoint, export or run folder it came from was written by another version; load "
                             "it with that version, or, if those fields were off, delete them from its saved config "
                             "(hyper_parameters.model_config, config.json or checkpoints/config.yaml).")
        return cls(**saved)

    @property
    def vit_head_dim(self) -> int:
        return self.vit_dim // self.vit_heads

    @property
    def lm_head_dim(self) -> int:
        return self.lm_dim // self.lm_heads

    @property
    def lm_mlp_hidden(self) -> int:
        hidden = int(self.lm_mlp_ratio * self.lm_dim + 0.5)
        return -(-hidden // 64) * 64

    @property
    def patch_dim(self) -> int:
        """Length of one patch vector: the flattened ``(C, temporal_patch, patch, patch)`` cube."""
        return self.in_channels * self.temporal_patch * self.patch_size**2

    def rope_schedule(self) -> RopeSchedule:
        """The LM's schedule (raises ValueError for unknown names or sections that do not fit)."""
        rope = self.rope
        schedule = make_schedule(rope.schedule if isinstance(rope.schedule, str) else list(rope.schedule),
                                 self.lm_layers, variant=rope.variant, partner=rope.partner,
                                 theta=rope.theta, options=rope.options, scaling=rope.scaling)
        schedule.check_head_dim(self.lm_head_dim)
        return schedule

    def _validate(self) -> None:
        positive = ["patch_size", "temporal_patch", "spatial_merge", "vit_dim", "vit_depth", "vit_heads",
                    "vocab_size", "lm_dim", "lm_layers", "lm_heads", "lm_kv_heads", "max_seq_len"]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}.")
        if self.vit_dim % self.vit_heads or self.lm_dim % self.lm_heads:
            raise ValueError(
                f"hidden sizes must split evenly into heads: vit_dim={self.vit_dim}, vit_heads={self.vit_heads}, "
                f"lm_dim={self.lm_dim}, lm_heads={self.lm_heads}."
            )
        if self.lm_heads % self.lm_kv_heads:
            raise ValueError(
                f"lm_kv_heads={self.lm_kv_heads} must divide lm_heads={self.lm_heads} (each key/value head "
                "serves a whole group of query heads)."
            )
        if self.vit_rope and self.vit_head_dim % 4:
            raise ValueError(
                f"the ViT's 2D RoPE needs a head dim divisible by 4 (a quarter each for row and column "
                f"frequencies, doubled for rotate_half), got {self.vit_head_dim}; change vit_dim or vit_heads."
            )
        if not isinstance(self.vit_abs_pos, int) or self.vit_abs_pos < 0:
            raise ValueError(f"ModelConfig.vit_abs_pos must be 0 (off) or a table side >= 1, got {self.vit_abs_pos!r}.")
        if not isinstance(self.vit_abs_pos_scale, (int, float)) or not 0 < self.vit_abs_pos_scale < float("inf"):
            raise ValueError(f"ModelConfig.vit_abs_pos_scale must be a positive number, got {self.vit_abs_pos_scale!r}.")
        if self.vit_abs_pos_init not in ABS_POS_INITS:
            raise ValueError(f"ModelConfig.vit_abs_pos_init={self.vit_abs_pos_init!r}; choose one of {ABS_POS_INITS}.")
        bad = [i for i in self.deepstack_layers if not 0 <= i < self.vit_depth]
        if bad:
            raise ValueError(f"deepstack_layers {bad} are not ViT blocks; valid indices are 0..{self.vit_depth - 1}.")
        if len(self.deepstack_layers) > self.lm_layers:
            raise ValueError(
                f"{len(self.deepstack_layers)} deepstack_layers feed LM layers 0..{len(self.deepstack_layers) - 1}, "
                f"but the LM has only {self.lm_layers} layers; list at most {self.lm_layers}."
            )
        self.rope_schedule()  # unknown presets, schedule lengths and head-dim fits fail here
