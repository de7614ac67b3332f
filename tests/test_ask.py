"""python -m minivlm.ask: a question about a user's own image or video files gets the answer evaluation scores."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from train_helpers import compose_config, single_thread  # noqa: F401 (autouse fixture)

from minivlm.ask import main, read_video
from minivlm.data.storage import synthetic_set
from minivlm.evaluation.evaluate import Settings, evaluate_path
from minivlm.train.run import train

pytestmark = pytest.mark.slow  # trains


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory):
    """A run of every task, its first val prompt per task answered one at a time (batch 1, as ask does)."""
    run_dir = tmp_path_factory.mktemp("runs") / "mix"
    train(compose_config("data=mix", "steps=1", "eval_every=1"), run_dir)
    evaluate_path(run_dir, Settings(splits=("val",), per_task=1, num_workers=0, batch_size=1))
    answers = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    return run_dir, {answer["id"]: answer["prediction"] for answer in answers}


def question(sample: dict) -> str:
    return sample["messages"][0]["content"][-1]["text"]


def asked(capsys, *argv: str) -> str:
    """What the command prints: each answer and a newline (an untrained model's answers may be whitespace)."""
    main([str(arg) for arg in argv])
    return capsys.readouterr().out


def test_an_image_file_gets_the_answer_evaluation_gave(scored_run, tmp_path, capsys):
    run_dir, predictions = scored_run
    sample = synthetic_set("val", tasks=["grounding"])[0]
    sample["images"][0].save(tmp_path / "scene.png")
    for model in (run_dir / "export", run_dir / "checkpoints" / "last.ckpt", run_dir):
        assert asked(capsys, model, question(sample), "--image", tmp_path / "scene.png") == predictions[sample["id"]] + "\n"


def test_a_folder_of_frames_is_a_video(scored_run, tmp_path, capsys):
    run_dir, predictions = scored_run
    sample = synthetic_set("val", tasks=["needle"])[0]
    video = sample["videos"][0]
    (tmp_path / "frames").mkdir()
    for index, frame in enumerate(video["frames"]):
        frame.save(tmp_path / "frames" / f"{index:03d}.png")
    answer = asked(capsys, run_dir / "export", question(sample), "--video", tmp_path / "frames", "--fps", video["fps"])
    assert answer == predictions[sample["id"]] + "\n"


def test_sampling_is_seeded_and_top_1_is_greedy(scored_run, tmp_path, capsys):
    run_dir, predictions = scored_run
    sample = synthetic_set("val", tasks=["grounding"])[0]
    sample["images"][0].save(tmp_path / "scene.png")
    common = [run_dir / "export", question(sample), "--image", tmp_path / "scene.png"]
    assert asked(capsys, *common, "--temperature", 1, "--top-k", 1) == predictions[sample["id"]] + "\n"
    drawn = asked(capsys, *common, "--temperature", 5, "--samples", 4, "--seed", 3)
    assert asked(capsys, *common, "--temperature", 5, "--samples", 4, "--seed", 3) == drawn
    assert asked(capsys, *common, "--temperature", 5, "--samples", 4, "--seed", 4) != drawn


def test_animated_files_carry_their_frame_rate_and_other_videos_are_refused(tmp_path):
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "green", "blue")]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=500)
    video = read_video(tmp_path / "clip.gif")
    assert (len(video["frames"]), video["fps"]) == (3, 2.0)
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    with pytest.raises(ValueError, match="ffmpeg -i clip.mp4"):
        read_video(tmp_path / "clip.mp4")
    with pytest.raises(ValueError, match="give their frame rate with --fps"):
        read_video(tmp_path, fps=None)
