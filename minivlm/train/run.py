"""One training run from a composed config: build everything, validate early, fit, report.

``train.py`` is a thin Hydra entry point around :func:`train`; tests compose configs with Hydra's
compose API and call it directly. Every bad value is caught before any training step: the
training settings (:mod:`minivlm.train.settings`), unknown rope names, sections that do not fit
the head, schedules that do not fit the depth, unknown tasks, a real-data source without usable
samples (in :func:`build_run`), a checkpoint trained with other settings
(:mod:`minivlm.train.resume`), a run folder in use or holding another run
(:mod:`minivlm.train.run_lock`). Checkpoints are written as :mod:`minivlm.train.checkpointing`
describes: atomically, ``last.ckpt`` every ``checkpoint_every`` steps.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger, WandbLogger
from lightning.pytorch.strategies import FSDPStrategy, Strategy
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from minivlm.model import VLM, ModelConfig, transformer_block_classes
from minivlm.processing import Processor
from minivlm.resources import TOKENIZER_DIR
from minivlm.rope import RopeSchedule
from minivlm.run_folder import RunFolder, write_atomically
from minivlm.scoring import TaskScores, answer_prompts, format_report
from minivlm.tokenizer import BPETokenizer
from minivlm.train.checkpointing import AtomicCheckpointIO, LastCheckpoint, best_checkpoint, kept_checkpoints
from minivlm.train.datamodule import VLMDataModule
from minivlm.train.export import export_run, read_checkpoint
from minivlm.train.model_card import launch_command
from minivlm.train.module import LossGuardError, VLMTrainingModule
from minivlm.train.progress import ProgressLines, log, run_log, silence_known_warnings
from minivlm.train.resume import check_resume, read_checkpoint_file, resolve_checkpoint
from minivlm.train.run_lock import claim_run_folder
from minivlm.train.settings import check_settings


@dataclass
class Run:
    """Everything a run is made of, built and checked before training starts."""

    cfg: DictConfig
    folder: RunFolder
    tokenizer: BPETokenizer
    schedule: RopeSchedule
    model_config: ModelConfig
    datamodule: VLMDataModule
    module: VLMTrainingModule


def build_model_config(cfg: DictConfig, tokenizer: BPETokenizer) -> ModelConfig:
    """The model of a composed config: the ``model`` and ``rope`` groups, the tokenizer's vocabulary."""
    return ModelConfig.from_saved({**OmegaConf.to_container(cfg.model, resolve=True), "vocab_size": tokenizer.vocab_size,
                                   "rope": OmegaConf.to_container(cfg.rope, resolve=True)})


def build_processor(data: DictConfig, model_config: ModelConfig, tokenizer: BPETokenizer) -> Processor:
    """The processor of a run: image and video settings from ``data``, patch geometry and context from the model."""
    return Processor(
        tokenizer, patch_size=model_config.patch_size, temporal_patch=model_config.temporal_patch,
        merge=model_config.spatial_merge, min_pixels=data.min_pixels, max_pixels=data.max_pixels,
        fps=data.fps, video_layout=data.video_layout, max_seq_len=model_config.max_seq_len,
        train_user_text=bool(data.get("train_user_text", False)),  # absent from configs saved before the switch
    )


def build_run(cfg: DictConfig, run_dir: str | Path) -> Run:
    """Tokenizer, model config, rope schedule, processor, data and module; raises ValueError early.

    Also builds the runs that evaluation scores, whose saved configs may predate newer training settings.
    """
    tokenizer = BPETokenizer.load(cfg.data.tokenizer or TOKENIZER_DIR)
    model_config = build_model_config(cfg, tokenizer)
    schedule = model_config.rope_schedule()  # checks names, layer count and head-dim fit

    data = cfg.data
    processor = build_processor(data, model_config, tokenizer)
    datamodule = VLMDataModule(
        processor, schedule, mix=OmegaConf.to_container(data.mix) if isinstance(data.mix, DictConfig) else data.mix,
        seed=cfg.seed if data.get("seed") is None else data.seed, batch_size=data.batch_size, layout=data.layout, max_tokens=model_config.max_seq_len,
        num_workers=data.num_workers, val_per_task=data.val_per_task, eval_batch_size=data.eval_batch_size,
        accumulate=cfg.optim.accumulate,
        real=OmegaConf.to_container(data.real, resolve=True) if data.get("real") is not None else None,
        task=OmegaConf.to_container(data.task, resolve=True) if data.get("task") else None,
        curriculum=OmegaConf.to_container(data.curriculum, resolve=True) if data.get("curriculum") else None,
    )
    module = VLMTrainingModule(
        model_config=asdict(model_config), optim=OmegaConf.to_container(cfg.optim, resolve=True),
        total_steps=cfg.steps, val_tasks=datamodule.validated_tasks, max_new_tokens=data.max_new_tokens,
        tokenizer=tokenizer, compile=cfg.compile, divergence_factor=cfg.get("divergence_factor"),
        loss_tasks=datamodule.trained_tasks,
    )
    return Run(cfg, RunFolder(run_dir), tokenizer, schedule, model_config, datamodule, module)


def build_loggers(cfg: DictConfig, folder: RunFolder) -> list[Logger]:
    """CSV always; TensorBoard when asked (or installed, with ``auto``); Weights & Biases when asked."""
    # A new version folder per launch (logs/version_<n>/metrics.csv): a resumed run keeps the earlier logs.
    loggers: list[Logger] = [CSVLogger(folder.root, name=folder.logs.name)]
    tensorboard = cfg.logging.tensorboard
    if tensorboard is True or (tensorboard == "auto" and _installed("tensorboard")):
        _require("tensorboard", "logging.tensorboard=true", "logging.tensorboard=auto")
        loggers.append(TensorBoardLogger(folder.root, name=folder.tensorboard.name, version=""))
    if cfg.logging.wandb:
        _require("wandb", "logging.wandb=true", "logging.wandb=false")
        loggers.append(WandbLogger(project=cfg.logging.wandb_project, name=cfg.name, save_dir=str(folder.root)))
    return loggers


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def _require(package: str, setting: str, alternative: str) -> None:
    if not _installed(package):
        raise ValueError(f"{setting} needs the {package} package, which is not installed; "
                         f"`pip install {package}` or set {alternative}.")


def build_strategy(cfg: DictConfig) -> str | Strategy:
    """The trainer's strategy; ``fsdp`` shards every transformer block (ViT and LM) as its own unit."""
    if cfg.trainer.strategy == "fsdp":
        return FSDPStrategy(auto_wrap_policy=transformer_block_classes(), state_dict_type="full")
    return cfg.trainer.strategy


def build_trainer(cfg: DictConfig, run: Run) -> L.Trainer:
    # Throughput (tokens/s, FLOP/s, MFU) is the training module's, read once per logging interval
    # (minivlm/train/throughput.py): Lightning's ThroughputMonitor waits for the GPU after every batch.
    # Best first: Lightning runs checkpoint callbacks last, in their order, so last.ckpt holds the best so far.
    kept = [] if cfg.get("keep_every") is None else [kept_checkpoints(run.folder.checkpoints, cfg.keep_every)]
    callbacks = [best_checkpoint(run.folder.checkpoints), *kept, LastCheckpoint(run.folder.last_checkpoint, cfg.checkpoint_every)]
    if cfg.trainer.enable_progress_bar:  # the bar shows loss and accuracy itself
        # Chosen, not left to Lightning: with `rich` installed its default bar counts epochs, and a
        # run bounded by steps has none to count ("Epoch 0/-2").
        callbacks.append(TQDMProgressBar())
    else:
        callbacks.append(ProgressLines(cfg.logging.progress_every))
    return instantiate(cfg.trainer, strategy=build_strategy(cfg), callbacks=callbacks,
                       plugins=[AtomicCheckpointIO()], logger=build_loggers(cfg, run.folder),
                       default_root_dir=str(run.folder.root))


@rank_zero_only
def save_run_files(run: Run) -> None:
    """Resolved config, tokenizer and the tasks' chance/blind baselines beside the checkpoints, so a
    checkpoint folder is self-contained."""
    folder = run.folder
    folder.checkpoints.mkdir(parents=True, exist_ok=True)
    folder.config.write_text(OmegaConf.to_yaml(run.cfg, resolve=True))
    baselines = {split: run.datamodule.baselines(split) for split in ("val", "extrapolate")}
    folder.baselines.write_text(json.dumps(baselines, indent=1))
    run.tokenizer.save(folder.tokenizer_dir)


def evaluate_split(run: Run, split: str, per_task: int, model: VLM | None = None) -> dict[str, float]:
    """Greedy exact-match accuracy per task on a split (``val``: with the held-out real records), in one process.

    Args:
        run: the run whose processor, tasks and tokenizer are used.
        split: a shipped split name (``val``, ``extrapolate``).
        per_task: prompts per task.
        model: the model to score (default: the run's own, ``run.module.model``).
    """
    prompts = itertools.chain(*run.datamodule.eval_dataloaders(split, per_task))
    answers = answer_prompts(model if model is not None else run.module.model, prompts, run.tokenizer,
                             run.cfg.data.max_new_tokens)
    return TaskScores.of(answers).accuracy()


def train(cfg: DictConfig, run_dir: str | Path) -> dict[str, Any]:
    """Fit, then print and return the final validation accuracy beside chance and blind baselines.

    Writes the run folder of ``run_dir`` (:mod:`minivlm.run_folder`); ``last.ckpt`` holds the final step.

    Raises:
        ValueError: a bad config value, a checkpoint trained with other settings, a folder in use
            or holding another run; all before any training step.
        SystemExit: the loss became NaN, infinite or diverged (the message names the last good checkpoint).
    """
    check_settings(cfg)
    silence_known_warnings()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    run = build_run(cfg, run_dir)
    resume = resolve_checkpoint(cfg.ckpt_path, run.folder)
    if resume is not None:
        check_resume(resume, run.module, cfg.resume.weights_only)  # with weights_only: loads the weights now
    resuming = resume is not None and not cfg.resume.weights_only
    # The folder's files are this run's own only when it resumes a checkpoint of this folder.
    own = resuming and resume.resolve().parent == run.folder.checkpoints.resolve()
    trainer = build_trainer(cfg, run)
    # Data-parallel ranks share rank 0's folder, its claim and its log.
    rank_zero = rank_zero_only.rank == 0
    with claim_run_folder(run.folder, own, cfg.overwrite) if rank_zero else nullcontext():
        with run_log(run.folder.log) if rank_zero else nullcontext():
            if resume is None and cfg.ckpt_path is not None:
                log.info(f"no checkpoint at {run.folder.last_checkpoint} yet: the run starts at step 0")
            return fit_and_report(run, trainer, resume if resuming else None)


def fit_and_report(run: Run, trainer: L.Trainer, resume: Path | None) -> dict[str, Any]:
    """:func:`train`'s work once the run folder is claimed: fit (from ``resume``), evaluate, export."""
    save_run_files(run)
    log.info(f"run folder: {run.folder.root}\nrope schedule: {run.schedule.describe()}")
    last = run.folder.last_checkpoint
    try:
        trainer.fit(run.module, datamodule=run.datamodule, ckpt_path=resume)
    except LossGuardError as error:
        good = f"{last} (step {read_checkpoint_file(last)['global_step']})" if last.exists() else "none yet"
        raise SystemExit(f"{error}\nlast good checkpoint: {good}") from None
    if not trainer.is_global_zero:
        return {"val_acc": float("nan")}

    # The final step's full weights, also when FSDP sharded them in memory (LastCheckpoint).
    cfg = run.cfg
    model = read_checkpoint(last)[0].to(trainer.strategy.root_device)
    accuracy = evaluate_split(run, "val", cfg.data.final_eval_per_task, model)
    baselines = run.folder.load_baselines()["val"]
    log.info(format_report(accuracy, baselines, f"validation accuracy after {trainer.global_step} steps"))
    mean = sum(accuracy.values()) / len(accuracy)
    result = {"val_acc": mean, "accuracy": accuracy, "steps": trainer.global_step}
    export_run(run.folder.export, model.cpu(), run.datamodule.processor, cfg, run.datamodule.validated_tasks, baselines,
               result, launch_command())
    write_atomically(run.folder.final_eval, json.dumps(result, indent=2))  # last: it marks the run finished
    return result
