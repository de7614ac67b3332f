"""The training settings of ``configs/train.yaml``, checked before anything is built.

Hydra composes whatever it is given (``optim.lr=fast``, ``eval_every=0``, ``data.batch_size=0``),
and each such value would otherwise fail late and far from its cause: a ``TypeError`` inside
AdamW, a ``ZeroDivisionError`` after the first step, "cannot collate an empty list" from a
DataLoader worker. :func:`check_settings` turns every one into a ``ValueError`` that names the
field, what it must be, and a value that works. The ``model`` and ``rope`` groups are typed by
their dataclasses (:mod:`minivlm.train.config_store`) and check themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

# field: the smallest allowed value of an integer setting
INTEGERS = {
    "steps": 1, "eval_every": 1, "checkpoint_every": 1, "keep_every": 1, "seed": 0,
    "optim.warmup_steps": 0, "optim.accumulate": 1,
    "data.seed": 0, "data.batch_size": 1, "data.num_workers": 0, "data.min_pixels": 1, "data.max_pixels": 1,
    "data.val_per_task": 1, "data.final_eval_per_task": 1, "data.eval_batch_size": 1, "data.max_new_tokens": 1,
    "logging.progress_every": 1,
    "trainer.log_every_n_steps": 1,  # also the interval of the loss guard's one read (minivlm/train/module.py)
}
OPTIONAL_INTEGERS = {"keep_every", "data.seed"}  # null is allowed (keep_every: off; data.seed: the run's seed)
REAL_DATA_INTEGERS = {"data.real.holdout": 0}
PRECISIONS = ("32-true", "bf16-mixed")  # trainer.precision: fp32, or bf16 autocast with fp32 weights
SWITCHES = ("compile", "overwrite", "resume.weights_only", "data.train_user_text")  # true or false


@dataclass(frozen=True)
class Number:
    """A real-valued setting in ``(low, high)``, ends included where ``closed``; ``example`` is quoted as a fix."""

    low: float
    high: float
    example: float
    closed_low: bool = False
    closed_high: bool = False
    nullable: bool = False  # null is allowed (and means "off")

    def check(self, key: str, value: Any) -> None:
        if value is None and self.nullable:
            return
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if number and (self.low <= value if self.closed_low else self.low < value) and (
                value <= self.high if self.closed_high else value < self.high):
            return
        interval = f"{'[' if self.closed_low else '('}{self.low}, {self.high}{']' if self.closed_high else ')'}"
        raise ValueError(f"{key} must be a finite number in {interval}{' or null' if self.nullable else ''}, "
                         f"got {value!r}; e.g. {key}={self.example}.")


NUMBERS = {
    "optim.lr": Number(0.0, math.inf, 1e-3),
    "optim.weight_decay": Number(0.0, math.inf, 0.05, closed_low=True),
    "optim.min_lr_ratio": Number(0.0, 1.0, 0.1, closed_low=True, closed_high=True),
    "optim.grad_clip": Number(0.0, math.inf, 1.0, nullable=True),
    "data.fps": Number(0.0, math.inf, 2.0),
    "divergence_factor": Number(1.0, math.inf, 3.0, nullable=True),
}
REAL_DATA_NUMBERS = {"data.real.max_bad_fraction": Number(0.0, 1.0, 0.5, closed_low=True)}


def check_settings(cfg: DictConfig) -> None:
    """Raise a ``ValueError`` naming the first bad training setting of ``cfg`` and its fix."""
    real = cfg.data.get("real") is not None
    for key, minimum in {**INTEGERS, **(REAL_DATA_INTEGERS if real else {})}.items():
        value = OmegaConf.select(cfg, key)
        if value is None and key in OPTIONAL_INTEGERS:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}; e.g. {key}={max(minimum, 1)}.")
    numbers = {**NUMBERS, **(REAL_DATA_NUMBERS if real else {})}
    for key, number in numbers.items():
        number.check(key, OmegaConf.select(cfg, key))
    for key in SWITCHES:
        if not isinstance(OmegaConf.select(cfg, key), bool):
            raise ValueError(f"{key} must be true or false, got {OmegaConf.select(cfg, key)!r}.")
    betas = OmegaConf.select(cfg, "optim.betas")
    if not (OmegaConf.is_list(betas) and len(betas) == 2 and all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"optim.betas must be two numbers in [0, 1), got {betas!r}; e.g. 'optim.betas=[0.9,0.95]'.")
    lr_scale = OmegaConf.select(cfg, "optim.lr_scale", default={})
    if not OmegaConf.is_dict(lr_scale):
        raise ValueError(f"optim.lr_scale must map parts of the model to multiples of optim.lr, got {lr_scale!r}; "
                         "e.g. optim.lr_scale.merger=0.1.")
    for part, scale in lr_scale.items():
        Number(0.0, math.inf, 0.1, closed_low=True).check(f"optim.lr_scale.{part}", scale)
    if cfg.data.min_pixels > cfg.data.max_pixels:
        raise ValueError(f"data.min_pixels={cfg.data.min_pixels} is above data.max_pixels={cfg.data.max_pixels}; "
                         "lower min_pixels or raise max_pixels.")
    precision = str(OmegaConf.select(cfg, "trainer.precision"))
    if precision not in PRECISIONS:
        raise ValueError(f"trainer.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}: fp16 needs loss "
                         "scaling, which the loss guard and gradient clipping do not take part in; use "
                         "trainer.precision=bf16-mixed (GPUs since Ampere, CPUs with AMX) or 32-true.")
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not isinstance(ckpt_path, str):
        raise ValueError(f"ckpt_path must be `last`, a .ckpt path or null, got {ckpt_path!r}.")
    if cfg.resume.weights_only and ckpt_path is None:  # else the run would start from random weights, silently
        raise ValueError("resume.weights_only=true starts from ckpt_path's weights, but ckpt_path is null; give "
                         "ckpt_path=outputs/<run>/checkpoints/last.ckpt, or resume.weights_only=false to start anew.")
