"""An endless stream of fresh synthetic samples, sharded across DDP ranks and DataLoader workers.

Every consumer (rank r of R, worker w of W) is shard s = r * W + w of S = R * W and reads the
global stream positions s, s + S, s + 2S, ...; the shards partition the positions, so no sample
is produced twice across ranks and workers. Position i is task choose_task(mix, seed, i) and
sample i of that task's stream; samples are pure functions of their position, so a run can be
resumed by `start` without storing data. Rank and world size come from torch.distributed when
it is initialised (or are given explicitly), worker id and count from torch.utils.data.get_worker_info.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping

import torch.distributed
import torch.utils.data

from minivlm.data.tasks import TASKS, TaskConfig, choose_task, generate, resolve_mix


def shard_spec(rank: int | None = None, world_size: int | None = None, worker_shift: int = 0) -> tuple[int, int]:
    """(shard id, shard count) of the calling DataLoader worker on this rank.

    Args:
        rank, world_size: the DDP position; None reads torch.distributed (0 and 1 when not initialised).
        worker_shift: worker ``w`` reads the shard of worker ``(w + worker_shift) % W`` (a loader
            resumed mid-epoch starts with worker 0, which must continue the shard due next).
    """
    if rank is None or world_size is None:
        initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
        rank = torch.distributed.get_rank() if initialised else 0
        world_size = torch.distributed.get_world_size() if initialised else 1
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    worker = torch.utils.data.get_worker_info()
    worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
    return rank * num_workers + (worker_id + worker_shift) % num_workers, world_size * num_workers


class SyntheticStream(torch.utils.data.IterableDataset):
    """Fresh synthetic samples drawn from a task mix, forever or for `num_samples` positions.

    Args:
        mix: a name in minivlm.data.tasks.MIXES, or {task: weight}.
        split: which split's scenes to draw (training uses "train").
        seed: stream seed.
        config: the sample distribution; None takes the split's default.
        num_samples: total positions over all shards (None: endless).
        start: first global position (resume a run by passing the number already consumed).
        transform: applied to each sample inside the worker (e.g. the processor).
        rank, world_size: DDP position; None reads torch.distributed.
    """

    def __init__(self, mix: str | Mapping[str, float] = "default", split: str = "train", seed: int = 0,
                 config: TaskConfig | None = None, num_samples: int | None = None, start: int = 0,
                 transform: Callable[[dict], object] | None = None, rank: int | None = None,
                 world_size: int | None = None) -> None:
        super().__init__()
        self.probabilities = resolve_mix(mix, TASKS)
        self.split, self.seed, self.config = split, seed, config
        self.num_samples, self.start, self.transform = num_samples, start, transform
        self.rank, self.world_size = rank, world_size

    def positions(self) -> Iterator[int]:
        """The global stream positions this shard reads."""
        shard, num_shards = shard_spec(self.rank, self.world_size)
        if self.num_samples is None:
            return itertools.count(self.start + shard, num_shards)
        return iter(range(self.start + shard, self.start + self.num_samples, num_shards))

    def sample(self, position: int) -> dict:
        """The sample at global stream position `position` (untransformed; any process gets the same)."""
        task = choose_task(self.probabilities, self.seed, position)
        return generate(task, position, self.split, self.seed, self.config)

    def __iter__(self) -> Iterator:
        for position in self.positions():
            sample = self.sample(position)
            yield self.transform(sample) if self.transform else sample
