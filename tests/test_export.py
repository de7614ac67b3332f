"""The export folder: standalone (a copy anywhere reproduces the run's answers), standard files, no Lightning."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import jinja2
import pytest
import torch
from PIL import Image
from train_helpers import compose_config, single_thread  # noqa: F401 (autouse fixture)

from minivlm.evaluation.evaluate import Settings, evaluate_path
from minivlm.model import VLM
from minivlm.processing import Processor
from minivlm.processing.template import CHAT_TEMPLATE
from minivlm.run_folder import ExportFolder
from minivlm.train.export import read_checkpoint
from minivlm.train.run import train

# Settings the shipped defaults do not have, so an export that forgot them would pose other prompts.
RUN = ["data=count", "data.task={objects: [1, 2]}", "data.max_pixels=2304", "data.final_eval_per_task=3",
       "data.max_new_tokens=4", "steps=2", "eval_every=2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "count-run"
    train(compose_config(*RUN), run_dir)
    return run_dir


def predictions(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_an_export_copied_elsewhere_reproduces_the_runs_answers(trained, tmp_path):
    copy = shutil.copytree(trained / "export", tmp_path / "elsewhere" / "model")
    settings = Settings(num_workers=0)
    (from_run,) = evaluate_path(trained, settings)
    (from_copy,) = evaluate_path(copy, settings)
    assert predictions(copy) == predictions(trained)  # every answer, split by split
    assert from_copy["scores"] == from_run["scores"] and from_copy["step"] == from_run["step"] == 2
    assert {task: v["n"] for task, v in from_copy["scores"]["val"].items()} == {"count": 3}  # the run's prompt count
    final = json.loads((trained / "final_eval.json").read_text())
    assert {task: v["exact"] for task, v in from_copy["scores"]["val"].items()} == final["accuracy"]


@pytest.mark.slow
def test_the_export_holds_the_standard_files_and_a_model_card(trained):
    files = ExportFolder(trained / "export")
    assert json.loads(files.config.read_text())["model_type"] == "minivlm"
    assert json.loads(files.processor.read_text())["max_pixels"] == 2304
    evaluated = json.loads(files.evaluation.read_text())
    assert (evaluated["mix"], evaluated["task"]["objects"], evaluated["per_task"]) == ({"count": 1.0}, [1, 2], 3)
    assert json.loads(files.generation.read_text())["max_new_tokens"] == 4
    assert files.chat_template.read_text() == CHAT_TEMPLATE
    final = json.loads(files.final_eval.read_text())
    assert final == json.loads((trained / "final_eval.json").read_text())
    card = files.card.read_text()
    assert card.startswith("---\nlibrary_name: minivlm\n")
    assert f"| count | {final['accuracy']['count']:.3f} |" in card and "after 2 steps" in card
    assert "max_pixels: 2304" in card and "python -m minivlm.ask" in card


@pytest.mark.slow
def test_save_and_from_pretrained_round_trip_without_lightning(trained, tmp_path):
    model, _ = read_checkpoint(trained / "checkpoints" / "last.ckpt")
    model.save_pretrained(tmp_path / "saved")
    loaded = VLM.from_pretrained(tmp_path / "saved")
    assert loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    script = ("import sys; from minivlm.model import VLM; from minivlm.processing import Processor; "
              f"VLM.from_pretrained({str(trained / 'export')!r}); "
              f"print(Processor.from_pretrained({str(trained / 'export')!r}).settings()['max_pixels']); "
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'lightning', 'pytorch_lightning', 'hydra'}))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["2304", "[]"]


def test_from_pretrained_refuses_other_folders(tmp_path):
    with pytest.raises(ValueError, match="holds no exported model"):
        VLM.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no processor_config.json"):
        Processor.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="is a 'llama' model"):
        VLM.from_pretrained(tmp_path)


def test_the_jinja_chat_template_writes_what_the_processor_encodes(processor):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Where is the red circle?"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "B2"}]}]
    sample = {"id": "s", "images": [Image.new("RGB", (48, 32))], "messages": messages}
    template = jinja2.Environment().from_string(CHAT_TEMPLATE)
    for prompt_only in (False, True):
        encoded = processor.tokenizer.decode(processor(sample, prompt_only=prompt_only)["input_ids"].tolist())
        rendered = template.render(messages=messages[:-1] if prompt_only else messages,
                                   add_generation_prompt=prompt_only)
        assert re.sub(r"(<\|image_pad\|>)+", "<|image_pad|>", encoded) == rendered  # one pad per image
