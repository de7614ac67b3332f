"""Parquet storage: round trip of every task, filters, errors, and the shipped sets."""

from __future__ import annotations

import numpy as np
import pytest

from minivlm.data.build import main as build
from minivlm.data.storage import SYNTHETIC_DIR, ParquetSamples, load_baselines, synthetic_set, write_parquet
from minivlm.data.tasks import SPLITS, TASKS, generate


def pictures(sample: dict) -> list:
    return sample["images"] + [f for v in sample["videos"] for f in v["frames"]]


def assert_same_sample(a: dict, b: dict) -> None:
    assert {k: a[k] for k in ("id", "task", "messages", "answer", "meta")} == \
        {k: b[k] for k in ("id", "task", "messages", "answer", "meta")}
    assert [v["fps"] for v in a["videos"]] == [v["fps"] for v in b["videos"]]
    for x, y in zip(pictures(a), pictures(b), strict=True):
        assert y.mode == "RGB" and np.array_equal(np.asarray(x), np.asarray(y))


def test_parquet_round_trip_of_every_task(tmp_path):
    samples = [generate(task, i, "val") for task in TASKS for i in range(2)]
    assert write_parquet(samples, tmp_path / "sets" / "val.parquet") == len(samples)
    loaded = ParquetSamples(tmp_path / "sets" / "val.parquet")
    assert len(loaded) == len(samples)
    for i, sample in enumerate(samples):
        assert_same_sample(sample, loaded[i])
    videos_only = ParquetSamples(tmp_path / "sets" / "val.parquet", tasks=["needle", "order"],
                                 transform=lambda s: s["answer"])
    assert [videos_only[i] for i in range(len(videos_only))] == [s["answer"] for s in samples
                                                                 if s["task"] in ("needle", "order")]


def test_storage_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="minivlm.data.build"):
        ParquetSamples(tmp_path / "missing.parquet")
    with pytest.raises(ValueError, match="at least one sample"):
        write_parquet([], tmp_path / "empty.parquet")


def test_shipped_sets_match_the_generator_and_baselines():
    baselines = load_baselines()
    assert set(baselines["splits"]) == set(SPLITS)
    for split in ("val", "extrapolate"):
        shipped = synthetic_set(split)
        assert set(shipped.table["task"]) == set(TASKS)
        first = shipped[0]
        meta = first["meta"]
        assert_same_sample(first, generate(first["task"], meta["index"], split, meta["seed"]))
        for task in TASKS:
            numbers = baselines["splits"][split][task]
            assert 0 < numbers["chance"] <= numbers["blind"] <= 1
    assert sum(p.stat().st_size for p in SYNTHETIC_DIR.glob("*.parquet")) < 8e6  # shipped sets stay small


@pytest.mark.slow
def test_build_command_writes_sets_baselines_card_and_tokenizer(tmp_path):
    build(["--out", str(tmp_path), "--samples", "2", "--train", "1", "--baseline-samples", "20",
           "--tokenizer", str(tmp_path / "tokenizer")])
    assert len(ParquetSamples(tmp_path / "extrapolate.parquet")) == 2 * len(TASKS)
    assert len(ParquetSamples(tmp_path / "train.parquet")) == len(TASKS)
    assert set(load_baselines(tmp_path)["splits"]) == set(SPLITS)
    assert "--samples 2" in (tmp_path / "CARD.md").read_text()
    assert (tmp_path / "tokenizer" / "tokenizer.json").is_file()
