"""`data=real`: training on a real dataset (a tiny local the_cauldron-style parquet made here)."""

from __future__ import annotations

import io
import itertools
import logging

import datasets
import pytest
import torch.utils.data
from PIL import Image
from train_helpers import compose_config, finite, logged, single_thread  # noqa: F401 (autouse fixture)

from minivlm.train.datamodule import RealBatches
from minivlm.train.run import build_run, train

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}


def png(rgb: tuple[int, int, int]) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 24), rgb).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def write_cauldron(path, rows: list[dict]) -> str:
    features = datasets.Features({"images": [datasets.Image()],
                                  "texts": [{"user": datasets.Value("string"), "assistant": datasets.Value("string")}]})
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))
    return str(path)


@pytest.fixture
def cauldron(tmp_path) -> str:
    """Five records, the fourth without an image (skipped): usable rows 0, 1, 2, 4."""
    rows = [{"images": [png(rgb)], "texts": [{"user": "Which colour fills the image?", "assistant": name}]}
            for name, rgb in COLOURS.items()]
    rows.insert(3, {"images": [None], "texts": [{"user": "Which colour?", "assistant": "none"}]})
    return write_cauldron(tmp_path / "colours.parquet", rows)


def real(source: str, *overrides: str):
    return compose_config("data=real", f"data.real.source={source}", "data.real.config_name=null", *overrides)


def batch_ids(loader, count: int) -> list[list[str]]:
    return [batch["sample_ids"] for batch in itertools.islice(loader, count)]


def test_real_batches_cycle_through_the_records_and_resume(cauldron, tmp_path):
    run = build_run(real(cauldron), tmp_path)
    rows = [[f"colours.parquet/{row}" for row in pair] for pair in ([0, 1], [2, 4], [0, 1], [2, 4], [0, 1])]
    assert batch_ids(run.datamodule.train_dataloader(), 5) == rows
    data = run.datamodule
    resumed = RealBatches(data.real_dataset(), data.train_collator, batch_size=2, start_batch=3)
    assert batch_ids(resumed, 2) == rows[3:]


@pytest.fixture
def sixteen_records(tmp_path) -> str:
    """Sixteen usable records in one parquet file (the source splits by record, not by file)."""
    rows = [{"images": [png(rgb)], "texts": [{"user": f"Which colour fills image {i}?", "assistant": name}]}
            for i, (name, rgb) in enumerate(itertools.islice(itertools.cycle(COLOURS.items()), 16))]
    return write_cauldron(tmp_path / "sixteen.parquet", rows)


def rank_batches(data, rank: int, start_batch: int = 0, workers: int = 2) -> list[list[str]]:
    """The first 4 - start_batch batches (2 samples each) of ``rank`` of 2, made by ``workers`` DataLoader workers."""
    batches = RealBatches(data.real_dataset(rank=rank, world_size=2), data.train_collator, 2, start_batch)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, num_workers=workers)
    return batch_ids(loader, 4 - start_batch)


@pytest.mark.slow
def test_two_workers_on_two_ranks_see_every_record_once_per_epoch_and_resume(sixteen_records, tmp_path):
    data = build_run(real(sixteen_records), tmp_path).datamodule
    epoch = {rank: rank_batches(data, rank) for rank in (0, 1)}  # 2 ranks x 4 batches x 2 samples = 16 records
    seen = [sample for rank in (0, 1) for batch in epoch[rank] for sample in batch]
    assert sorted(seen) == sorted(f"sixteen.parquet/{row}" for row in range(16))
    # Rank 0's batches alternate between its two workers (shards 0 and 1 of 4: rows 0, 4, 8... and 1, 5, 9...).
    assert epoch[0][:2] == [["sixteen.parquet/0", "sixteen.parquet/4"], ["sixteen.parquet/1", "sixteen.parquet/5"]]
    # Resumed at batch 1, both ranks continue with exactly the batches of the uninterrupted epoch.
    assert all(rank_batches(data, rank, start_batch=1) == epoch[rank][1:] for rank in (0, 1))


def faulty_rows(good: int) -> list[dict]:
    """``good`` usable records, then one of each fault the adapter or the processor rejects."""
    rows = [{"images": [png(rgb)], "texts": [{"user": "Which colour fills the image?", "assistant": name}]}
            for name, rgb in itertools.islice(itertools.cycle(COLOURS.items()), good)]
    wide = io.BytesIO()
    Image.new("RGB", (402, 2)).save(wide, format="PNG")  # aspect ratio 201
    return rows + [
        {"images": [None], "texts": [{"user": "Q?", "assistant": "A"}]},                    # missing image
        {"images": [{"bytes": b"GIF89a", "path": None}], "texts": [{"user": "Q?", "assistant": "A"}]},  # corrupt
        {"images": [png((1, 2, 3))], "texts": [{"user": "word " * 2100, "assistant": "A"}]},  # > max_seq_len
        {"images": [png((1, 2, 3))], "texts": [{"user": "<|im_end|> Q?", "assistant": "A"}]},  # special token
        {"images": [{"bytes": wide.getvalue(), "path": None}], "texts": [{"user": "Q?", "assistant": "A"}]},
        {"images": [png((1, 2, 3))], "texts": []},                                           # no answer
    ]


@pytest.mark.slow
def test_a_few_bad_records_are_skipped_and_the_run_trains_to_the_end(tmp_path, caplog):
    source = write_cauldron(tmp_path / "faulty.parquet", faulty_rows(good=8))
    with caplog.at_level(logging.WARNING, logger="minivlm.data.adapters"):
        result = train(real(source, "steps=8", "eval_every=4", "trainer.log_every_n_steps=1"), tmp_path / "run")
    losses = logged(tmp_path / "run", "train/loss")
    assert list(losses) == list(range(8)) and finite(losses.values())  # 8 steps of 2 = two passes over 8 records
    assert result["steps"] == 8 and (tmp_path / "run" / "export" / "model.safetensors").is_file()
    report = ("faulty.parquet: skipped 6 of 14 records (bad conversation: 1, bad image: 1, corrupt image: 1, "
              "empty conversation: 1, longer than max_seq_len: 1, missing image: 1)")
    assert [r.getMessage() for r in caplog.records].count(report) >= 2  # once per pass (and once in the probe)


def test_a_source_of_mostly_bad_records_fails_before_training_naming_the_reasons(tmp_path):
    source = write_cauldron(tmp_path / "faulty.parquet", faulty_rows(good=2))
    with pytest.raises(ValueError, match=r"6 of the first 8 records are bad, more than data.real.max_bad_fraction=0.5 "
                                         r"\(bad conversation: 1, bad image: 1, .*aspect ratio 201"):
        train(real(source, "steps=1"), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_real_source_without_usable_records_fails_before_training(tmp_path):
    broken = write_cauldron(tmp_path / "broken.parquet", [{"images": [None], "texts": [{"user": "Q", "assistant": "A"}]}])
    with pytest.raises(ValueError, match=r"no usable sample in its first 1 records \(missing image: 1"):
        train(real(broken, "steps=1"), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
