"""The LightningModule: next-token loss on answer tokens, generation-based validation.

Training minimises cross entropy on the assistant's answer tokens only (the collator's labels),
averaged over every answer token of the global batch: each rank scales its own mean by its share
of the answer tokens, so that data-parallel gradient averaging gives exactly the gradient a single
process would get on the concatenated batch (ranks holding more answer tokens weigh more). With
``optim.accumulate > 1`` an optimizer step averages the means of its micro-batches.
Validation does what users care about: it decodes answers greedily with the KV cache and logs
exact-match accuracy per task (``val/acc/<task>``) and their mean (``val/acc``), which also picks
the "best" checkpoint. A non-finite loss stops training at once, before the optimizer step could
write NaNs into the weights, so the checkpoints on disk stay good; so does a diverged loss, one
above ``divergence_factor`` times the loss of the run's first step (a learning rate far too high
can send the loss to 1e5 without it ever becoming NaN). Both tests are one device-side boolean,
read once per step, which is the only host sync the step makes.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from minivlm.model import VLM, ModelConfig
from minivlm.schema import IGNORE_INDEX, Batch
from minivlm.scoring import TaskScores, answer_batch
from minivlm.tokenizer import BPETokenizer
from minivlm.train.flops import forward_flops, training_flops
from minivlm.train.optim import build_optimizer


class LossGuardError(RuntimeError):
    """Raised when the training loss is NaN, infinite or diverged (training stops at once)."""


class VLMTrainingModule(L.LightningModule):
    """Wraps :class:`minivlm.model.VLM` for Lightning.

    Args:
        model_config: the model's configuration (a dict of :class:`ModelConfig` fields).
        optim: ``lr``, ``weight_decay``, ``betas``, ``warmup_steps``, ``min_lr_ratio``.
        total_steps: optimizer steps of the run (the cosine's length).
        val_tasks: task names validated, in a fixed order (for summing counts across ranks).
        max_new_tokens: generation budget of a validation answer.
        tokenizer: decodes generated answers (saved beside checkpoints by train.py).
        compile: ``torch.compile`` the model in place (parameter names, hence checkpoints, unchanged).
        divergence_factor: stop when the loss exceeds this many times the first step's loss; None: never.
    """

    def __init__(self, model_config: dict[str, Any], optim: dict[str, Any], total_steps: int,
                 val_tasks: list[str], max_new_tokens: int = 8, tokenizer: BPETokenizer | None = None,
                 compile: bool = False, divergence_factor: float | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer", "compile"])
        self.model = VLM(ModelConfig(**model_config))
        if compile:
            self.model.compile()
        self.tokenizer = tokenizer
        self.scores = TaskScores()
        self.flops_per_batch = 0  # FLOPs of the latest batch on this device: Lightning's ThroughputMonitor reads it
        # The first step's loss (a device tensor, later a float from a checkpoint): the divergence guard's scale.
        self.first_loss: torch.Tensor | float | None = None

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        loss = self.model(batch).loss
        tokens = (batch["labels"][:, 1:] != IGNORE_INDEX).sum().to(loss.dtype)  # the tokens the loss averages
        # One all-reduce gives the global answer-token count and the global loss; every rank then
        # sees the same value, so a non-finite loss stops all ranks together (none hangs waiting).
        loss_sum, global_tokens = self.trainer.strategy.reduce(torch.stack([loss.detach() * tokens, tokens]),
                                                               reduce_op="sum")
        global_loss = loss_sum / global_tokens
        self.guard_loss(global_loss)  # global_loss carries no gradient (made of detached values)
        self.flops_per_batch = training_flops(self.model, batch)
        self.log("train/loss", global_loss, prog_bar=True)
        self.log("train/answer_tokens", global_tokens)
        self.log("train/packing_efficiency", batch["packing_efficiency"])
        self.log("lr", self.optimizers().param_groups[0]["lr"])
        # Data-parallel strategies average gradients over ranks: scale so the average is the global mean.
        return loss * tokens * self.trainer.world_size / global_tokens

    def guard_loss(self, loss: torch.Tensor) -> None:
        """Stop (:class:`LossGuardError`) on a non-finite or diverged loss, before the optimizer step."""
        if self.first_loss is None:
            self.first_loss = loss
        factor = self.hparams.divergence_factor
        bad = ~torch.isfinite(loss)
        if factor is not None:
            bad |= loss > factor * self.first_loss
        if not bad:  # the step's one host sync
            return
        value = loss.item()
        if math.isfinite(value):
            problem = (f"training loss is {value:.4g} at step {self.global_step}, above divergence_factor={factor} "
                       f"times the first step's {float(self.first_loss):.4g}: training diverged")
        else:
            problem = f"training loss is {value} at step {self.global_step}"
        raise LossGuardError(
            f"{problem}; stopped before the optimizer step, so the saved checkpoints hold the last good weights. "
            "Lower optim.lr or raise optim.warmup_steps, and start a new schedule from those weights with "
            "ckpt_path=<checkpoint> resume.weights_only=true (in a new folder, name=..., or with overwrite=true)."
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A resumed run keeps its guard's scale (a float: tensors would tie the checkpoint to a device).
        checkpoint["first_loss"] = None if self.first_loss is None else float(self.first_loss)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.first_loss = checkpoint.get("first_loss")

    def on_validation_epoch_start(self) -> None:
        self.scores = TaskScores()

    def validation_step(self, batch: Batch, batch_index: int, dataloader_idx: int = 0) -> None:  # the name Lightning passes it under
        # Generation is dominated by the prompt's forward pass (answers are a few tokens).
        self.flops_per_batch = forward_flops(self.model, batch)
        answers = answer_batch(self.model, batch, self.tokenizer, self.hparams.max_new_tokens)
        self.scores.add(batch["tasks"], answers, batch["answers"])

    def on_validation_epoch_end(self) -> None:
        tasks = self.hparams.val_tasks
        counts = self.trainer.strategy.reduce(self.scores.as_tensor(tasks).to(self.device), reduce_op="sum")
        self.scores = TaskScores.from_tensor(tasks, counts.cpu())
        accuracy = self.scores.accuracy()
        # Every rank already holds the global counts; sync_dist averages equal values, it changes nothing.
        self.log_dict({f"val/acc/{task}": value for task, value in accuracy.items()}, sync_dist=True)
        self.log("val/acc", sum(accuracy.values()) / max(1, len(accuracy)), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        optim = self.hparams.optim
        optimizer, scheduler = build_optimizer(
            self.model, lr=optim["lr"], weight_decay=optim["weight_decay"], betas=optim["betas"],
            warmup_steps=optim["warmup_steps"], total_steps=self.hparams.total_steps,
            min_lr_ratio=optim["min_lr_ratio"],
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
