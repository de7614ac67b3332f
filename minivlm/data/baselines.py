"""Chance level and blind baseline of a synthetic task: the floors a model must beat.

Chance: the expected accuracy of guessing uniformly among the question's closed answer set
(mean of 1 / len(choices)). Blind: the best accuracy reachable without looking at the pixels,
in the sense of the "blind" text-only baselines of VQA analyses (Goyal et al., arXiv 1612.00837,
section 5): a model that sees the question text and the media layout (image sizes, frame count,
fps; a real model sees them through its token count and timestamps) answers the majority
answer of that (question, layout) in the training stream. The majority table is fitted on train
samples and scored on other samples of the split (an honest out-of-sample estimate, which does
not reward memorising rare questions); unseen keys fall back to the form's majority answer.
Uniform guessing is itself a blind strategy, so blind = max(chance, majority accuracy).
"""

from __future__ import annotations

from collections import Counter, defaultdict

from minivlm.data.tasks import TaskConfig, get_task, pose_problem, split_config
from minivlm.data.tasks.core import Problem


def media_layout(scene: dict) -> tuple:
    """What a model learns about the media without seeing pixels: sizes, image count, frames, fps."""
    return (scene["width"], scene["height"], len(scene.get("images", [None])), len(scene.get("frames", [])),
            scene.get("fps"))


def blind_key(problem: Problem) -> tuple:
    return problem.question, media_layout(problem.scene)


def majority_of(counts: dict) -> dict:
    return {key: counter.most_common(1)[0][0] for key, counter in counts.items()}


def fit_majority(problems: list[Problem]) -> tuple[dict, dict]:
    """Majority answer per blind key, and per form (the fallback for unseen keys)."""
    by_key: dict[tuple, Counter] = defaultdict(Counter)
    by_form: dict[str, Counter] = defaultdict(Counter)
    for problem in problems:
        by_key[blind_key(problem)][problem.answer] += 1
        by_form[problem.query["form"]][problem.answer] += 1
    return majority_of(by_key), majority_of(by_form)


def summarise(problems: list[Problem], by_key: dict, by_form: dict) -> dict:
    """Chance and blind accuracy of a list of problems under a fitted majority table."""
    chance = sum(1 / len(p.choices) for p in problems) / len(problems)
    hits = sum(by_key.get(blind_key(p), by_form.get(p.query["form"])) == p.answer for p in problems)
    majority = hits / len(problems)
    return {"chance": round(chance, 4), "blind": round(max(chance, majority), 4),
            "blind_majority": round(majority, 4), "samples": len(problems)}


def estimate_baselines(task: str, split: str, samples: int = 2000, seed: int = 0, config: TaskConfig | None = None,
                       train_config: TaskConfig | None = None) -> dict:
    """Chance and blind baselines of `task` on `split`, overall and per question form.

    Args:
        task: a registered task name.
        split: the split scored (its scenes come from `config`).
        samples: problems drawn to fit the majority table (train) and as many to score it (split).
        seed: stream seed; fitting uses train indices [samples, 2 * samples), scoring indices
            [0, samples) of the split, so the two never share a sample even when split is train.
        config: the scored distribution; None takes split_config(split).
        train_config: the fitting distribution; None takes split_config("train").
    Returns:
        {"chance", "blind", "blind_majority", "samples", "forms": {form: {same keys}}}.
    """
    family = get_task(task)
    fitted = [pose_problem(family, i, "train", seed, train_config or split_config("train"))
              for i in range(samples, 2 * samples)]
    scored = [pose_problem(family, i, split, seed, config or split_config(split)) for i in range(samples)]
    by_key, by_form = fit_majority(fitted)
    forms = sorted({p.query["form"] for p in scored})
    return {**summarise(scored, by_key, by_form),
            "forms": {form: summarise([p for p in scored if p.query["form"] == form], by_key, by_form)
                      for form in forms}}
