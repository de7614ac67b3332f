"""`data=real`: training on a real dataset (a tiny local the_cauldron-style parquet made here)."""

from __future__ import annotations

import io
import itertools
import warnings

import datasets
import pytest
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the per-pass report of the skipped record
        return [batch["sample_ids"] for batch in itertools.islice(loader, count)]


def test_real_batches_cycle_through_the_records_and_resume(cauldron, tmp_path):
    run = build_run(real(cauldron), tmp_path)
    rows = [[f"colours.parquet/{row}" for row in pair] for pair in ([0, 1], [2, 4], [0, 1], [2, 4], [0, 1])]
    assert batch_ids(run.datamodule.train_dataloader(), 5) == rows
    data = run.datamodule
    resumed = RealBatches(data.real_dataset(), data.processor, data.train_collator, batch_size=2, start_batch=3)
    assert batch_ids(resumed, 2) == rows[3:]


def test_real_data_refuses_several_workers(cauldron, tmp_path):
    # datasets splits the files over DataLoader workers and RealDataset splits the rows again.
    with pytest.raises(ValueError, match="num_workers=2 would skip records"):
        build_run(real(cauldron, "data.num_workers=2"), tmp_path)


@pytest.mark.slow
def test_training_on_real_data(cauldron, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = train(real(cauldron, "steps=2", "eval_every=2", "trainer.log_every_n_steps=1"), tmp_path)
    losses = logged(tmp_path, "train/loss")
    assert list(losses) == [0, 1] and finite(losses.values())
    assert result["steps"] == 2 and (tmp_path / "export" / "model.safetensors").is_file()


def test_real_source_without_usable_records_fails_before_training(tmp_path):
    broken = write_cauldron(tmp_path / "broken.parquet", [{"images": [None], "texts": [{"user": "Q", "assistant": "A"}]}])
    with pytest.warns(UserWarning, match="skipped 1 of 1 records"), pytest.raises(ValueError, match="no usable sample"):
        train(real(broken, "steps=1"), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()
