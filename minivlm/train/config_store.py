"""Hydra's view of the config dataclasses: defaults live in the dataclasses, YAML files make choices.

``configs/model/<size>.yaml`` and ``configs/rope/<name>.yaml`` start from a ``schema`` node built
here from :class:`~minivlm.model.ModelConfig` and :class:`~minivlm.model.RopeConfig`, so every
field exists with its dataclass default (and can be overridden on the command line, e.g.
``model.vit_depth=2`` or ``rope.options.alpha=0.3``) while a YAML file says only what its choice
changes. Python and the command line therefore build the same model: ``ModelConfig(size="tiny")``
is what ``python train.py`` trains.

Call :func:`register_configs` before Hydra composes (``train.py`` and :func:`compose_train` do); it
also registers the resolver of ``python train.py --help`` (:mod:`minivlm.train.help`).
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from minivlm.model import ModelConfig, RopeConfig
from minivlm.resources import CONFIG_DIR
from minivlm.rope import RopeScaling
from minivlm.rope.positions import DESIGN_DEFAULTS
from minivlm.train.help import register_help

# ModelConfig fields a run sets from elsewhere: the tokenizer's vocabulary and special-token ids,
# and the `rope` config group.
NOT_IN_MODEL_GROUP = ("vocab_size", "image_token_id", "video_token_id", "rope")


def dataclass_defaults(cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{field: default}`` of a dataclass, tuples as lists (YAML has no tuples)."""
    defaults = {}
    for item in fields(cls):
        if item.name not in exclude:
            value = item.default if item.default is not MISSING else item.default_factory()
            defaults[item.name] = list(value) if isinstance(value, tuple) else value
    return defaults


def rope_schema() -> dict[str, Any]:
    """RopeConfig's defaults with every design's options and every scaling key listed as None (the
    design's default; no scaling while ``type`` is None), so each can be set on the command line."""
    options = {key: None for design in DESIGN_DEFAULTS.values() for key in design}
    scaling = {item.name: None for item in fields(RopeScaling)}
    return {**dataclass_defaults(RopeConfig), "options": options, "scaling": scaling}


def register_configs() -> None:
    """Store the ``model/schema`` and ``rope/schema`` nodes and register the help resolver (idempotent)."""
    register_help()
    store = ConfigStore.instance()
    store.store(group="model", name="schema", node=dataclass_defaults(ModelConfig, NOT_IN_MODEL_GROUP))
    store.store(group="rope", name="schema", node=rope_schema())


def compose_train(*overrides: str) -> DictConfig:
    """``python train.py``'s config with ``overrides``, composed outside a Hydra app (no run folder)."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))
