"""Answering prompts and scoring the answers: exact match after light normalisation, per task.

The diagnostic tasks have short closed answers (a colour, a cell such as ``B3``, a number,
``yes``/``no``), so exact match is the honest score: the answer is right or it is not.
Normalisation only forgives case and surrounding whitespace or a final full stop.
:func:`answer_prompts` is the one loop that decodes a set of prompts: validation during training
(per batch, :func:`answer_batch`), the final evaluation of a run and ``python evaluate.py`` all
go through it, so they score the same answers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from lightning.pytorch.utilities import move_data_to_device

from minivlm.schema import Batch
from minivlm.tokenizer import IM_END, BPETokenizer


def normalise(answer: str) -> str:
    """Lower-case, strip whitespace and a trailing full stop."""
    return answer.strip().rstrip(".").strip().lower()


def decode_answers(tokenizer: BPETokenizer, generated: torch.Tensor) -> list[str]:
    """Generated ids ``(B, T)`` to answer strings, cut at the end-of-turn token."""
    end = tokenizer.token_id(IM_END)
    answers = []
    for row in generated.tolist():
        if end in row:
            row = row[: row.index(end)]
        answers.append(tokenizer.decode(row, skip_special_tokens=True))
    return answers


@torch.no_grad()
def answer_batch(model: torch.nn.Module, batch: Batch, tokenizer: BPETokenizer, max_new_tokens: int) -> list[str]:
    """Greedy answers of a prompt-only batch (KV-cached generation, stopping at ``<|im_end|>``)."""
    generated = model.generate(batch, max_new_tokens=max_new_tokens, eos_token_id=tokenizer.token_id(IM_END))
    return decode_answers(tokenizer, generated)


class Answer(NamedTuple):
    """One generated answer beside the expected one."""

    sample_id: str
    task: str
    prediction: str
    answer: str


def answer_prompts(model: torch.nn.Module, prompts: Iterable[Batch], tokenizer: BPETokenizer,
                   max_new_tokens: int) -> list[Answer]:
    """Greedy answers to every prompt batch (left-padded, prompt-only), on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    answers = []
    for batch in prompts:
        predictions = answer_batch(model, move_data_to_device(batch, device), tokenizer, max_new_tokens)
        answers += map(Answer, batch["sample_ids"], batch["tasks"], predictions, batch["answers"])
    return answers


@dataclass
class TaskScores:
    """Correct and total counts per task; add batches, read accuracies."""

    correct: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @classmethod
    def of(cls, answers: Iterable[Answer]) -> "TaskScores":
        scores = cls()
        answers = list(answers)
        scores.add([a.task for a in answers], [a.prediction for a in answers], [a.answer for a in answers])
        return scores

    def add(self, tasks: Sequence[str], predictions: Sequence[str], answers: Sequence[str]) -> list[bool]:
        hits = [normalise(p) == normalise(a) for p, a in zip(predictions, answers, strict=True)]
        for task, hit in zip(tasks, hits):
            self.correct[task] += int(hit)
            self.total[task] += 1
        return hits

    def accuracy(self) -> dict[str, float]:
        return {task: self.correct[task] / self.total[task] for task in sorted(self.total)}

    def as_tensor(self, tasks: Sequence[str]) -> torch.Tensor:
        """``(2, len(tasks))`` counts, for summing across ranks."""
        return torch.tensor([[self.correct[t] for t in tasks], [self.total[t] for t in tasks]], dtype=torch.float64)

    @classmethod
    def from_tensor(cls, tasks: Sequence[str], counts: torch.Tensor) -> "TaskScores":
        scores = cls()
        for task, correct, total in zip(tasks, counts[0].tolist(), counts[1].tolist()):
            if total:
                scores.correct[task], scores.total[task] = int(correct), int(total)
        return scores


def gap_closed(accuracy: float, chance: float) -> float:
    """The fraction of the way from chance to perfect (a task is "learned" once it closes half of it)."""
    return (accuracy - chance) / (1 - chance) if chance < 1 else float("nan")


def format_report(accuracy: dict[str, float], baselines: dict[str, dict[str, Any]], title: str) -> str:
    """A plain-text table: accuracy per task beside chance and the blind baseline."""
    lines = [title, f"{'task':<14}{'accuracy':>10}{'chance':>9}{'blind':>8}{'gap closed':>12}"]
    for task, acc in accuracy.items():
        chance = baselines.get(task, {}).get("chance", float("nan"))
        blind = baselines.get(task, {}).get("blind", float("nan"))
        lines.append(f"{task:<14}{acc:>10.3f}{chance:>9.3f}{blind:>8.3f}{gap_closed(acc, chance):>12.2f}")
    mean = sum(accuracy.values()) / max(1, len(accuracy))
    lines.append(f"{'mean':<14}{mean:>10.3f}")
    return "\n".join(lines)
