"""Fixed sample sets as parquet files, written and read with Hugging Face `datasets`.

One row per sample in the minivlm sample schema: images (and each video's frames) as PNG bytes
in `datasets.Image` columns, so the files open in any parquet/`datasets` tool with previews;
`messages` and `meta` as JSON text, because their nested dicts have per-row shapes (a text part
has a "text" key, an image part none) that a fixed Arrow struct would pad with nulls.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import datasets
import torch.utils.data
from PIL import Image

from minivlm.resources import SYNTHETIC_DIR  # the shipped sets (data/README.md)


FEATURES = datasets.Features({
    "id": datasets.Value("string"),
    "task": datasets.Value("string"),
    "images": [datasets.Image()],
    "videos": [{"frames": [datasets.Image()], "fps": datasets.Value("float64")}],
    "messages": datasets.Value("string"),  # JSON list of chat messages
    "answer": datasets.Value("string"),
    "meta": datasets.Value("string"),  # JSON object
})


def png_bytes(image: Image.Image) -> dict:
    """An image as the {"bytes", "path"} value of a datasets.Image column, PNG-encoded (lossless)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def to_row(sample: dict) -> dict:
    """A sample as a row of FEATURES."""
    return {
        "id": sample["id"],
        "task": sample["task"],
        "images": [png_bytes(image) for image in sample["images"]],
        "videos": [{"frames": [png_bytes(f) for f in video["frames"]], "fps": float(video["fps"])}
                   for video in sample["videos"]],
        "messages": json.dumps(sample["messages"]),
        "answer": sample["answer"],
        "meta": json.dumps(sample["meta"]),
    }


def rgb(image: Image.Image) -> Image.Image:
    """The image decoded now (not lazily in a later worker) as RGB."""
    return image.convert("RGB")


def from_row(row: dict) -> dict:
    """A decoded row of FEATURES back in the sample schema (images as loaded RGB PIL images)."""
    return {
        "id": row["id"],
        "task": row["task"],
        "images": [rgb(image) for image in row["images"]],
        "videos": [{"frames": [rgb(f) for f in video["frames"]], "fps": video["fps"]} for video in row["videos"]],
        "messages": json.loads(row["messages"]),
        "answer": row["answer"],
        "meta": json.loads(row["meta"]),
    }


def write_parquet(samples: Iterable[dict], path: str | Path) -> int:
    """Write samples to one parquet file (parent folders created). Returns the number written."""
    rows = [to_row(sample) for sample in samples]
    if not rows:
        raise ValueError(f"no samples to write to {path}; pass at least one sample")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=FEATURES).to_parquet(str(path))
    return len(rows)


def load_parquet(path: str | Path) -> datasets.Dataset:
    """A parquet file written by write_parquet as a `datasets.Dataset` (rows decode with from_row)."""
    if not Path(path).is_file():
        raise ValueError(f"no parquet file at {path}; build the sets with `python -m minivlm.data.build`")
    return datasets.Dataset.from_parquet(str(path), features=FEATURES, keep_in_memory=True)


class ParquetSamples(torch.utils.data.Dataset):
    """A fixed set (e.g. data/synthetic/val.parquet) as a map-style torch Dataset of samples.

    Args:
        path: the parquet file.
        tasks: keep only these tasks (None keeps all).
        transform: applied to each sample (e.g. the processor), in the DataLoader worker.
    """

    def __init__(self, path: str | Path, tasks: Iterable[str] | None = None, transform=None) -> None:
        table = load_parquet(path)
        if tasks is not None:  # select, not filter: no progress bar, no cache files
            wanted = set(tasks)
            table = table.select([index for index, task in enumerate(table["task"]) if task in wanted])
        self.table, self.transform = table, transform

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int):
        sample = from_row(self.table[index])
        return self.transform(sample) if self.transform else sample


def synthetic_set(split: str, root: str | Path = SYNTHETIC_DIR, **kwargs) -> ParquetSamples:
    """A shipped synthetic set (`val` or `extrapolate`; `train` if built) as ParquetSamples(**kwargs)."""
    return ParquetSamples(Path(root) / f"{split}.parquet", **kwargs)


def load_baselines(root: str | Path = SYNTHETIC_DIR) -> dict:
    """The chance/blind baselines stored beside the shipped sets: {"splits": {split: {task: {...}}}, ...}."""
    path = Path(root) / "baselines.json"
    if not path.is_file():
        raise ValueError(f"no baselines at {path}; build the sets with `python -m minivlm.data.build`")
    return json.loads(path.read_text())
