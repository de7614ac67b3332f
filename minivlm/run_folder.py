"""A run folder: where training writes and everything else reads, named in one place.

    outputs/<run>/
        checkpoints/config.yaml      the resolved config of the run
        checkpoints/tokenizer.json   the tokenizer it trained with
        checkpoints/baselines.json   chance and blind accuracy of its own task distribution, per split
        checkpoints/last.ckpt        the newest state (Lightning checkpoint: weights, optimizer, loops)
        checkpoints/best-<step>.ckpt the best validation accuracy so far
        checkpoints/step-<step>.ckpt weights every ``keep_every`` steps, when set (probes over training)
        checkpoints/*.partial        a file being written (a save killed midway leaves one; never read)
        run.lock                     held by the training process while it runs (one run per folder)
        train.log                    the console log of ``python train.py`` (Hydra), skipped-record reports
        logs/version_<n>/metrics.csv one CSV log per launch (a resumed run adds a version)
        tensorboard/                 TensorBoard events, when installed
        final_eval.json              written when training finished: accuracy per task, steps
        export/                      the model as a standalone folder (:class:`ExportFolder`, no Lightning needed)
        evaluation.json, .csv        written by ``python evaluate.py``, with predictions.jsonl
        evaluation-<tag>.json ...    the same under a RoPE scaling (tag e.g. ``yarn3``)
        extrapolation.json           accuracy on longer clips (``python -m minivlm.evaluation.extrapolation``)
        bias.json                    answers by target location, attention maps, PTD (``python -m minivlm.evaluation.bias``)

    export/
        model.safetensors            the weights (tensors only: safe to load from strangers)
        config.json                  the ModelConfig fields and ``model_type`` (``VLM.from_pretrained``)
        processor_config.json        the processor's settings (``Processor.from_pretrained``)
        tokenizer.json               the tokenizer
        chat_template.jinja          the chat template as Jinja text (what the processor writes)
        generation_config.json       answer budget and end-of-answer token
        evaluation_config.json       the task distribution the run was evaluated on
        final_eval.json              the run's final accuracy and step
        README.md                    the model card: config, data, metrics, the command

A Hydra sweep puts one such folder per job below its sweep folder. Training
(:mod:`minivlm.train.run`), evaluation, aggregation and the curves all find their files through
:class:`RunFolder`, so the layout has one owner. Every file that must never be seen half written
(checkpoints, results) is written by :func:`atomic_file`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from omegaconf import DictConfig, OmegaConf

EXPORT_WEIGHTS, EXPORT_CONFIG = "model.safetensors", "config.json"  # the files that make a folder an export
FINAL_EVAL = "final_eval.json"  # a finished run's accuracy and step, in its folder and in its export
WEIGHT_CHOICES = ("last", "best", "export")  # which weights of a run evaluation loads
PARTIAL_SUFFIX = ".partial"  # a file being written by atomic_file, beside its destination


class RunFolder:
    """The files of one run, below ``root`` (see the module docstring for what each holds)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self.config = self.checkpoints / "config.yaml"
        self.tokenizer_dir = self.checkpoints
        self.baselines = self.checkpoints / "baselines.json"
        self.last_checkpoint = self.checkpoints / "last.ckpt"
        self.lock = self.root / "run.lock"
        self.log = self.root / "train.log"
        self.logs = self.root / "logs"
        self.tensorboard = self.root / "tensorboard"
        self.final_eval = self.root / FINAL_EVAL
        self.export = self.root / "export"
        self.evaluation_json = self.root / "evaluation.json"
        self.evaluation_csv = self.root / "evaluation.csv"
        self.predictions = self.root / "predictions.jsonl"
        self.extrapolation = self.root / "extrapolation.json"
        self.bias = self.root / "bias.json"

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    def evaluation(self, tag: str = "") -> tuple[Path, Path, Path]:
        """evaluate.py's result, table and judged answers; a tag (a RoPE scaling such as ``yarn3``)
        gives them their own names, so a scaled evaluation never replaces the plain one."""
        if not tag:
            return self.evaluation_json, self.evaluation_csv, self.predictions
        return (self.root / f"evaluation-{tag}.json", self.root / f"evaluation-{tag}.csv",
                self.root / f"predictions-{tag}.jsonl")

    def is_run(self) -> bool:
        return self.config.is_file()

    def holds_training(self) -> bool:
        """Whether training left anything worth keeping here: a checkpoint or a finished result."""
        return self.final_eval.is_file() or any(self.checkpoints.glob("*.ckpt"))

    def training_files(self) -> list[Path]:
        """What training wrote here (checkpoints, logs, export, results); ``overwrite=true`` deletes these."""
        paths = [self.checkpoints, self.logs, self.tensorboard, self.export, self.final_eval,
                 self.evaluation_json, self.evaluation_csv, self.predictions, self.extrapolation, self.bias]
        return [path for path in paths if path.exists()]

    def delete_training_files(self) -> None:
        for path in self.training_files():
            shutil.rmtree(path) if path.is_dir() else path.unlink()

    def remove_partial_files(self) -> None:
        """Delete what saves killed midway left (never read, but they take disk space)."""
        for partial in self.checkpoints.glob(f"*{PARTIAL_SUFFIX}"):
            partial.unlink()

    def weights(self, choice: str) -> Path:
        """The ``last`` or ``best`` checkpoint, or the ``export`` folder.

        Raises:
            ValueError: an unknown choice, or the run has no such weights (yet).
        """
        if choice not in WEIGHT_CHOICES:
            raise ValueError(f"unknown weights {choice!r}; choose one of {WEIGHT_CHOICES}")
        if choice == "export":
            if not is_export_dir(self.export):
                raise ValueError(f"run {self.root} has no export/ folder (training has not finished); "
                                 "evaluate its checkpoints with --weights last")
            return self.export
        pattern = "last.ckpt" if choice == "last" else "best-*.ckpt"
        found = sorted(self.checkpoints.glob(pattern), key=lambda p: p.stat().st_mtime)
        if not found:
            raise ValueError(f"run {self.root} has no checkpoints/{pattern} yet (no checkpoint was saved); "
                             "train it further or pick other --weights")
        return found[-1]  # the newest, if a resumed run left several best checkpoints

    def kept_checkpoints(self) -> dict[int, Path]:
        """``{step: checkpoints/step-<step>.ckpt}`` in step order (kept every ``keep_every`` steps)."""
        kept = {int(path.stem.removeprefix("step-")): path for path in self.checkpoints.glob("step-*.ckpt")}
        return dict(sorted(kept.items()))

    def load_config(self) -> DictConfig:
        return OmegaConf.load(self.config)

    def load_baselines(self) -> dict[str, dict[str, dict]]:
        """``{split: {task: {"chance", "blind", ...}}}`` of the distribution the run trained on."""
        return read_json(self.baselines)

    def load_final_eval(self) -> dict[str, Any] | None:
        """``final_eval.json`` (None while training has not finished)."""
        return read_json(self.final_eval) if self.final_eval.is_file() else None


class ExportFolder:
    """The files of an export folder (see the module docstring): everything that reproduces the run's answers."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.weights = self.root / EXPORT_WEIGHTS
        self.config = self.root / EXPORT_CONFIG
        self.processor = self.root / "processor_config.json"
        self.tokenizer_dir = self.root
        self.chat_template = self.root / "chat_template.jinja"
        self.generation = self.root / "generation_config.json"
        self.evaluation = self.root / "evaluation_config.json"
        self.final_eval = self.root / FINAL_EVAL
        self.card = self.root / "README.md"

    def __repr__(self) -> str:
        return f"ExportFolder({str(self.root)!r})"

    def load_final_eval(self) -> dict[str, Any] | None:
        """The run's ``final_eval.json`` (None in exports made by hand from a checkpoint)."""
        return read_json(self.final_eval) if self.final_eval.is_file() else None


def is_export_dir(path: Path) -> bool:
    return (path / EXPORT_CONFIG).is_file() and (path / EXPORT_WEIGHTS).is_file()


def find_runs(root: str | Path) -> list[RunFolder]:
    """Every run folder at or below ``root``, sorted by path."""
    configs = Path(root).rglob(str(RunFolder(".").config))
    return [RunFolder(path) for path in sorted({config.parent.parent for config in configs})]


def read_json(path: Path) -> Any:
    """A JSON file's content; a file that does not parse is a ValueError naming the file."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); delete it to have it written again.") from None


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that appears at ``path`` whole or not at all, also if the process is killed.

    The bytes go to ``<path>.partial`` in the same folder (a temporary folder may be another
    filesystem, where a rename silently becomes a copy that a kill can cut short), are flushed to
    the disk (``fsync``), and only then renamed over ``path``; the folder is synced too, so the
    rename itself survives a power loss. Until the rename, ``path`` keeps its previous content.
    """
    path = Path(path)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    try:
        with open(partial, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (:func:`atomic_file`)."""
    with atomic_file(path) as handle:
        handle.write(text.encode())
