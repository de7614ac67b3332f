"""Real-data evaluation: VQA normalisation and soft accuracy, the vqa layout, a held-out slice, local files."""

from __future__ import annotations

import io
import json
import shutil

import datasets
import pytest
from PIL import Image
from test_evaluate import Oracle
from train_helpers import compose_config, logged, single_thread  # noqa: F401 (autouse fixture)

from minivlm.data.adapters import RealDataset
from minivlm.evaluation.evaluate import Settings, evaluate_path, main
from minivlm.evaluation.real import is_real_split, parse_real_split, real_answers
from minivlm.evaluation.vqa import normalise_vqa, vqa_accuracy
from minivlm.train.run import build_run, train

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}


def test_vqa_normalisation_follows_the_official_script():
    assert normalise_vqa("Two dogs.") == "2 dogs"  # number words, final stop
    assert normalise_vqa("The  Cat!") == "cat"  # articles, case, punctuation beside nothing
    assert normalise_vqa("black-white") == "black white"  # punctuation between words: a space
    assert normalise_vqa("1,000") == "1000" and normalise_vqa("6.5") == "6.5"  # numbers keep their digits


def test_vqa_accuracy_averages_over_the_annotators_left_out():
    assert vqa_accuracy("yes", ["yes"] * 10) == 1.0
    # 2 of 10 said "yes": leaving one of them out leaves 1 match (1/3), leaving another out 2 (2/3).
    assert vqa_accuracy("Yes.", ["yes"] * 2 + ["no"] * 8) == pytest.approx((2 * 1 / 3 + 8 * 2 / 3) / 10)
    assert vqa_accuracy("2", ["two"] * 3 + ["3"] * 7) == pytest.approx((3 * 2 / 3 + 7 * 1) / 10)
    assert vqa_accuracy("maybe", ["yes"] * 10) == 0.0
    with pytest.raises(ValueError, match="several reference answers"):
        vqa_accuracy("yes", ["yes"])


def png(rgb: tuple[int, int, int]) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 24), rgb).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


@pytest.fixture
def vqa_file(tmp_path) -> str:
    """Eight VQA-style records: the colour is the answer, 2 of the 10 annotators gave it."""
    rows = [{"image": png(rgb), "question": "Which colour fills the image?", "multiple_choice_answer": name,
             "answers": [name] * 2 + ["grey"] * 8} for name, rgb in list(COLOURS.items()) * 2]
    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                  "multiple_choice_answer": datasets.Value("string"),
                                  "answers": [datasets.Value("string")]})
    path = tmp_path / "colours.parquet"
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(path))
    return str(path)


def test_the_vqa_layout_keeps_every_reference_answer(vqa_file):
    samples = list(RealDataset(vqa_file))
    assert [s["answer"] for s in samples[:4]] == list(COLOURS)
    assert samples[0]["meta"]["answers"] == ["red"] * 2 + ["grey"] * 8 and samples[0]["meta"]["layout"] == "vqa"
    assert samples[0]["messages"][0]["content"][-1]["text"] == "Which colour fills the image?"


def test_split_names(vqa_file):
    assert is_real_split("real") and is_real_split(vqa_file) and is_real_split("lmms-lab/VQAv2::validation")
    assert not is_real_split("test")
    hub = parse_real_split("HuggingFaceM4/the_cauldron:vqav2:train")
    assert (hub.source, hub.config_name, hub.split) == ("HuggingFaceM4/the_cauldron", "vqav2", "train")
    assert parse_real_split("owner/data").split == "validation"


def real(source: str, *overrides: str):
    return compose_config("data=real", f"data.real.source={source}", "data.real.config_name=null", *overrides)


def test_held_out_records_are_validated_never_trained_on(vqa_file, tmp_path):
    run = build_run(real(vqa_file, "data.real.holdout=3"), tmp_path)
    data = run.datamodule
    trained = [name for batch in zip(range(8), data.train_dataloader()) for name in batch[1]["sample_ids"]]
    assert {int(name.split("/")[1]) for name in trained} == {3, 4, 5, 6, 7}  # rows 0..2 are held out
    validated = [name for loader in data.val_dataloader()[1:] for batch in loader for name in batch["sample_ids"]]
    assert validated == ["colours.parquet/0"]  # val_per_task=1 of the held-out records
    assert data.validated_tasks == [*data.val_tasks, "colours.parquet"]


def test_real_answers_score_exact_and_vqa_accuracy(vqa_file, tmp_path):
    run = build_run(real(vqa_file, "data.real.holdout=3"), tmp_path)
    oracle = Oracle(run.tokenizer, lambda answer: answer)
    held_out = real_answers(run, oracle, "real", 5)  # only 3 records are held out
    assert [a.sample_id for a, _ in held_out] == [f"colours.parquet/{row}" for row in range(3)]
    assert all(scores == {"exact": True, "vqa": pytest.approx(0.6)} for _, scores in held_out)
    wrong = real_answers(run, Oracle(run.tokenizer, lambda answer: "grey"), vqa_file, 8)  # the other annotators
    assert len(wrong) == 8 and all(s == {"exact": False, "vqa": 1.0} for _, s in wrong)


@pytest.mark.slow
def test_a_run_with_a_held_out_slice_is_scored_on_it_and_on_a_file(vqa_file, tmp_path):
    run_dir = tmp_path / "run"
    result = train(real(vqa_file, "data.real.holdout=2", "steps=2", "eval_every=2"), run_dir)
    assert list(logged(run_dir, "val/acc/colours.parquet")) == [1]  # validated during training
    (scored,) = evaluate_path(run_dir, Settings(splits=("real", vqa_file), num_workers=0))
    assert scored["scores"]["real"]["colours.parquet"]["exact"] == result["accuracy"]["colours.parquet"]
    assert scored["scores"]["real"]["colours.parquet"]["n"] == 1  # the run's final_eval_per_task
    answers = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    for answer in answers:
        references = [answer["answer"]] * 2 + ["grey"] * 8
        assert answer["vqa"] == vqa_accuracy(answer["prediction"], references)
    with pytest.raises(SystemExit, match="unknown split 'tset'"):
        main([str(run_dir), "--splits", "tset"])
    export = shutil.copytree(run_dir / "export", tmp_path / "elsewhere")  # carries the source and its held-out slice
    (exported,) = evaluate_path(export, Settings(splits=("real",), num_workers=0))
    assert exported["scores"]["real"] == {"colours.parquet": scored["scores"]["real"]["colours.parquet"]}


def test_a_run_without_a_held_out_slice_says_how_to_get_one(vqa_file, tmp_path):
    run = build_run(real(vqa_file), tmp_path)
    with pytest.raises(ValueError, match="data.real.holdout is 0"):
        real_answers(run, Oracle(run.tokenizer, lambda answer: answer), "real", 1)
