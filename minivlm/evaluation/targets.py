"""What ``python evaluate.py`` can be pointed at: a checkpoint, an export, a run or a sweep folder.

Each resolves to :class:`Target`\\ s: the weights to score, the run folder the results go to, and
the config and tokenizer to rebuild the run with. A sweep in progress is the usual case, so runs
without the requested weights are skipped with a word, not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minivlm.run_folder import EXPORT_WEIGHTS, RunFolder, find_runs, is_export_dir


@dataclass(frozen=True)
class Target:
    """Weights to evaluate and where their results go.

    Args:
        folder: the run folder (results are written here); an export folder outside any run.
        weights: a Lightning ``.ckpt`` file or an export folder.
        config: the run's resolved ``config.yaml``; None for weights outside any run.
        tokenizer_dir: the folder holding the run's ``tokenizer.json``.
    """

    folder: RunFolder
    weights: Path
    config: Path | None
    tokenizer_dir: Path


def resolve_target(path: str | Path, weights: str = "last") -> Target:
    """The weights a path names: a ``.ckpt`` file, an export folder, or a run folder (``weights``).

    Raises:
        ValueError: the path does not exist or holds no checkpoint of minivlm.
    """
    path = Path(path)
    if path.is_file() and path.suffix == ".ckpt":
        folder = RunFolder(path.parent.parent if path.parent.name == "checkpoints" else path.parent)
        config = path.parent / folder.config.name
        return Target(folder, path, config if config.is_file() else None, path.parent)
    if path.is_dir() and is_export_dir(path):
        folder = RunFolder(path.parent) if RunFolder(path.parent).is_run() else RunFolder(path)
        return Target(folder, path, folder.config if folder.is_run() else None, path)
    if path.is_dir() and RunFolder(path).is_run():
        folder = RunFolder(path)
        return Target(folder, folder.weights(weights), folder.config, folder.tokenizer_dir)
    raise ValueError(
        f"{path} is not a minivlm checkpoint: pass a .ckpt file, an export folder (config.json + "
        f"{EXPORT_WEIGHTS}), a run folder (with checkpoints/config.yaml) or a folder of run folders"
    )


def find_targets(path: Path, weights: str) -> list[Target]:
    """The one model a path names, or every run below a folder that has the requested weights."""
    if not path.exists():
        raise ValueError(f"{path} does not exist; pass a .ckpt file, an export folder, a run folder or a sweep folder")
    if path.is_file() or is_export_dir(path) or RunFolder(path).is_run():
        return [resolve_target(path, weights)]
    folders = find_runs(path)
    if not folders:
        raise ValueError(f"no minivlm run below {path} (no */checkpoints/config.yaml); pass a .ckpt file, "
                         "an export folder, a run folder or a folder of runs")
    targets = []
    for folder in folders:
        try:
            targets.append(resolve_target(folder.root, weights))
        except ValueError as error:  # a sweep in progress: this run has no such weights yet
            print(f"skipped: {error}")
    return targets
