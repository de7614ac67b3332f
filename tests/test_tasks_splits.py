"""Splits (disjoint scenes, extrapolation beyond training), mixes and chance/blind baselines."""

from __future__ import annotations

from collections import Counter

import pytest

from minivlm.data.baselines import estimate_baselines
from minivlm.data.tasks import MIXES, TASKS, choose_task, generate, pose_problem, resolve_mix, split_config
from minivlm.data.tasks.scene import is_held_out, scene_hash


@pytest.mark.parametrize("task", sorted(TASKS))
def test_val_and_extrapolate_scenes_never_occur_in_train(task):
    train = [generate(task, i, "train")["meta"] for i in range(60)]
    held = [generate(task, i, split)["meta"] for split in ("val", "extrapolate") for i in range(20)]
    assert not any(is_held_out(m["scene"]) for m in train)  # the partition holds for any train index
    assert all(is_held_out(m["scene"]) for m in held)
    assert {scene_hash(m["scene"]) for m in train}.isdisjoint(m["scene_hash"] for m in held)
    assert all(m["scene_hash"] == scene_hash(m["scene"]) for m in train + held)


def test_extrapolate_exceeds_every_training_range():
    train, extrapolate = split_config("train"), split_config("extrapolate")
    assert extrapolate.image_size[0] > train.image_size[1] and extrapolate.frames[0] > train.frames[1]
    assert extrapolate.grid == train.grid  # same answer vocabulary, more positions
    largest_train = max(generate("grounding", i, "train")["images"][0].width for i in range(40))
    longest_train = max(len(generate("needle", i, "train")["videos"][0]["frames"]) for i in range(40))
    assert largest_train <= train.image_size[1] < generate("grounding", 0, "extrapolate")["images"][0].width
    assert longest_train <= train.frames[1] < len(generate("needle", 0, "extrapolate")["videos"][0]["frames"])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_baselines_are_sane(task):
    result = estimate_baselines(task, "val", samples=150)
    forms = result.pop("forms")
    for numbers in [result, *forms.values()]:
        assert 0 < numbers["chance"] <= numbers["blind"] <= 1
        # Answers are drawn first and the question text carries no hint: a blind model stays near chance.
        assert numbers["blind_majority"] < numbers["chance"] + 0.15
    problems = [pose_problem(TASKS[task], i, "val") for i in range(150)]
    expected = sum(1 / len(p.choices) for p in problems) / len(problems)
    assert result["chance"] == pytest.approx(expected, abs=1e-4)


def test_chance_levels_of_closed_answer_sets():
    assert estimate_baselines("grounding", "val", samples=50)["chance"] == pytest.approx(1 / 9, abs=1e-4)
    assert estimate_baselines("order", "val", samples=50)["chance"] == pytest.approx(0.5)


def test_default_mix_draws_its_weights_and_is_deterministic():
    probabilities = resolve_mix("default", TASKS)
    drawn = Counter(choose_task(probabilities, 0, i) for i in range(3000))
    assert all(abs(drawn[t] / 3000 - p) < 0.03 for t, p in probabilities.items())
    first, again = ([choose_task(probabilities, 0, i) for i in range(50)] for _ in range(2))
    assert first == again
    assert sum(p for t, p in probabilities.items() if t in ("grounding", "attribute_at", "relation")) > 0.5
    assert all(set(mix) <= set(TASKS) for mix in MIXES.values())


def test_bad_mixes_are_rejected():
    for bad, message in (("nope", "unknown mix"), ({"nope": 1.0}, "unknown tasks"), ({"count": 0.0}, "> 0")):
        with pytest.raises(ValueError, match=message):
            resolve_mix(bad, TASKS)
