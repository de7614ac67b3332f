"""Shared by the training tests: configs composed from configs/ that train a step in about a second."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"

# A model of ~0.2M parameters (64-channel heads, as the named sizes).
TINY_MODEL = [
    "model.lm_dim=64", "model.lm_heads=1", "model.lm_kv_heads=1", "model.lm_layers=2",
    "model.vit_dim=32", "model.vit_heads=1", "model.vit_depth=1",
]
# 2-sample batches of <= 64x64 images, one validation prompt per task, quiet.
TINY_RUN = [
    "data.batch_size=2", "data.num_workers=0", "data.max_pixels=4096", "data.val_per_task=1",
    "data.final_eval_per_task=1", "data.eval_batch_size=16",
    "trainer.enable_progress_bar=false",
]


def compose_config(*overrides: str, name: str = "test", tiny_model: bool = True) -> DictConfig:
    """configs/train.yaml with the tiny overrides, then ``overrides``; ``name`` stands in for Hydra's.

    ``tiny_model=False`` keeps the model of the composed size (``model=small``...).
    """
    tiny = [*TINY_MODEL, *TINY_RUN] if tiny_model else TINY_RUN
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=[*tiny, f"name={name}", *overrides])


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread: tiny matmuls gain nothing from more, and lose a lot on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_train_py(*overrides: str, multirun: bool = False, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python train.py [-m] <tiny overrides> OVERRIDES`` in the repo; fails the test with its output if it fails."""
    command = [sys.executable, "train.py", *(["-m"] if multirun else []), *TINY_MODEL, *TINY_RUN, *overrides]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def metric_rows(run_dir: Path) -> list[dict[str, str]]:
    """Rows of every CSV log of a run (one ``logs/version_<n>`` folder per launch), in launch order."""
    files = sorted((run_dir / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    return [row for path in files for row in csv.DictReader(path.open())]


def logged(run_dir: Path, key: str) -> dict[int, float]:
    """``{step: value}`` of one metric over the whole run."""
    return {int(row["step"]): float(row[key]) for row in metric_rows(run_dir) if row.get(key)}


def finite(values) -> bool:
    return all(math.isfinite(v) for v in values)
