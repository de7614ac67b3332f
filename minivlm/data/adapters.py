"""Real vision-language datasets (Hugging Face hub or local files) as minivlm samples.

Three common layouts are read:
- `cauldron` (HuggingFaceM4/the_cauldron, Laurencon et al., arXiv 2405.02246): `images` (list)
  and `texts` = [{"user", "assistant"}, ...]; all images open the first user turn.
- `llava` (LLaVA, Liu et al., arXiv 2304.08485; also lmms-lab/LLaVA-OneVision-Data):
  `image` (one image, a path or none) and `conversations` = [{"from": "human"|"gpt", "value"}],
  where "<image>" in a human turn marks where the image goes (prepended when absent).
- `vqa` (VQAv2, Goyal et al., arXiv 1612.00837; lmms-lab/VQAv2 and its kin): `image`,
  `question` and the annotators' `answers` (strings or {"answer"} dicts), the sample's answer
  being `multiple_choice_answer` (or `answer`) when given, else the most common of them.
In every layout an `answers` column is kept as the sample's reference answers
(``meta["answers"]``), which evaluation scores with the VQA accuracy (minivlm/evaluation/vqa.py).
Sources: a hub name (e.g. "HuggingFaceM4/the_cauldron" with config_name="vqav2"), or a local
parquet/jsonl/json file, or a folder of them, or an imagefolder (images + metadata.jsonl).

Bad records policy (one rule everywhere): a record whose image is missing or does not decode,
or whose line or conversation is empty, malformed or does not end with an answer, is skipped and
counted, and so is one that the transform (the processor: a text longer than the context, a
special token in the text, an aspect ratio above 200...) rejects with a ``ValueError``, so every
record is validated where it is read. At the end of each pass over the data one warning (the
``minivlm.data.adapters`` logger: the console and a run's ``train.log``) reports the counts by
reason. Nothing raises mid-epoch for a bad record; a source where more than
``max_bad_fraction`` of the records are bad is an error naming the reasons, raised by
:meth:`RealDataset.probe` before training, or at the end of a pass.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import datasets
import torch.utils.data
from PIL import Image

from datasets.distributed import split_dataset_by_node

from minivlm.data.streaming import shard_spec

LAYOUTS = ("cauldron", "llava", "vqa")
IMAGE_PLACEHOLDER = "<image>"
LLAVA_ROLES = {"human": "user", "gpt": "assistant"}
PROBE_RECORDS = 100  # records RealDataset.probe reads before training
READ_BATCH = 64  # records read from the source at a time (Arrow batches are faster to read than single rows)
JSON_LINE = "json_line"  # the one column of a local .jsonl source: each line's text, parsed per record

log = logging.getLogger(__name__)


class BadRecord(Exception):
    """A record that cannot become a sample; the message is the reason counted in the warning.

    Args:
        reason: the kind of fault, counted (``missing image``, ``bad conversation``...).
        detail: the full explanation of one such record (quoted when too many records are bad).
    """

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail or reason


def open_source(source: str, split: str = "train", config_name: str | None = None) -> datasets.IterableDataset:
    """A local file/folder or a hub dataset as a streaming `datasets.IterableDataset`, media undecoded."""
    path = Path(source)
    if not (path.is_file() or path.is_dir()):
        return datasets.load_dataset(source, config_name, split=split, streaming=True).decode(False)
    files = sorted(str(p) for p in path.iterdir()) if path.is_dir() else [str(path)]
    parquet = [f for f in files if f.endswith(".parquet")]
    json_files = [f for f in files if f.endswith((".jsonl", ".json")) and not f.endswith("metadata.jsonl")]
    if not (parquet or json_files or path.is_dir()):
        raise ValueError(f"{source}: expected a .parquet, .jsonl or .json file, or a folder of them / of images")
    data_files = parquet or json_files
    if data_files and all(blank(Path(f)) for f in data_files):
        raise ValueError(f"{source}: the data files are empty (no records); point data.real.source at the data.")
    if data_files and all(f.endswith(".jsonl") for f in data_files):
        # Not datasets' json reader: it parses a block of lines at once, so one bad line deep in a
        # file stops the read mid-epoch. Each line is kept as text and parsed as its own record.
        return datasets.IterableDataset.from_generator(json_lines, gen_kwargs={"files": data_files})
    try:
        if data_files:
            kind = "parquet" if parquet else "json"
            stream = datasets.load_dataset(kind, data_files=data_files, split="train", streaming=True)
        else:
            stream = datasets.load_dataset("imagefolder", data_dir=str(path), split="train", streaming=True)
        # Images arrive as bytes/paths: a corrupt one becomes a BadRecord, not a crash.
        return stream.decode(False)
    except Exception as error:  # datasets reports unreadable files as ValueError, ArrowInvalid, StopIteration...
        raise ValueError(f"{source}: cannot be read as a dataset ({type(error).__name__}: {error}); check that "
                         "every file holds valid records in one format.") from None


def blank(file: Path) -> bool:
    """Whether a data file holds nothing but whitespace (read only when small)."""
    size = file.stat().st_size
    return size == 0 or (size < 4096 and not file.read_bytes().strip())


def json_lines(files: list[str]) -> Iterator[dict[str, str]]:
    """Every non-blank line of the JSON-lines ``files``, unparsed (:func:`parse_json_line` reads it)."""
    for file in files:
        with open(file, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.strip():
                    yield {JSON_LINE: line}


def parse_json_line(line: str, where: str) -> dict:
    """One JSON-lines record; raises BadRecord, naming ``where`` (dataset/row), when it is not a JSON object."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise BadRecord("bad json", f"{where}: {error}: {line[:80]!r}") from None
    if not isinstance(record, dict):
        raise BadRecord("bad json", f"{where}: a {type(record).__name__}, not an object: {line[:80]!r}")
    return record


def detect_layout(columns: list[str]) -> str:
    """The layout whose columns a dataset has."""
    if {"images", "texts"} <= set(columns):
        return "cauldron"
    if "conversations" in columns:
        return "llava"
    if {"image", "question"} <= set(columns) and {"answers", "answer", "multiple_choice_answer"} & set(columns):
        return "vqa"
    raise ValueError(f"columns {columns} match no known layout: need images+texts (cauldron), "
                     "image+conversations (llava) or image+question+answers (vqa); pass layout= explicitly if "
                     "the columns are renamed")


def decode_image(value: object, image_root: Path | None) -> Image.Image:
    """An image column value (PIL image, {"bytes", "path"} dict, or path) as a loaded RGB image."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        data, value = value.get("bytes"), value.get("path")
        if data:
            return open_image(io.BytesIO(data))
    if not value:
        raise BadRecord("missing image")
    path = Path(value)
    path = path if path.is_absolute() or image_root is None else image_root / path
    if not path.is_file():
        raise BadRecord("missing image")
    return open_image(path)


def open_image(file: io.BytesIO | Path) -> Image.Image:
    try:
        with Image.open(file) as image:
            return image.convert("RGB")  # convert forces the full decode, so truncation shows up here
    except Exception as error:  # Pillow's decoders raise OSError, SyntaxError, ValueError...: all mean corrupt
        raise BadRecord("corrupt image", f"{type(error).__name__}: {error}") from error


def cauldron_turns(record: dict) -> tuple[list, list[tuple[str, str]]]:
    """(raw images, [(user text, assistant text)]) of a cauldron record."""
    turns = [(t.get("user") or "", t.get("assistant") or "") for t in (record.get("texts") or [])]
    if not turns or not all(user.strip() and answer.strip() for user, answer in turns):
        raise BadRecord("empty conversation")
    return list(record.get("images") or []), turns


def cauldron_messages(images: int, turns: list[tuple[str, str]]) -> list[dict]:
    messages = []
    for k, (user, answer) in enumerate(turns):
        media = [{"type": "image"} for _ in range(images)] if k == 0 else []
        messages.append({"role": "user", "content": [*media, {"type": "text", "text": user.strip()}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer.strip()}]})
    return messages


def llava_messages(record: dict) -> tuple[list, list[dict]]:
    """(raw images, messages) of a llava record, images placed at their "<image>" markers."""
    image = record.get("image")
    images = image if isinstance(image, list) else ([image] if image is not None else [])
    conversation = record.get("conversations") or []
    if not conversation or any(not (turn.get("value") or "").strip() for turn in conversation):
        raise BadRecord("empty conversation")
    if any(turn.get("from") not in LLAVA_ROLES for turn in conversation):
        raise BadRecord("unknown role")
    if LLAVA_ROLES[conversation[-1]["from"]] != "assistant":
        raise BadRecord("conversation does not end with an answer")
    markers = sum(turn["value"].count(IMAGE_PLACEHOLDER) for turn in conversation)
    if markers not in (0, len(images)):
        raise BadRecord("image placeholders do not match images")
    messages = []
    for k, turn in enumerate(conversation):
        pieces = turn["value"].split(IMAGE_PLACEHOLDER)
        if markers == 0 and k == 0:  # images without a marker open the first turn
            pieces = ["" for _ in images] + pieces
        content = []
        for i, piece in enumerate(pieces):
            if i > 0:
                content.append({"type": "image"})
            if piece.strip():
                content.append({"type": "text", "text": piece.strip()})
        messages.append({"role": LLAVA_ROLES[turn["from"]], "content": content})
    return images, messages


def reference_answers(record: dict) -> list[str]:
    """The annotators' answers of a record (an ``answers`` column of strings or {"answer"} dicts); [] without."""
    answers = record.get("answers") or []
    return [str(a.get("answer", "")) if isinstance(a, dict) else str(a) for a in answers]


def vqa_messages(record: dict) -> tuple[list, list[dict]]:
    """(raw images, messages) of a vqa record: the image, the question, the answer."""
    question = (record.get("question") or "").strip()
    references = [answer for answer in reference_answers(record) if answer.strip()]
    answer = (record.get("multiple_choice_answer") or record.get("answer") or "").strip()
    answer = answer or (Counter(references).most_common(1)[0][0].strip() if references else "")
    if not question or not answer:
        raise BadRecord("empty conversation")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
                {"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    return [record.get("image")], messages


def record_to_sample(record: dict, layout: str, image_root: Path | None, name: str, row: int) -> dict:
    """One record as a sample; raises BadRecord (with the reason) when it cannot be one."""
    if layout == "cauldron":
        raw_images, turns = cauldron_turns(record)
        messages = cauldron_messages(len(raw_images), turns)
    elif layout == "llava":
        raw_images, messages = llava_messages(record)
    else:
        raw_images, messages = vqa_messages(record)
    images = [decode_image(value, image_root) for value in raw_images]
    answer = messages[-1]["content"][-1]["text"]
    meta = {"source": name, "row": row, "layout": layout}
    if reference_answers(record):
        meta["answers"] = reference_answers(record)
    return {"id": f"{name}/{row}", "task": name, "images": images, "videos": [], "messages": messages,
            "answer": answer, "meta": meta}


class RealDataset(torch.utils.data.IterableDataset):
    """A real VLM dataset streamed as samples, sharded over DDP ranks and DataLoader workers.

    Args:
        source: hub name or local path (see the module docstring).
        split: hub split (local sources have one split).
        layout: "cauldron", "llava" or "auto" (detected from the columns).
        image_root: folder that relative image paths (llava jsonl) are resolved against;
            None uses the source folder for local sources.
        config_name: hub config, e.g. "vqav2" for the_cauldron.
        name: task name of the samples (default: the source's last path component).
        transform: applied to each sample inside the worker (e.g. the processor); a sample it
            rejects with a ValueError is skipped and counted under the error's ``reason``.
        rank, world_size: DDP position; None reads torch.distributed.
        max_bad_fraction: more bad records than this share of a pass (or of the probe) is an
            error; None: no limit.
        records: the source's records ``[start, stop)`` read (stop None: to the end), before
            sharding, so that a held-out slice and the training records never overlap.
    """

    def __init__(self, source: str, split: str = "train", layout: str = "auto", image_root: str | None = None,
                 config_name: str | None = None, name: str | None = None,
                 transform: Callable[[dict], object] | None = None, rank: int | None = None,
                 world_size: int | None = None, max_bad_fraction: float | None = None,
                 records: tuple[int, int | None] = (0, None)) -> None:
        super().__init__()
        if layout not in (*LAYOUTS, "auto"):
            raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS} or 'auto'")
        local = Path(source)
        default_root = (local if local.is_dir() else local.parent) if local.exists() else None
        self.source, self.split, self.config_name, self.layout = source, split, config_name, layout
        self.image_root = Path(image_root) if image_root else default_root
        self.name = name or source.rstrip("/").split("/")[-1]
        self.transform, self.rank, self.world_size = transform, rank, world_size
        self.max_bad_fraction, self.records = max_bad_fraction, records
        self.worker_shift = 0  # see shard_spec; RealBatches sets it when it resumes
        self.skipped: Counter = Counter()  # reasons of the records skipped in the last pass (this process)
        self.examples: dict[str, str] = {}  # reason: the explanation of its first record

    def records_of_shard(self) -> Iterator[tuple[int, dict]]:
        """(source row, record) of this shard: the rows ``start + shard, start + shard + S, ...`` below ``stop``.

        The shard is this DataLoader worker of this rank, one of ``S`` = ranks x workers
        (:func:`~minivlm.data.streaming.shard_spec`); the ``S`` shards partition the records, so
        every record is read by exactly one of them. ``split_dataset_by_node`` keeps every
        ``S``-th record by example ("examples", not "shards": a source of one file splits as
        well, and each record keeps its source row, which names it and decides the held-out
        slice). The records are read with ``IterableDataset.iter``, which does not split the
        source over DataLoader workers again the way iterating it inside a worker would.
        """
        stream = open_source(self.source, self.split, self.config_name)
        shard, num_shards = shard_spec(self.rank, self.world_size, self.worker_shift)
        start, stop = self.records
        first = (start + shard) % num_shards  # rows of this shard are first, first + S, ...: start + shard is one
        if num_shards > 1:
            stream = split_dataset_by_node(stream, rank=first, world_size=num_shards, strategy="examples")
        index = 0
        for batch in stream.iter(batch_size=READ_BATCH):
            for values in zip(*batch.values()):
                row, index = first + index * num_shards, index + 1
                if stop is not None and row >= stop:
                    return
                if row >= start:
                    yield row, dict(zip(batch.keys(), values))

    def outcomes(self) -> Iterator[object | BadRecord]:
        """This shard's records in order, each as its (transformed) sample or the BadRecord rejecting it."""
        layout = self.layout
        for row, record in self.records_of_shard():
            if JSON_LINE in record:
                try:
                    record = parse_json_line(record[JSON_LINE], f"{self.name}/{row}")
                except BadRecord as bad:
                    yield bad
                    continue
            if layout == "auto":
                layout = detect_layout(list(record))
            try:
                sample = record_to_sample(record, layout, self.image_root, self.name, row)
                yield self.transform(sample) if self.transform else sample
            except BadRecord as bad:
                yield bad
            except ValueError as error:  # the transform rejects the sample (the processor's SampleError)
                yield BadRecord(getattr(error, "reason", "rejected by the processor"), str(error))
            except Exception as error:  # fields of unexpected types, anything else a record can break:
                # still one bad record (a systematic fault shows in the counts, and past
                # max_bad_fraction stops the run with the first record's error as its example).
                yield BadRecord("malformed record", f"{self.name}/{row}: {error!r}")

    def __iter__(self) -> Iterator:
        self.skipped, self.examples, seen = Counter(), {}, 0
        for outcome in self.outcomes():
            seen += 1
            if isinstance(outcome, BadRecord):
                self._count(outcome)
            else:
                yield outcome
        self._report(seen, f"{seen} records")

    def probe(self, records: int = PROBE_RECORDS) -> None:
        """Read the first ``records`` records now, to fail before training rather than during it.

        Raises:
            ValueError: none of them is usable, or more than ``max_bad_fraction`` are bad, naming the reasons.
        """
        self.skipped, self.examples, seen = Counter(), {}, 0
        for outcome in itertools.islice(self.outcomes(), records):
            seen += 1
            if isinstance(outcome, BadRecord):
                self._count(outcome)
        if seen == 0:
            raise ValueError(f"{self.source} holds no records; check the source, config_name and split.")
        if seen == sum(self.skipped.values()):
            raise ValueError(f"{self.source}: no usable sample in its first {seen} records ({self._counts()}; "
                             f"{self._examples()}); check the source, config_name and split.")
        self._report(seen, f"the first {seen} records")

    def _count(self, bad: BadRecord) -> None:
        self.skipped[bad.reason] += 1
        self.examples.setdefault(bad.reason, bad.detail)

    def _counts(self) -> str:
        return ", ".join(f"{reason}: {count}" for reason, count in sorted(self.skipped.items()))

    def _examples(self) -> str:
        return "first of each: " + "; ".join(f"{reason}: {self.examples[reason]}" for reason in sorted(self.skipped))

    def _report(self, seen: int, read: str) -> None:
        """One warning for the ``seen`` records just read; an error when too many of them were bad."""
        bad = sum(self.skipped.values())
        if not bad:
            return
        log.warning(f"{self.name}: skipped {bad} of {read} ({self._counts()})")
        if self.max_bad_fraction is not None and bad > self.max_bad_fraction * seen:
            raise ValueError(f"{self.source}: {bad} of {read} are bad, more than data.real.max_bad_fraction="
                             f"{self.max_bad_fraction} ({self._counts()}; {self._examples()}). Fix the records or "
                             "the processor settings (data.max_pixels, model.max_seq_len), or raise "
                             "data.real.max_bad_fraction.")
