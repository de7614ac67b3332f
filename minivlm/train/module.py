"""The LightningModule: next-token loss on answer tokens, generation-based validation.

Training minimises cross entropy on the assistant's answer tokens only (the collator's labels),
averaged over every answer token of the global batch: each rank scales its own mean by its share
of the answer tokens, so that data-parallel gradient averaging gives exactly the gradient a single
process would get on the concatenated batch (ranks holding more answer tokens weigh more). With
``optim.accumulate > 1`` an optimizer step averages the means of its micro-batches. Beside the
step's loss, each task's mean answer-token loss over the logging interval (``train/loss/<task>``,
all ranks' tokens) shows which task the mix is learning while accuracy still sits at chance.
Validation does what users care about: it decodes answers greedily with the KV cache and logs
exact-match accuracy per task (``val/acc/<task>``) and their mean (``val/acc``), which also picks
the "best" checkpoint.

The training step never waits for the device (a GPU then stays queued with work): the counts it
needs (answer tokens, real tokens, FLOPs) are the collator's Python numbers, and the loss guard
runs on the device. A non-finite loss, or a diverged one (above ``divergence_factor`` times
ln(vocabulary size), the loss of guessing every token uniformly: a learning rate far too high can
send the loss to 1e5 without it ever becoming NaN), marks its step bad on the device, and the
fused AdamW skips that step's update on the device too (``found_inf``, the mechanism of
mixed-precision loss scaling), so the weights never take a bad step. Once per logging interval
(``trainer.log_every_n_steps``, and the last step) one transfer reads the loss, the token count
and the guard's record; a bad step then stops training with :class:`LossGuardError`, naming the
step where it happened. Saving a checkpoint reads the guard first, so no checkpoint is written
after a bad step: the checkpoints on disk hold good weights.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch.distributed.fsdp import FullyShardedDataParallel

from minivlm.model import VLM, ModelConfig
from minivlm.schema import Batch
from minivlm.scoring import TaskScores, answer_batch
from minivlm.tokenizer import BPETokenizer
from minivlm.train.flops import training_flops
from minivlm.train.optim import build_optimizer, check_lr_scale
from minivlm.train.throughput import Throughput


class LossGuardError(RuntimeError):
    """Raised when the training loss is NaN, infinite or diverged (training stops at once)."""


class LossGuard:
    """The first bad step and its loss, kept on the device; read with the interval's metrics.

    The scale is the loss of a uniform guess, ln(vocabulary size), where a run from scratch starts.
    It is not the first step's loss: a run from trained weights (``resume.weights_only=true``)
    starts far below it, and a healthy batch of a new kind then triples that (a curriculum stage of
    longer videos: 0.70 at the first step, 2.44 a few steps into the stage; results/learning/long).

    Args:
        factor: a loss above ``factor`` times ln(vocab_size) is bad; None: only non-finite ones.
        vocab_size: the model's vocabulary size.
    """

    def __init__(self, factor: float | None, vocab_size: int) -> None:
        self.factor = factor
        self.uniform_loss = math.log(vocab_size)
        self.bad_step: torch.Tensor | None = None  # -1 until a step is bad
        self.bad_loss: torch.Tensor | None = None

    def update(self, loss: torch.Tensor, step: int) -> torch.Tensor:
        """Device bool: whether ``loss`` (of optimizer step ``step``) is bad; the first bad one is recorded."""
        if self.bad_step is None:
            self.bad_step, self.bad_loss = loss.new_full((), -1.0), loss.new_zeros(())
        bad = ~torch.isfinite(loss)
        if self.factor is not None:
            bad |= loss > self.factor * self.uniform_loss
        first = bad & (self.bad_step < 0)
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_loss = torch.where(first, loss, self.bad_loss)
        return bad

    def record(self) -> list[torch.Tensor]:
        """The device values :meth:`check` needs, to be read in the interval's one transfer."""
        return [self.bad_step, self.bad_loss]

    def check(self, bad_step: float, bad_loss: float) -> None:
        """Raise :class:`LossGuardError` when a step was bad (values read from :meth:`record`)."""
        if bad_step < 0:
            return
        step = int(bad_step)
        if math.isfinite(bad_loss):
            problem = (f"training loss is {bad_loss:.4g} at step {step}, above divergence_factor={self.factor} "
                       f"times {self.uniform_loss:.4g}, the loss of a uniform guess (ln of the vocabulary size): "
                       "training diverged")
        else:
            problem = f"training loss is {bad_loss} at step {step}"
        raise LossGuardError(
            f"{problem}; stopped before the optimizer step (that update and any later one were skipped), so the saved "
            "checkpoints hold the last good weights. Lower optim.lr or raise optim.warmup_steps, and start a new "
            "schedule from those weights with ckpt_path=<checkpoint> resume.weights_only=true (in a new folder, "
            "name=..., or with overwrite=true)."
        )


class VLMTrainingModule(L.LightningModule):
    """Wraps :class:`minivlm.model.VLM` for Lightning.

    Args:
        model_config: the model's configuration (a dict of :class:`ModelConfig` fields).
        optim: ``lr``, ``weight_decay``, ``betas``, ``warmup_steps``, ``min_lr_ratio``, ``lr_scale``.
        total_steps: optimizer steps of the run (the cosine's length).
        val_tasks: task names validated, in a fixed order (for summing counts across ranks).
        max_new_tokens: generation budget of a validation answer.
        tokenizer: decodes generated answers (saved beside checkpoints by train.py).
        compile: ``torch.compile`` the model in place (parameter names, hence checkpoints, unchanged).
        divergence_factor: stop when the loss exceeds this many times ln(vocabulary size); None: never.
        loss_tasks: the tasks the collator's ``answer_task`` indexes (the datamodule's ``trained_tasks``),
            whose loss is logged per task; None: the total loss only.
    """

    def __init__(self, model_config: dict[str, Any], optim: dict[str, Any], total_steps: int,
                 val_tasks: list[str], max_new_tokens: int = 8, tokenizer: BPETokenizer | None = None,
                 compile: bool = False, divergence_factor: float | None = None,
                 loss_tasks: list[str] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["tokenizer", "compile"])
        self.model = VLM(ModelConfig.from_saved(model_config))
        check_lr_scale(self.model, optim.get("lr_scale"))  # now, not when training starts
        if compile:
            self.model.compile()
        self.tokenizer = tokenizer
        self.scores = TaskScores()
        self.guard = LossGuard(divergence_factor, self.model.config.vocab_size)
        self.throughput: Throughput | None = None  # made when training starts (it needs the device)
        self.resumed_totals: dict[str, float] | None = None  # the checkpoint's Throughput totals, when resuming
        self.step_metrics: torch.Tensor | None = None  # the latest step's (global loss, global answer tokens), on the device
        self.task_losses: torch.Tensor | None = None  # (2, tasks) device sums over the interval: loss, answer tokens
        self.skip_update: torch.Tensor | None = None  # device bool: a micro-batch of this optimizer step was bad
        self.packing_efficiency = self.learning_rate = 0.0  # of the latest step (Python floats)
        self.report: dict[str, float] = {}  # the latest interval's metrics (ProgressLines prints them)
        self.report_step = -1  # the optimizer step self.report was read at

    def on_train_start(self) -> None:
        precision = str(self.trainer.precision)
        dtype = torch.bfloat16 if "bf16" in precision else torch.float16 if "16" in precision else torch.float32
        self.throughput = Throughput(self.device, dtype, self.trainer.world_size)
        if self.resumed_totals is not None:
            self.throughput.load_state_dict(self.resumed_totals)
        self.throughput.start()
        self.report_step = self.global_step

    def training_step(self, batch: Batch, batch_index: int) -> torch.Tensor:
        output = self.model(batch)
        loss = output.loss
        tokens = batch["answer_tokens"]  # the tokens the loss averages (the collator's count: no device read)
        detached = loss.detach()
        # One all-reduce gives the global answer-token count and the global loss (and the per-task
        # sums); every rank then sees the same value, so a bad loss stops all ranks together.
        totals = self.trainer.strategy.reduce(torch.cat([torch.stack([detached * tokens, detached.new_full((), tokens)]),
                                                         self.per_task_sums(output.answer_losses, batch)]),
                                              reduce_op="sum")
        loss_sum, global_tokens = totals[:2]
        if self.hparams.loss_tasks:
            task_sums = totals[2:].view(2, -1)
            self.task_losses = task_sums if self.task_losses is None else self.task_losses + task_sums
        global_loss = loss_sum / global_tokens  # carries no gradient (made of detached values)
        bad = self.guard.update(global_loss, self.global_step)
        self.skip_update = bad if self.skip_update is None else self.skip_update | bad
        self.step_metrics = torch.stack([global_loss, global_tokens])
        self.throughput.add(batch["real_tokens"], len(batch["sample_ids"]), training_flops(self.model, batch))
        self.packing_efficiency = batch["packing_efficiency"]
        self.learning_rate = self.optimizers().param_groups[0]["lr"]  # this step's (the scheduler moves it after)
        # Data-parallel strategies average gradients over ranks: scale so the average is the global mean.
        return loss * tokens * self.trainer.world_size / global_tokens

    def per_task_sums(self, answer_losses: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``(2 * tasks,)``: the answer-token loss summed per task, then the answer tokens per task
        (empty without ``loss_tasks``); on the device, by index, so no step waits to group them."""
        tasks = self.hparams.loss_tasks
        if not tasks:
            return answer_losses.new_zeros(0)
        if batch.get("answer_task") is None:
            raise ValueError("loss_tasks is set but the batch has no answer_task; build the training collator "
                             "with task_names=loss_tasks (VLMDataModule.trained_tasks).")
        losses, task = answer_losses.detach(), batch["answer_task"]
        zeros = losses.new_zeros(len(tasks))
        return torch.cat([zeros.index_add(0, task, losses), zeros.index_add(0, task, torch.ones_like(losses))])

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # The fused AdamW skips its whole update on the device when found_inf is nonzero.
        optimizer.found_inf = self.skip_update.float()
        self.skip_update = None

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Clip the global gradient norm to ``optim.grad_clip`` in every precision and strategy.

        Lightning's own clipping refuses two of the shipped setups: under bf16 autocast it raises for
        any optimizer that unscales gradients itself (the fused AdamW), a guard that matters for fp16's
        loss scaling only (bf16 has no scaler, so the gradients here are the true ones); under FSDP it
        raises because each rank holds a shard, whose norm only FSDP's own method can combine.
        """
        if not gradient_clip_val:
            return
        sharded = self.trainer.strategy.model
        if isinstance(sharded, FullyShardedDataParallel):
            sharded.clip_grad_norm_(gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(self.parameters(), gradient_clip_val)

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_index: int) -> None:
        step = self.global_step
        if step % self.trainer.log_every_n_steps == 0 or step >= self.trainer.max_steps:
            self.read_interval()

    def read_interval(self) -> dict[str, float]:
        """The metrics of the interval ending at this optimizer step, read from the device once (cached
        per step), logged; raises :class:`LossGuardError` when a step of it was bad."""
        step = self.global_step
        if step == self.report_step or self.step_metrics is None:
            return self.report
        task_losses = self.task_losses.flatten() if self.task_losses is not None else self.step_metrics.new_zeros(0)
        values = torch.cat([self.step_metrics, torch.stack(self.guard.record()), task_losses]).tolist()
        (loss, answer_tokens, *record), task_values = values[:4], values[4:]
        self.guard.check(*record)
        self.report_step = step
        self.task_losses = None  # the next interval starts from zero
        self.report = {"train/loss": loss, "train/answer_tokens": answer_tokens,
                       "train/packing_efficiency": self.packing_efficiency,
                       "lr": self.learning_rate, **self.throughput.close(),
                       **self.interval_task_losses(task_values)}
        for logger in self.trainer.loggers:  # Python numbers straight to the loggers: nothing goes back to the device
            logger.log_metrics(self.report, step=step - 1)  # under the batch index, as Lightning logs
        if self.trainer.progress_bar_callback is not None:
            self.log("train/loss", loss, prog_bar=True, logger=False)
        return self.report

    def interval_task_losses(self, values: list[float]) -> dict[str, float]:
        """``{"train/loss/<task>": mean answer-token loss}`` of the tasks the interval trained on."""
        if not values:
            return {}
        half = len(values) // 2
        return {f"train/loss/{task}": total / count for task, total, count
                in zip(self.hparams.loss_tasks, values[:half], values[half:]) if count > 0}

    def on_validation_start(self) -> None:
        if self.throughput is not None:
            self.throughput.pause()  # validation time is not training time

    def on_validation_end(self) -> None:
        if self.throughput is not None:
            self.throughput.start()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.read_interval()  # raises after a bad step: no checkpoint is written after one
        if self.throughput is not None:
            checkpoint["throughput"] = self.throughput.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.resumed_totals = checkpoint.get("throughput")  # absent in checkpoints from before it was kept

    def on_validation_epoch_start(self) -> None:
        self.scores = TaskScores()

    def validation_step(self, batch: Batch, batch_index: int, dataloader_idx: int = 0) -> None:  # the name Lightning passes it under
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
            min_lr_ratio=optim["min_lr_ratio"], lr_scale=optim.get("lr_scale"),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
