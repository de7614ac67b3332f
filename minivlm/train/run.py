"""One training run from a composed config: build everything, validate early, fit, report.

``train.py`` is a thin Hydra entry point around :func:`train`; tests compose configs with Hydra's
compose API and call it directly. Every bad value is caught in :func:`build_run`, before any
training step: unknown rope names, sections that do not fit the head, schedules that do not fit
the depth, unknown tasks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ThroughputMonitor
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.strategies import FSDPStrategy
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from minivlm.data.storage import load_baselines
from minivlm.evaluation.scoring import TaskScores, answer_batch, format_report
from minivlm.model import ModelConfig, transformer_block_classes
from minivlm.processing import Processor
from minivlm.rope import RopeSchedule
from minivlm.tokenizer import BPETokenizer
from minivlm.train.datamodule import VLMDataModule
from minivlm.train.export import export_model
from minivlm.train.module import NonFiniteLossError, VLMTrainingModule


@dataclass
class Run:
    """Everything a run is made of, built and checked before training starts."""

    cfg: DictConfig
    run_dir: Path
    tokenizer: BPETokenizer
    schedule: RopeSchedule
    model_config: ModelConfig
    datamodule: VLMDataModule
    module: VLMTrainingModule


def build_run(cfg: DictConfig, run_dir: str | Path) -> Run:
    """Tokenizer, model config, rope schedule, processor, data and module; raises ValueError early."""
    tokenizer = BPETokenizer.load(cfg.data.tokenizer)
    model_fields = OmegaConf.to_container(cfg.model, resolve=True)
    model_fields["vocab_size"] = tokenizer.vocab_size
    model_fields["rope"] = OmegaConf.to_container(cfg.rope, resolve=True)
    model_config = ModelConfig(**model_fields)
    schedule = model_config.rope_schedule()  # checks names, layer count and head-dim fit

    data = cfg.data
    processor = Processor(
        tokenizer, patch_size=model_config.patch_size, temporal_patch=model_config.temporal_patch,
        merge=model_config.spatial_merge, min_pixels=data.min_pixels, max_pixels=data.max_pixels,
        fps=data.fps, video_layout=data.video_layout, max_seq_len=model_config.max_seq_len,
    )
    datamodule = VLMDataModule(
        processor, schedule, mix=OmegaConf.to_container(data.mix) if isinstance(data.mix, DictConfig) else data.mix,
        seed=cfg.seed, batch_size=data.batch_size, layout=data.layout, max_tokens=model_config.max_seq_len,
        num_workers=data.num_workers, val_per_task=data.val_per_task, eval_batch_size=data.eval_batch_size,
        accumulate=cfg.optim.accumulate,
    )
    module = VLMTrainingModule(
        model_config=model_fields, optim=OmegaConf.to_container(cfg.optim, resolve=True),
        total_steps=cfg.steps, val_tasks=datamodule.val_tasks, max_new_tokens=data.max_new_tokens,
        tokenizer=tokenizer,
    )
    return Run(cfg, Path(run_dir), tokenizer, schedule, model_config, datamodule, module)


def build_loggers(cfg: DictConfig, run_dir: Path) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(run_dir, name="logs", version="")]
    tensorboard = cfg.logging.tensorboard
    if tensorboard is True or (tensorboard == "auto" and _has_tensorboard()):
        loggers.append(TensorBoardLogger(run_dir, name="tensorboard", version=""))
    if cfg.logging.wandb:
        loggers.append(WandbLogger(project=cfg.logging.wandb_project, name=cfg.name, save_dir=str(run_dir)))
    return loggers


def _has_tensorboard() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def build_trainer(cfg: DictConfig, run: Run) -> L.Trainer:
    checkpoints = ModelCheckpoint(
        dirpath=run.run_dir / "checkpoints", filename="best-{step}", monitor="val/acc", mode="max",
        save_top_k=1, save_last=True, auto_insert_metric_name=False,
    )
    callbacks = [
        checkpoints,
        LearningRateMonitor(logging_interval="step"),
        ThroughputMonitor(batch_size_fn=lambda batch: batch["input_ids"].shape[0],
                          length_fn=lambda batch: batch["input_ids"].numel()),
    ]
    strategy = cfg.trainer.strategy
    if strategy == "fsdp":
        strategy = FSDPStrategy(auto_wrap_policy=transformer_block_classes(), state_dict_type="full")
    return instantiate(cfg.trainer, strategy=strategy, callbacks=callbacks,
                       logger=build_loggers(cfg, run.run_dir), default_root_dir=str(run.run_dir))


def save_run_files(run: Run) -> None:
    """Resolved config and tokenizer beside the checkpoints, so a checkpoint folder is self-contained."""
    folder = run.run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml(run.cfg, resolve=True))
    run.tokenizer.save(folder)


def evaluate_split(run: Run, split: str, per_task: int) -> dict[str, float]:
    """Greedy exact-match accuracy per task on a shipped split (the run's model, one process)."""
    model = run.module.model.eval()
    scores = TaskScores()
    for batch in run.datamodule.eval_dataloader(split, per_task):
        batch = _to_device(batch, run.module.device)
        scores.add(batch["tasks"], answer_batch(model, batch, run.tokenizer, run.cfg.data.max_new_tokens),
                   batch["answers"])
    return scores.accuracy()


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    def move(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.to(device)
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        return value
    return {key: move(value) for key, value in batch.items()}


def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Fit, then print and return the final validation accuracy beside chance and blind baselines."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run = build_run(cfg, run_dir)
    if cfg.compile:
        run.module.model = torch.compile(run.module.model)
    trainer = build_trainer(cfg, run)
    save_run_files(run)
    print(f"run folder: {run.run_dir}\nrope schedule: {run.schedule.describe()}")
    try:
        trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=cfg.ckpt_path)
    except NonFiniteLossError as error:
        last = run.run_dir / "checkpoints" / "last.ckpt"
        raise SystemExit(f"{error}\nlast good checkpoint: {last if last.exists() else 'none yet'}") from None
    if not trainer.is_global_zero:
        return {"val_acc": float("nan")}

    accuracy = evaluate_split(run, "val", cfg.data.final_eval_per_task)
    baselines = load_baselines()["splits"]["val"]
    print(format_report(accuracy, baselines, f"validation accuracy after {trainer.global_step} steps"))
    mean = sum(accuracy.values()) / len(accuracy)
    result = {"val_acc": mean, "accuracy": accuracy, "steps": trainer.global_step}
    (run.run_dir / "final_eval.json").write_text(json.dumps(result, indent=2))
    export_model(run.module.model, run.model_config, run.tokenizer, run.run_dir / "export")
    return result
