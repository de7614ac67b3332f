"""SLURM sweeps and multi-node runs: the launcher config and the trainer settings compose (no cluster needed)."""

from __future__ import annotations

import importlib.util

import pytest
from hydra import compose, initialize_config_dir
from train_helpers import CONFIGS

needs_submitit = pytest.mark.skipif(importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None,
                                    reason="hydra-submitit-launcher not installed: pip install -e '.[slurm]'")


def compose_with_hydra(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


@needs_submitit
def test_the_slurm_launcher_composes_with_a_multi_node_ddp_run():
    cfg = compose_with_hydra("hydra/launcher=slurm", "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=8",
                             "hydra.launcher.gpus_per_node=8", "hydra.launcher.partition=gpu",
                             "trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2", "experiment=gpu_small")
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node, launcher.partition) == (2, 8, 8, "gpu")
    assert launcher.timeout_min == 240 and launcher.cpus_per_task == 10 and launcher.array_parallelism == 64
    assert launcher.max_num_timeout == 0  # the plugin's own field, kept from its schema
    assert launcher.submitit_folder == "outputs/multirun/.submitit/%j"  # inside the sweep folder
    # The run itself: one process per GPU on every node, as Lightning's SLURM environment expects.
    trainer = cfg.trainer
    assert (trainer.strategy, trainer.devices, trainer.num_nodes, trainer.precision) == ("ddp", 8, 2, "bf16-mixed")


def test_multi_node_settings_without_a_launcher():
    cfg = compose_with_hydra("trainer=fsdp", "trainer.num_nodes=4", "model=base")
    assert (cfg.trainer.strategy, cfg.trainer.num_nodes, cfg.trainer.devices) == ("fsdp", 4, "auto")
    assert cfg.hydra.launcher._target_ == "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
