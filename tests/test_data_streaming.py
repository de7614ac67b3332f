"""Streaming: shards over (rank, worker) partition the stream; samples are fresh and reproducible."""

from __future__ import annotations

import itertools

import pytest
import torch.utils.data

from minivlm.data.streaming import SyntheticStream, shard_spec


def indices(stream) -> list[int]:
    return [sample["meta"]["index"] for sample in stream]


def resumed_sample_meta(position: int) -> dict:
    """What the shard reading `position` yields (rank 1 of 3 reads 31, 34, ...)."""
    stream = SyntheticStream(start=position - 1, rank=1, world_size=3)
    return next(iter(stream))["meta"]


def test_ranks_and_workers_partition_the_stream():
    per_rank = []
    for rank in range(2):
        stream = SyntheticStream(num_samples=24, rank=rank, world_size=2, transform=lambda s: s)
        loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
        per_rank.append(indices(loader))
    assert set(per_rank[0]).isdisjoint(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == list(range(24))
    assert len(set(per_rank[0])) == len(per_rank[0]) == 12


def test_endless_stream_shards_are_disjoint_and_resumable():
    heads = [indices(itertools.islice(SyntheticStream(rank=r, world_size=3), 10)) for r in range(3)]
    assert len(set(itertools.chain(*heads))) == 30
    assert heads[1][:3] == [1, 4, 7]
    resumed = indices(itertools.islice(SyntheticStream(start=30, rank=1, world_size=3), 2))
    assert resumed == [31, 34]
    assert SyntheticStream(start=30).sample(34)["meta"] == resumed_sample_meta(34)
    first = next(iter(SyntheticStream(mix={"relation": 1.0}, seed=5)))
    again = next(iter(SyntheticStream(mix={"relation": 1.0}, seed=5)))
    assert first["task"] == "relation" and first["meta"] == again["meta"]


def test_shard_spec_checks_rank():
    assert shard_spec(1, 4) == (1, 4)
    assert shard_spec() == (0, 1)  # no torch.distributed, no worker
    with pytest.raises(ValueError, match="outside world_size"):
        shard_spec(4, 4)
