"""What a run tells its user: compact progress lines and the run's messages, on the console and in train.log.

With the progress bar off (``trainer.enable_progress_bar=false``: sweeps, batch jobs, logs read
later), :class:`ProgressLines` writes one line every ``logging.progress_every`` optimizer steps,
and one after every validation::

    step 20/40  loss 3.2141  lr 1.00e-03  5,130 tok/s
    step 20/40  val acc 0.250

Loss and tokens/s are those of the training module's latest logging interval
(:meth:`~minivlm.train.module.VLMTrainingModule.read_interval`: one read from the device, shared
with the loggers); tokens are the real (non-padding) tokens, per second of training (validation
excluded). Every message of the package's loggers (``minivlm.*``: these lines, the
run folder, the final table, the real-data skip reports) goes to the console and to the run's
``train.log`` while :func:`run_log` is open (training opens it on rank 0), whether or not Hydra
launched the run. :func:`silence_known_warnings` removes the warnings that say nothing about the
run, each with its reason.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_module

log = logging.getLogger("minivlm")  # the package's logger; module loggers (minivlm.data.adapters, ...) propagate here
FILE_FORMAT = "[%(asctime)s] %(message)s"


def console_configured() -> bool:
    """Whether the root logger already writes to the terminal (Hydra's job logging, a user's ``basicConfig``)."""
    return any(isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.stderr)
               for handler in logging.getLogger().handlers)


@contextmanager
def run_log(path: Path) -> Iterator[None]:
    """Messages of the ``minivlm`` loggers at INFO and above appended to ``path`` and shown on the console
    (through the root logger's console handler when there is one, else through one of their own)."""
    file = logging.FileHandler(path)
    file.setFormatter(logging.Formatter(FILE_FORMAT))
    handlers = [file] if console_configured() else [file, logging.StreamHandler(sys.stdout)]
    level = log.level
    log.setLevel(logging.INFO)
    for handler in handlers:
        log.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
        log.setLevel(level)


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("💡 Tip")


def silence_known_warnings() -> None:
    """Silence what every run would print without it being about the run (idempotent)."""
    # checkpoints/ holds the run's config, tokenizer and baselines, written before fit on purpose;
    # whether a folder may be reused is the run lock's decision (minivlm/train/run_lock.py).
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    # Lightning 2.6's own pytree helper calls a torch API that torch 2.14 deprecates: nothing to act on here.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # Lightning advertises its hosted logging and model registry on every fit: not about the run.
    rank_zero_module.log.addFilter(_not_a_tip)


class ProgressLines(L.Callback):
    """A line of loss, learning rate and tokens/s every ``every`` optimizer steps, and one per validation.

    Args:
        every: optimizer steps between lines (the last step always gets one).
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.last_step = -1

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.last_step = trainer.global_step  # a resumed run reports from its next step on

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_index: int) -> None:
        step = trainer.global_step
        if step == self.last_step or (step % self.every and step != trainer.max_steps):
            return  # mid-accumulation, or not a step to report
        self.last_step = step
        report = module.read_interval()
        log.info(f"step {step}/{trainer.max_steps}  loss {report['train/loss']:.4f}  "
                 f"lr {report['lr']:.2e}  {report['train/tokens_per_sec']:,.0f} tok/s")

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            log.info(f"step {trainer.global_step}/{trainer.max_steps}  val acc {float(trainer.callback_metrics['val/acc']):.3f}")
