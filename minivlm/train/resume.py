"""Resuming a run, checked: the checkpoint must have been trained with the run's own settings.

A Lightning checkpoint restores weights, optimizer moments, the learning-rate schedule and the
loop position, but not the settings they came from: resumed under another rope the weights meet
other position ids without a word, a new ``optim.lr`` is overwritten by the optimizer state it
restores, and a checkpoint of another size fails deep inside ``load_state_dict``. So before
training, :func:`check_resume` compares the checkpoint's saved hyperparameters (the model, its
rope and the optimizer settings, which :class:`~minivlm.train.module.VLMTrainingModule` stores)
with the run's and refuses any difference, naming each field. ``steps`` may change: the cosine is
recomputed for the new length. A model or rope field added after the checkpoint was written counts
as its default, the behaviour the checkpoint was trained with (every new field defaults to the
model as it was).

``resume.weights_only=true`` instead starts a new run from the checkpoint's weights alone: step
0, a fresh optimizer and schedule, any rope or optimizer settings; only the weights' shapes must
fit the model.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import torch

from minivlm.model import ModelConfig
from minivlm.model.config import RopeConfig
from minivlm.run_folder import RunFolder
from minivlm.train.module import VLMTrainingModule


def resolve_checkpoint(ckpt_path: str | None, folder: RunFolder) -> Path | None:
    """The checkpoint ``ckpt_path`` names: ``last`` is the run's ``last.ckpt`` (None while there is
    none, so a sweep relaunched with ``ckpt_path=last`` starts its missing runs), else a file path.

    Raises:
        ValueError: a path that is not a file.
    """
    if ckpt_path is None:
        return None
    if ckpt_path == "last":
        return folder.last_checkpoint if folder.last_checkpoint.is_file() else None
    path = Path(ckpt_path)
    if not path.is_file():
        raise ValueError(f"ckpt_path={ckpt_path!r} is not a file; give a .ckpt path, `last`, or null to start anew.")
    return path


def read_checkpoint_file(path: Path) -> dict[str, Any]:
    """A minivlm training checkpoint's content (tensors memory-mapped, not read).

    Raises:
        ValueError: the file is truncated, corrupt, or not a minivlm training checkpoint.
    """
    fix = "resume from another one (checkpoints/best-*.ckpt) or start anew with overwrite=true"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:  # torch reports a damaged file as RuntimeError, EOFError, UnpicklingError...
        raise ValueError(f"checkpoint {path} cannot be read ({error}); {fix}.") from None
    hparams = checkpoint.get("hyper_parameters", {}) if isinstance(checkpoint, dict) else {}
    if not {"model_config", "optim"} <= set(hparams) or "state_dict" not in checkpoint:
        raise ValueError(f"{path} is not a minivlm training checkpoint (no model and optimizer settings); {fix}.")
    return checkpoint


def flat_settings(model_config: dict[str, Any], optim: dict[str, Any]) -> dict[str, Any]:
    """``{"model.lm_dim": 64, "rope.variant": ..., "optim.lr": ...}``: the names of the config fields."""
    flat = {f"rope.{key}": value for key, value in model_config["rope"].items()}
    flat |= {f"model.{key}": value for key, value in model_config.items() if key != "rope"}
    flat |= {f"optim.{key}": value for key, value in optim.items() if key != "lr_scale"}
    # A scale of 1 is none, so checkpoints from before optim.lr_scale existed compare as unscaled.
    flat |= {f"optim.lr_scale.{part}": scale for part, scale in optim.get("lr_scale", {}).items() if scale != 1}
    # Tuples come back from a checkpoint as lists; compare values, not container types.
    return {key: list(value) if isinstance(value, tuple) else value for key, value in flat.items()}


def defaults(config: type) -> dict[str, Any]:
    """The dataclass ``config``'s fields that have a plain default, at that default."""
    return {field.name: field.default for field in fields(config) if field.default is not MISSING}


def with_newer_fields(model_config: dict[str, Any]) -> dict[str, Any]:
    """A saved model config with the fields added since it was written, at their defaults."""
    rope = model_config.get("rope", {})
    return {**defaults(ModelConfig), **model_config, "rope": {**defaults(RopeConfig), **rope}}


def differences(saved: dict[str, Any], wanted: dict[str, Any], prefixes: tuple[str, ...]) -> list[str]:
    """``"field: checkpoint X, this run Y"`` for every field under ``prefixes`` that differs."""
    keys = sorted(key for key in saved.keys() | wanted.keys() if key.startswith(prefixes))
    return [f"{key}: checkpoint {saved.get(key)!r}, this run {wanted.get(key)!r}"
            for key in keys if saved.get(key) != wanted.get(key)]


def check_resume(path: Path, module: VLMTrainingModule, weights_only: bool) -> None:
    """Refuse to resume ``path`` into ``module`` unless its settings match; with ``weights_only``,
    load its weights into ``module`` now (the run then starts at step 0).

    Raises:
        ValueError: an unreadable checkpoint, or the fields that differ and how to proceed.
    """
    checkpoint = read_checkpoint_file(path)
    hparams = checkpoint["hyper_parameters"]
    saved = flat_settings(with_newer_fields(hparams["model_config"]), hparams["optim"])
    wanted = flat_settings(module.hparams.model_config, module.hparams.optim)
    if weights_only:
        try:
            module.load_state_dict(checkpoint["state_dict"])
        except RuntimeError as error:
            changed = "; ".join(differences(saved, wanted, ("model.",))) or "none"
            raise ValueError(f"the weights of {path} do not fit this run's model (model fields that differ: "
                             f"{changed}); use the checkpoint's model settings.\n{error}") from None
        return
    changed = differences(saved, wanted, ("model.", "rope.", "optim."))
    if changed:
        raise ValueError(
            f"ckpt_path {path} was trained with other settings than this run:\n  " + "\n  ".join(changed)
            + "\nResume with the checkpoint's settings (its run folder's checkpoints/config.yaml), or set "
            "resume.weights_only=true to start a new schedule from its weights."
        )
