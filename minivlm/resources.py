"""Where the shipped configs and data live, wherever minivlm is installed.

The repository keeps them at its top level, ``configs/`` (the Hydra groups) and ``data/`` (the
synthetic sets, their baselines, the tokenizer), where a reader of the repository looks for them.
``pyproject.toml`` maps those two folders into the package as ``minivlm.configs`` and
``minivlm.shipped`` (setuptools ``package-dir``), so a wheel or ``pip install .`` carries them as
package data and an editable install reads them in place; :func:`shipped` finds either through
:mod:`importlib.resources`, so nothing depends on the working directory or on a repository checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

PACKAGES = {"configs": "minivlm.configs", "data": "minivlm.shipped"}  # repository folder -> package


def shipped(folder: str) -> Path:
    """The shipped ``configs`` or ``data`` folder (laid out as in the repository) as a directory path.

    Raises:
        ValueError: an unknown folder name.
    """
    if folder not in PACKAGES:
        raise ValueError(f"no shipped folder {folder!r}; the shipped folders are {sorted(PACKAGES)}")
    # pip installs packages as directories (never zipped), so the resource is a real path.
    return Path(str(files(PACKAGES[folder])))


CONFIG_DIR = shipped("configs")  # train.yaml and the groups model/ rope/ data/ trainer/ experiment/
SYNTHETIC_DIR = shipped("data") / "synthetic"  # the shipped val and extrapolate sets and baselines (data/README.md)
TOKENIZER_DIR = shipped("data") / "tokenizer"  # the shipped tokenizer.json
