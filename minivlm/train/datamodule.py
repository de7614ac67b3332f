"""Lightning data module: an endless training stream (synthetic or real), fixed sets for validation.

Training batches are a pure function of their global index: batch ``b`` of rank ``r`` (of ``R``)
holds the synthetic stream positions ``(b * R + r) * batch_size + i``. DataLoader worker ``w`` (of
``W``) makes batches ``b = w, w + W, ...`` and the DataLoader hands them out round-robin, so the
order is fixed whatever the worker count, no sample repeats across ranks, and a resumed run
starts exactly at batch ``global_step * accumulate`` without storing any data state (a
curriculum, :mod:`minivlm.data.curriculum`, picks the stream from the step). Processing,
position ids and masks are all made inside the workers (the collator), never in ``forward``.

A real dataset (:class:`minivlm.data.adapters.RealDataset`, selected by ``data.real``) is sharded
by rows instead, over ranks and workers, and cycled forever; see :class:`RealBatches` for how it
resumes. Its records are processed where they are read, so a record that the adapter or the
processor rejects is skipped and counted, never a crash in the middle of an epoch, and its first
records are read before training starts (:meth:`~minivlm.data.adapters.RealDataset.probe`).
With ``holdout`` > 0 the source's first records are held out of training: validation scores them
beside the synthetic tasks (the source's name is one more task), and ``python evaluate.py RUN
--splits real`` scores them again.

Validation generates answers for the first ``val_per_task`` samples of each task of the shipped
``val`` set, prompt-only and left-padded. ``data.task`` (TaskConfig overrides, e.g. fewer objects
or a coarser grid) changes the distribution of every split; the shipped sets hold only the
default one, so the evaluation samples and their chance/blind baselines are then generated from
the same pure functions (seed 0, as the shipped sets were built) instead of read.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.distributed
import torch.utils.data

from minivlm.data.adapters import RealDataset
from minivlm.data.baselines import estimate_baselines
from minivlm.data.collate import Collator
from minivlm.data.curriculum import Curriculum, build_curriculum
from minivlm.data.storage import SYNTHETIC_DIR, load_baselines, synthetic_set
from minivlm.data.streaming import SyntheticStream
from minivlm.data.tasks import TASKS, TaskConfig, generate, split_config
from minivlm.data.tasks.config import EXTRAPOLATED_FIELDS, parse_overrides
from minivlm.processing import Processor
from minivlm.rope import RopeSchedule


def _rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class TrainBatches(torch.utils.data.IterableDataset):
    """Collated training batches, batch ``b`` a pure function of ``b`` (see the module docstring).

    Args:
        curriculum: which stream feeds each optimizer step (``stream.sample(position)``).
        processor: sample -> encoded sample.
        collator: encoded samples -> batch.
        batch_size: samples per batch and rank.
        start_batch: the first batch index (``global_step * accumulate`` when resuming).
        accumulate: micro-batches per optimizer step (batch ``b`` belongs to step ``b // accumulate``).
    """

    def __init__(self, curriculum: Curriculum, processor: Processor, collator: Collator,
                 batch_size: int, start_batch: int = 0, accumulate: int = 1) -> None:
        super().__init__()
        self.curriculum, self.processor, self.collator = curriculum, processor, collator
        self.batch_size, self.start_batch, self.accumulate = batch_size, start_batch, accumulate

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world = _rank_and_world()
        worker = torch.utils.data.get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        for batch in itertools.count(self.start_batch + worker_id, num_workers):
            first = (batch * world + rank) * self.batch_size
            stream = self.curriculum.stream_at(batch // self.accumulate)
            samples = [self.processor(stream.sample(p)) for p in range(first, first + self.batch_size)]
            yield self.collator(samples)


class RealBatches(torch.utils.data.IterableDataset):
    """Collated batches of a real dataset, passing over it again and again (runs count steps, not epochs).

    The dataset shards its rows over ranks (and DataLoader workers), and worker ``w`` (of ``W``)
    makes the loader's batches ``w, w + W, ...`` (the DataLoader takes them round-robin; a loader
    resumed at batch ``s`` starts with worker 0, so its workers take over the shards in turn). Every
    record belongs to exactly one rank and worker (:meth:`RealDataset.records_of_shard`), so a pass
    of every worker over its shard is one epoch: each record seen once. Resuming at batch ``s``,
    each worker first skips the samples of its batches in ``range(w, s, W)`` (read and processed
    again, not collated), so no sample is repeated or lost and the batches come in exactly the
    uninterrupted run's order, for any number of workers.

    Args:
        dataset: the real dataset, its transform the processor (it yields encoded samples and skips
            the records either rejects).
        collator: encoded samples -> batch.
        batch_size: samples per batch and rank.
        start_batch: the first batch index (``global_step * accumulate`` when resuming).
    """

    def __init__(self, dataset: RealDataset, collator: Collator, batch_size: int, start_batch: int = 0) -> None:
        super().__init__()
        self.dataset, self.collator = dataset, collator
        self.batch_size, self.start_batch = batch_size, start_batch

    def passes(self) -> Iterator[dict[str, Any]]:
        """This shard's samples, pass after pass."""
        while True:
            empty = True
            for sample in self.dataset:
                empty = False
                yield sample
            if empty:
                raise ValueError(f"{self.dataset.name}: this rank and worker's shard holds no usable record; "
                                 "use fewer data.num_workers or devices, or a larger dataset.")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = torch.utils.data.get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        # The loader's first batch (from worker 0) is batch start_batch, which the shard of worker
        # start_batch % W makes: worker w takes over the shard of worker (w + start_batch) % W.
        shard_worker = (worker_id + self.start_batch) % num_workers
        self.dataset.worker_shift = shard_worker - worker_id  # this worker's own copy of the dataset
        done = len(range(shard_worker, self.start_batch, num_workers)) * self.batch_size
        samples = itertools.islice(self.passes(), done, None)
        while True:
            yield self.collator(list(itertools.islice(samples, self.batch_size)))


class FirstSamples(torch.utils.data.IterableDataset):
    """The first ``count`` samples of an iterable dataset (prompts of a held-out real slice)."""

    def __init__(self, dataset: torch.utils.data.IterableDataset, count: int) -> None:
        super().__init__()
        self.dataset, self.count = dataset, count

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.dataset), self.count)


class GeneratedSet(torch.utils.data.Dataset):
    """Samples ``0 .. per_task - 1`` of each task's ``(split, seed 0)`` stream under ``config``: what a
    shipped set holds for the default distribution, made on demand (in the DataLoader workers)."""

    def __init__(self, tasks: Sequence[str], per_task: int, split: str, config: TaskConfig, transform: Any) -> None:
        self.keys = [(task, index) for task in tasks for index in range(per_task)]
        self.split, self.config, self.transform = split, config, transform

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, index: int) -> Any:
        task, position = self.keys[index]
        return self.transform(generate(task, position, self.split, 0, self.config))


def first_per_task(tasks: Sequence[str], per_task: int) -> list[int]:
    """Indices of the first ``per_task`` rows of every task, in table order."""
    taken: dict[str, int] = {}
    keep = []
    for index, task in enumerate(tasks):
        if taken.get(task, 0) < per_task:
            taken[task] = taken.get(task, 0) + 1
            keep.append(index)
    return keep


class VLMDataModule(L.LightningDataModule):
    """Training stream + validation set for one run.

    Validation always scores the synthetic diagnostic tasks of ``mix`` (the position probes),
    also when ``real`` replaces the synthetic training stream.

    Args:
        processor: the processor matching the model (patch size, merge, context).
        schedule: the LM's rope schedule (ids are built for each of its designs).
        mix: task mix name or ``{task: weight}`` of the training stream.
        seed: stream seed.
        batch_size: samples per micro-batch and device.
        layout: ``pad`` (one sample per row) or ``pack`` (rows filled up to ``max_tokens``).
        max_tokens: longest sample (pad) or row budget (pack), in tokens.
        num_workers: DataLoader worker processes (0: in the main process).
        val_tasks: tasks validated (None: the tasks of the mix).
        val_per_task: validation samples per task.
        eval_batch_size: prompts per generation batch.
        synthetic_dir: folder of the shipped sets.
        accumulate: micro-batches per optimizer step (to find the resume batch).
        real: train on a real dataset instead of the synthetic stream: ``source``, ``config_name``,
            ``split``, ``record_layout`` (cauldron | llava | vqa | auto), ``image_root``,
            ``max_bad_fraction`` (see :class:`~minivlm.data.adapters.RealDataset`) and ``holdout``
            (records held out for validation); None trains on the synthetic mix.
        task: TaskConfig overrides for every split (``extrapolate`` keeps its own larger images and
            longer videos); None or empty: the defaults, evaluated on the shipped sets.
        curriculum: stages trained before the run's own distribution, ``[{steps, task, mix}, ...]``
            (:mod:`minivlm.data.curriculum`); None or empty: none.

    Raises:
        ValueError: when the first records of ``real`` hold no usable sample, or too many bad ones
            (checked here, before training starts).
    """

    def __init__(self, processor: Processor, schedule: RopeSchedule, mix: Any = "default", seed: int = 0,
                 batch_size: int = 16, layout: str = "pad", max_tokens: int = 1024, num_workers: int = 2,
                 val_tasks: Sequence[str] | None = None, val_per_task: int = 32, eval_batch_size: int = 32,
                 synthetic_dir: str | Path = SYNTHETIC_DIR, accumulate: int = 1,
                 real: Mapping[str, Any] | None = None, task: Mapping[str, Any] | None = None,
                 curriculum: Sequence[Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        self.processor, self.schedule = processor, schedule
        self.task = parse_overrides(task, "data.task")
        self.stream = SyntheticStream(mix=mix, split="train", seed=seed, config=self.task_config("train"))
        self.curriculum = build_curriculum(curriculum, self.stream, self.task)
        self.batch_size, self.num_workers, self.accumulate = batch_size, num_workers, accumulate
        self.val_tasks = list(val_tasks) if val_tasks is not None else list(self.stream.probabilities)
        self.val_per_task, self.eval_batch_size = val_per_task, eval_batch_size
        self.synthetic_dir = Path(synthetic_dir)
        self.real = dict(real) if real is not None else None
        self.holdout = int(self.real.get("holdout") or 0) if self.real is not None else 0
        real_name = self.real_dataset().name if self.real is not None else None  # the real samples' task
        self.real_task = real_name if self.holdout else None  # the held-out slice's task name
        # What training batches may hold (the per-task loss's names): the real source alone, or any
        # synthetic task (a curriculum stage may draw tasks its final mix lacks).
        self.trained_tasks = [real_name] if real_name is not None else list(TASKS)
        pad_id = processor.tokenizer.pad_id
        self.train_collator = Collator(schedule, pad_id, max_tokens, mode=layout, task_names=self.trained_tasks)
        self.prompt_collator = Collator(schedule, pad_id, max_tokens, mode="pad", padding_side="left")
        if self.real is not None:
            self.real_dataset(rank=0, world_size=1).probe()

    @property
    def validated_tasks(self) -> list[str]:
        """The tasks validation scores: the synthetic ``val_tasks``, then a held-out real slice's."""
        return [*self.val_tasks, *([self.real_task] if self.real_task else [])]

    def task_config(self, split: str) -> TaskConfig | None:
        """The sample distribution of ``split`` under ``data.task``; None for the defaults."""
        if not self.task:
            return None
        if split == "extrapolate":
            return split_config(split, **{k: v for k, v in self.task.items() if k not in EXTRAPOLATED_FIELDS})
        return split_config(split, **self.task)

    def distribution(self, split: str) -> TaskConfig:
        """The sample distribution of ``split`` the run trains or is scored on: ``data.task``'s or the defaults."""
        return self.task_config(split) or split_config(split)

    def baselines(self, split: str) -> dict[str, dict]:
        """Chance and blind accuracy per validated task on ``split`` (see :mod:`minivlm.data.baselines`)."""
        config = self.task_config(split)
        if config is None:
            shipped = load_baselines(self.synthetic_dir)["splits"][split]
            return {task: shipped[task] for task in self.val_tasks}
        # 500 problems per task: chance is exact, blind an estimate (the shipped sets use 2000).
        return {task: estimate_baselines(task, split, 500, 0, config, self.task_config("train"))
                for task in self.val_tasks}

    def real_dataset(self, rank: int | None = None, world_size: int | None = None, held_out: bool = False,
                     transform: Any = None) -> RealDataset:
        """The real training records (after the held-out ones), or the held-out ones, as encoded samples
        (``transform``: the processor by default); rank and world None read torch.distributed."""
        real = self.real
        records = (0, self.holdout) if held_out else (self.holdout, None)
        return RealDataset(real["source"], split=real["split"], layout=real["record_layout"],
                           image_root=real["image_root"], config_name=real["config_name"],
                           transform=transform or self.processor, rank=rank, world_size=world_size,
                           max_bad_fraction=real.get("max_bad_fraction"), records=records)

    def _loader(self, dataset: torch.utils.data.Dataset, **kwargs: Any) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            dataset, num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(), **kwargs,
        )

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        start = self.trainer.global_step * self.accumulate if self.trainer is not None else 0
        if self.real is not None:
            batches = RealBatches(self.real_dataset(), self.train_collator, self.batch_size, start)
        else:
            batches = TrainBatches(self.curriculum, self.processor, self.train_collator, self.batch_size, start,
                                   self.accumulate)
        return self._loader(batches, batch_size=None)

    def eval_dataloader(self, split: str = "val", per_task: int | None = None) -> torch.utils.data.DataLoader:
        """Prompt-only batches of ``split``, the first ``per_task`` samples of each validated task."""
        per_task, config = per_task or self.val_per_task, self.task_config(split)
        transform = partial(self.processor, prompt_only=True)
        if config is None:
            shipped = synthetic_set(split, self.synthetic_dir, tasks=self.val_tasks, transform=transform)
            prompts = torch.utils.data.Subset(shipped, first_per_task(shipped.table["task"], per_task))
        else:
            prompts = GeneratedSet(self.val_tasks, per_task, split, config, transform)
        return self._loader(prompts, batch_size=self.eval_batch_size, collate_fn=self.prompt_collator)

    def held_out_prompts(self, per_task: int | None = None) -> torch.utils.data.DataLoader:
        """Prompt-only batches of the first ``per_task`` usable held-out real records (``holdout`` > 0)."""
        prompts = self.real_dataset(held_out=True, transform=partial(self.processor, prompt_only=True))
        # In this process: a few batches of prompts, read once.
        return torch.utils.data.DataLoader(FirstSamples(prompts, per_task or self.val_per_task),
                                           batch_size=self.eval_batch_size, collate_fn=self.prompt_collator)

    def eval_dataloaders(self, split: str = "val", per_task: int | None = None) -> list[torch.utils.data.DataLoader]:
        """Every prompt set of ``split``: the synthetic tasks' and, for ``val``, the held-out real records'."""
        loaders = [self.eval_dataloader(split, per_task)]
        return loaders + [self.held_out_prompts(per_task)] if split == "val" and self.holdout else loaders

    def val_dataloader(self) -> list[torch.utils.data.DataLoader]:
        return self.eval_dataloaders("val")
