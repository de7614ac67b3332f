"""Real-data splits of ``python evaluate.py``: a run's held-out records, a local file or a hub dataset.

    python evaluate.py outputs/<run> --splits real                 # the records data.real.holdout kept out of training
    python evaluate.py outputs/<run> --splits val my_vqa.parquet   # a local .parquet/.jsonl/.json file or folder
    python evaluate.py outputs/<run> --splits lmms-lab/VQAv2::validation   # a hub dataset: name[:config[:split]]

The records are read by :class:`~minivlm.data.adapters.RealDataset` (any of its layouts) and
prompted through the run's own processor; the first ``per_task`` usable ones are answered,
greedily as every split, and records the adapter or the processor rejects are skipped and
counted as in training. Each answer gets ``exact`` (exact match after
:func:`minivlm.scoring.normalise`, what training's validation counts) and, where the record has
several reference answers, ``vqa`` (:mod:`minivlm.evaluation.vqa`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minivlm.data.adapters import RealDataset
from minivlm.evaluation.vqa import VQA_METRIC, vqa_accuracy
from minivlm.model import VLM
from minivlm.scoring import Answer, answer_prompts, normalise
from minivlm.train.run import Run

HELD_OUT = "real"  # the split name of a run's own held-out records
HUB_NAME = re.compile(r"^[\w.-]+/[\w.-]+(:[\w.-]*){0,2}$")  # owner/name[:config[:split]]
HUB_SPLIT = "validation"  # the hub split read when the name gives none


@dataclass(frozen=True)
class RealSplit:
    """Where a real split's records come from."""

    source: str  # a local path or a hub name; "" for the run's held-out records
    config_name: str | None = None
    split: str = "train"  # hub split (a local source has one)


def is_real_split(name: str) -> bool:
    """``real``, an existing local path, or a hub name ``owner/name[:config[:split]]``."""
    return name == HELD_OUT or Path(name).exists() or HUB_NAME.match(name) is not None


def parse_real_split(name: str) -> RealSplit:
    if name == HELD_OUT:
        return RealSplit("")
    if Path(name).exists():
        return RealSplit(name)
    source, config_name, split = [*name.split(":"), None, None][:3]
    return RealSplit(source, config_name or None, split or HUB_SPLIT)


def judge_real(prediction: str, answer: str, references: list[str]) -> dict[str, Any]:
    """``exact`` against the sample's answer, and ``vqa`` where the record has several references."""
    scores: dict[str, Any] = {"exact": normalise(prediction) == normalise(answer)}
    if len(references) >= 2:
        scores[VQA_METRIC] = vqa_accuracy(prediction, references)
    return scores


def real_answers(run: Run, model: VLM, name: str, per_task: int) -> list[tuple[Answer, dict[str, Any]]]:
    """``model``'s answers to the first ``per_task`` usable records of a real split, with their scores.

    Raises:
        ValueError: ``real`` for a run that held no records out, or a source without usable records.
    """
    data, split = run.datamodule, parse_real_split(name)

    def encode(sample: dict) -> tuple[dict, list[str]]:  # a prompt, and the references it is judged against
        return data.processor(sample, prompt_only=True), sample["meta"].get("answers", [])

    if not split.source:
        if not data.holdout:
            raise ValueError(f"run {run.folder.root} held no real records out of training (data.real.holdout is 0); "
                             "train with data=real data.real.holdout=N, or pass a data file or a hub dataset")
        records = data.real_dataset(held_out=True, transform=encode)
    else:
        records = RealDataset(split.source, split=split.split, config_name=split.config_name, transform=encode)
    pairs = list(itertools.islice(records, per_task))
    if not pairs:
        raise ValueError(f"{name}: no usable record to score (see the skipped-record report above)")
    size = data.eval_batch_size
    batches = [data.prompt_collator([prompt for prompt, _ in pairs[i:i + size]]) for i in range(0, len(pairs), size)]
    references = {prompt["id"]: answers for prompt, answers in pairs}
    answers = answer_prompts(model, batches, run.tokenizer, run.cfg.data.max_new_tokens)
    return [(a, judge_real(a.prediction, a.answer, references[a.sample_id])) for a in answers]
