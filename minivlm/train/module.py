"""The LightningModule: next-token loss on answer tokens, generation-based validation.

Training minimises cross entropy on the assistant's answer tokens only (the collator's labels).
Validation does what users care about: it decodes answers greedily with the KV cache and logs
exact-match accuracy per task (``val/acc/<task>``) and their mean (``val/acc``), which also picks
the "best" checkpoint. A non-finite loss stops training at once, before the optimizer step could
write NaNs into the weights, so the checkpoints on disk stay good.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from minivlm.evaluation.scoring import TaskScores, answer_batch
from minivlm.model import VLM, ModelConfig
from minivlm.tokenizer import BPETokenizer
from minivlm.train.optim import build_optimizer


class NonFiniteLossError(RuntimeError):
    """Raised when the training loss is NaN or infinite."""


class VLMTrainingModule(L.LightningModule):
    """Wraps :class:`minivlm.model.VLM` for Lightning.

    Args:
        model_config: the model's configuration (a dict of :class:`ModelConfig` fields).
        optim: ``lr``, ``weight_decay``, ``betas``, ``warmup_steps``, ``min_lr_ratio``.
        total_steps: optimizer steps of the run (the cosine's length).
        val_tasks: task names validated, in a fixed order (for summing counts across ranks).
        max_new_tokens: generation budget of a validation answer.
        tokenizer: decodes generated answers (saved beside checkpoints by train.py).
    """

    def __init__(self, model_config: dict[str, Any], optim: dict[str, Any], total_steps: int,
                 val_tasks: list[str], max_new_tokens: int = 8, tokenizer: BPETokenizer | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer"])
        self.model = VLM(ModelConfig(**model_config))
        self.tokenizer = tokenizer
        self.scores = TaskScores()
        # ThroughputMonitor reads this for MFU: ~6 flops per parameter per trained token.
        self.flops_per_token = 6 * sum(p.numel() for p in self.model.parameters())

    def training_step(self, batch: dict[str, Any], batch_index: int) -> torch.Tensor:
        loss = self.model(batch).loss
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss.item()} at step {self.global_step}; stopped before the "
                "optimizer step, so the saved checkpoints hold the last good weights. Lower "
                "optim.lr or raise optim.warmup_steps, then resume with ckpt_path=last."
            )
        answer_tokens = (batch["labels"] != -100).sum()
        self.flops_per_batch = self.flops_per_token * batch["input_ids"].numel()
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        self.log("train/answer_tokens", answer_tokens.float(), reduce_fx="sum")
        if batch.get("packing_efficiency") is not None:
            self.log("train/packing_efficiency", batch["packing_efficiency"])
        return loss

    def on_validation_epoch_start(self) -> None:
        self.scores = TaskScores()

    def validation_step(self, batch: dict[str, Any], batch_index: int) -> None:
        answers = answer_batch(self.model, batch, self.tokenizer, self.hparams.max_new_tokens)
        self.scores.add(batch["tasks"], answers, batch["answers"])

    def on_validation_epoch_end(self) -> None:
        tasks = self.hparams.val_tasks
        counts = self.trainer.strategy.reduce(self.scores.as_tensor(tasks).to(self.device), reduce_op="sum")
        self.scores = TaskScores.from_tensor(tasks, counts.cpu())
        accuracy = self.scores.accuracy()
        for task, value in accuracy.items():
            self.log(f"val/acc/{task}", value, sync_dist=False)
        self.log("val/acc", sum(accuracy.values()) / max(1, len(accuracy)), prog_bar=True)

    def configure_optimizers(self) -> dict[str, Any]:
        optim = self.hparams.optim
        optimizer, scheduler = build_optimizer(
            self.model, lr=optim["lr"], weight_decay=optim["weight_decay"], betas=optim["betas"],
            warmup_steps=optim["warmup_steps"], total_steps=self.hparams.total_steps,
            min_lr_ratio=optim["min_lr_ratio"],
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
