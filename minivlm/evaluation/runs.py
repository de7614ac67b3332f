"""Run folders on disk: finding them, their weights, their config, and a label for their rope.

A training run (``minivlm.train.run.train``) leaves a folder ``<run>/`` with
``checkpoints/{config.yaml, baselines.json, tokenizer.json, last.ckpt, best-<step>.ckpt}``, ``final_eval.json``
once training finished, and ``export/`` (safetensors + ``config.json`` + tokenizer). A Hydra
sweep puts one such folder per job below its sweep folder. Evaluation and aggregation both start
here, and both must cope with sweeps in progress: runs without checkpoints yet, runs that stopped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from minivlm.data.storage import load_baselines
from minivlm.train.export import CONFIG_FILE, WEIGHTS_FILE

RUN_CONFIG = Path("checkpoints") / "config.yaml"  # the resolved config saved by every run
RUN_BASELINES = Path("checkpoints") / "baselines.json"  # chance/blind of the run's own task distribution
FINAL_EVAL = "final_eval.json"  # written by training when it finished
RESULT_JSON, RESULT_CSV = "evaluation.json", "evaluation.csv"  # written by `python evaluate.py`
PREDICTIONS_JSONL = "predictions.jsonl"  # every judged answer of that evaluation, one JSON object per line
WEIGHT_CHOICES = ("last", "best", "export")


@dataclass(frozen=True)
class Target:
    """Weights to evaluate and where their results go.

    Args:
        run_dir: the run folder (results are written here); an export folder outside any run.
        weights: a Lightning ``.ckpt`` file or an export folder.
        config: the run's resolved ``config.yaml``; None for an export outside any run.
        tokenizer_dir: the folder holding the run's ``tokenizer.json``.
    """

    run_dir: Path
    weights: Path
    config: Path | None
    tokenizer_dir: Path


def is_run_dir(path: Path) -> bool:
    return (path / RUN_CONFIG).is_file()


def is_export_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every run folder at or below ``root``, sorted by path."""
    root = Path(root)
    return sorted({config.parent.parent for config in root.rglob(str(RUN_CONFIG))})


def run_weights(run_dir: Path, weights: str) -> Path:
    """The ``last``/``best`` checkpoint or the ``export`` folder of a run.

    Raises:
        ValueError: unknown choice, or the run has no such weights (yet).
    """
    if weights not in WEIGHT_CHOICES:
        raise ValueError(f"unknown weights {weights!r}; choose one of {WEIGHT_CHOICES}")
    if weights == "export":
        path = run_dir / "export"
        if not is_export_dir(path):
            raise ValueError(f"run {run_dir} has no export/ folder (training has not finished); "
                             "evaluate its checkpoints with --weights last")
        return path
    pattern = "last.ckpt" if weights == "last" else "best-*.ckpt"
    found = sorted((run_dir / "checkpoints").glob(pattern), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ValueError(f"run {run_dir} has no checkpoints/{pattern} yet (no checkpoint was saved); "
                         "train it further or pick other --weights")
    return found[-1]  # the newest, if a resumed run left several best checkpoints


def resolve_target(path: str | Path, weights: str = "last") -> Target:
    """The weights a path names: a ``.ckpt`` file, an export folder, or a run folder (``weights``).

    Raises:
        ValueError: the path does not exist or holds no checkpoint of minivlm.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".ckpt":
        config = path.parent / "config.yaml"
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return Target(run_dir, path, config if config.is_file() else None, path.parent)
    if path.is_dir() and is_export_dir(path):
        run_dir = path.parent if is_run_dir(path.parent) else path
        config = run_dir / RUN_CONFIG
        return Target(run_dir, path, config if config.is_file() else None, path)
    if path.is_dir() and is_run_dir(path):
        return Target(path, run_weights(path, weights), path / RUN_CONFIG, path / "checkpoints")
    raise ValueError(
        f"{path} is not a minivlm checkpoint: pass a .ckpt file, an export folder (config.json + "
        f"{WEIGHTS_FILE}), a run folder (with {RUN_CONFIG}) or a folder of run folders"
    )


def load_run_config(run_dir: Path) -> DictConfig:
    return OmegaConf.load(run_dir / RUN_CONFIG)


def load_run_baselines(run_dir: Path) -> dict[str, dict[str, dict]]:
    """``{split: {task: {"chance", "blind", ...}}}`` of the distribution the run trained and is
    evaluated on; runs saved before ``baselines.json`` existed trained on the shipped default."""
    path = run_dir / RUN_BASELINES
    return json.loads(path.read_text()) if path.is_file() else load_baselines()["splits"]


def load_final_eval(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``final_eval.json`` (None while training has not finished)."""
    path = run_dir / FINAL_EVAL
    return json.loads(path.read_text()) if path.is_file() else None


def rope_label(rope: Mapping[str, Any]) -> str:
    """The name of a rope config as ``configs/rope/`` spells it: ``mrope``, ``circle_alternate`` ...

    ``schedule: all`` is its variant; a staggered schedule is ``<variant>_<schedule>``, with
    ``+<partner>`` when the partner is not M-RoPE; an explicit per-layer list joins its presets.
    """
    schedule = rope["schedule"]
    if not isinstance(schedule, str):
        return "+".join(schedule)
    if schedule == "all":
        return str(rope["variant"])
    label = f"{rope['variant']}_{schedule}"
    return label if rope.get("partner", "mrope") == "mrope" else f"{label}+{rope['partner']}"
