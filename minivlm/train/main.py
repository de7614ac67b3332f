"""The training command: ``python train.py`` in the repository, ``minivlm-train`` from any folder.

Both compose the shipped configs (:mod:`minivlm.resources`, so the working directory does not
matter) with Hydra and hand the config to :func:`minivlm.train.run.train`; ``--help`` prints the
config groups, their choices and the main keys with their comments (:mod:`minivlm.train.help`).
"""

from __future__ import annotations

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from minivlm.resources import CONFIG_DIR
from minivlm.train.config_store import register_configs
from minivlm.train.run import train

register_configs()  # the model/ and rope/ groups start from the config dataclasses


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float:
    """Returns the final mean validation accuracy (what a Hydra sweeper would optimise)."""
    return train(cfg, HydraConfig.get().runtime.output_dir)["val_acc"]


if __name__ == "__main__":
    main()
