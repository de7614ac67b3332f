"""Checkpoints that are never stale or half written: atomic files, ``last.ckpt`` at a fixed interval.

Two rules make a run resumable after any crash, ``SIGKILL`` included:

- every checkpoint file is written by :func:`minivlm.run_folder.atomic_file` (temporary file in the
  destination folder, ``fsync``, rename), through :class:`AtomicCheckpointIO`, Lightning's hook
  for how checkpoints reach the disk; an interrupted save leaves the previous file intact;
- :class:`LastCheckpoint` rewrites ``last.ckpt`` every ``every`` optimizer steps, after every
  validation and at the final step, so a resumed run loses at most ``every`` steps. Lightning's
  ``ModelCheckpoint(save_last=True)`` writes ``last`` only when it saves a top-k checkpoint, i.e.
  when the monitored accuracy improves, which can leave ``last.ckpt`` many steps behind.

The best checkpoint (``best-<step>.ckpt``, highest ``val/acc``) stays Lightning's
``ModelCheckpoint`` (:func:`best_checkpoint`), as do the weights kept along the way
(``step-<step>.ckpt``, :func:`kept_checkpoints`) for probing a run over training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint

from minivlm.run_folder import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` straight into :func:`~minivlm.run_folder.atomic_file`.

    Lightning's own writer serialises to memory and hands the bytes to fsspec, whose local
    "transaction" writes a file in the temporary folder and moves it: across filesystems (a tmpfs
    ``TMPDIR``) the move is a copy, and a kill during it truncates the checkpoint.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO writes local files and takes no storage_options.")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(Path(path)) as handle:
            torch.save(checkpoint, handle)


def _batches_done(trainer: L.Trainer) -> int:
    """Training batches completed so far (micro-batches when accumulating)."""
    return trainer.fit_loop.epoch_loop.total_batch_idx + 1


def _validates_after_this_batch(trainer: L.Trainer) -> bool:
    """Whether Lightning validates right after the current batch (``val_check_interval`` in batches)."""
    interval = trainer.val_check_batch
    return isinstance(interval, int) and interval > 0 and _batches_done(trainer) % interval == 0


class LastCheckpoint(Checkpoint):
    """Writes ``path`` (``last.ckpt``, with optimizer and loop state) every ``every`` optimizer steps,
    after every validation, and after the final step.

    A step that is followed by a validation is saved after it (``on_validation_end``), so the
    checkpoint also holds that validation's result (the best accuracy so far, which
    ``ModelCheckpoint`` keeps in its state) and a resumed run does not validate it again. Saves
    happen only between optimizer steps, never inside a gradient accumulation.
    """

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every = Path(path), every

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        due = step % self.every == 0 or step == trainer.max_steps
        if due and self._between_steps(trainer) and not _validates_after_this_batch(trainer):
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking and self._between_steps(trainer):
            trainer.save_checkpoint(self.path, weights_only=False)

    @staticmethod
    def _between_steps(trainer: L.Trainer) -> bool:
        return _batches_done(trainer) % trainer.accumulate_grad_batches == 0


def best_checkpoint(folder: Path) -> ModelCheckpoint:
    """``best-<step>.ckpt``: the checkpoint of the highest validation accuracy (one kept)."""
    return ModelCheckpoint(dirpath=folder, filename="best-{step}", monitor="val/acc", mode="max", save_top_k=1,
                           save_last=False, auto_insert_metric_name=False)


def kept_checkpoints(folder: Path, every: int) -> ModelCheckpoint:
    """``step-<step>.ckpt`` every ``every`` optimizer steps, all kept, weights only (a third of ``last.ckpt``)."""
    return ModelCheckpoint(dirpath=folder, filename="step-{step}", every_n_train_steps=every, save_top_k=-1,
                           save_weights_only=True, save_last=False, auto_insert_metric_name=False)
