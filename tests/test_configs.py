"""Every shipped config composes and does what its header says; Python and the command line agree."""

from __future__ import annotations

import re
from dataclasses import asdict

import pytest
from omegaconf import OmegaConf
from train_helpers import CONFIGS, compose_config, finite, logged, single_thread  # noqa: F401 (autouse fixture)

from minivlm.data.tasks import MIXES, TASKS
from minivlm.model import SIZES, ModelConfig, RopeConfig
from minivlm.train.run import build_model_config, build_run, train


def stems(group: str) -> list[str]:
    return sorted(path.stem for path in (CONFIGS / group).glob("*.yaml"))


@pytest.mark.parametrize("size", SIZES)
def test_a_model_config_builds_the_dataclass_default_of_its_size(size, tokenizer):
    cfg = compose_config(f"model={size}", tiny_model=False)
    assert build_model_config(cfg, tokenizer) == ModelConfig(size=size, vocab_size=tokenizer.vocab_size)


@pytest.mark.parametrize("size", SIZES)
def test_a_model_config_header_states_its_size(size):
    header = (CONFIGS / "model" / f"{size}.yaml").read_text().splitlines()[0]
    lm_dim, lm_layers, vit_dim, vit_depth, patch = map(int, re.search(
        r"LM (\d+) x (\d+), ViT (\d+) x (\d+), .*?(\d+) px patches", header).groups())
    config = ModelConfig(size=size)
    assert (lm_dim, lm_layers, vit_dim, vit_depth, patch) == (
        config.lm_dim, config.lm_layers, config.vit_dim, config.vit_depth, config.patch_size)


def test_the_default_run_builds_the_default_model(tokenizer):
    assert build_model_config(compose_config(tiny_model=False), tokenizer) == ModelConfig(vocab_size=tokenizer.vocab_size)


@pytest.mark.parametrize("name", stems("rope"))
def test_a_rope_config_is_the_schedule_it_is_named_after(name):
    rope = RopeConfig(**OmegaConf.to_container(compose_config(f"rope={name}").rope))
    assert rope.label == name and rope.options == {}  # every design option at the design's default


def test_every_design_option_can_be_overridden_on_the_command_line(tokenizer):
    cfg = compose_config("rope=circle", "rope.options.alpha=0.25", "rope.options.radius=auto")
    variant = build_model_config(cfg, tokenizer).rope_schedule().layers[0]
    assert dict(variant.options) == {"alpha": 0.25, "radius": "auto", "temporal_stride": 1.0}


# data config -> (tasks it trains and validates, TaskConfig overrides, curriculum stages)
SINGLE_TASKS = {task: ([task], {}, 0) for task in TASKS if task in stems("data")}
DATA = {**SINGLE_TASKS, "mix": (MIXES["default"], {}, 0), "position": (MIXES["position"], {}, 0),
        "video": (MIXES["video"], {}, 0), "clips": (MIXES["clips"], {}, 0),
        "recipe": (["grounding"], {"objects": (1, 3)}, 2)}


def test_every_data_config_is_listed():
    assert sorted([*DATA, "real"]) == stems("data")  # real.yaml: tests/test_train_real_data.py


@pytest.mark.parametrize("name", sorted(DATA))
def test_a_data_config_trains_and_evaluates_what_it_says(name, tmp_path):
    tasks, overrides, stages = DATA[name]
    data = build_run(compose_config(f"data={name}"), tmp_path).datamodule
    assert sorted(data.stream.probabilities) == sorted(tasks) == sorted(data.val_tasks)
    assert data.task == overrides and len(data.curriculum.stages) == stages
    # Without overrides the run is evaluated on the shipped sets, with them on regenerated ones.
    assert (data.task_config("val") is None) == (not overrides)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DATA))
def test_one_step_for_every_data_config(name, tmp_path):
    result = train(compose_config(f"data={name}", "steps=1", "eval_every=1", "trainer.log_every_n_steps=1"), tmp_path)
    assert finite(logged(tmp_path, "train/loss").values()) and set(result["accuracy"]) == set(DATA[name][0])


def test_grounding_first_trains_grounding_alone_then_the_whole_mix(tmp_path):
    cfg = compose_config("experiment=grounding_first")
    data = build_run(cfg, tmp_path).datamodule
    stages = data.curriculum.stages
    assert [steps for steps, _ in stages] == [150, 150, 700] and cfg.steps == 4000
    assert [(list(stream.probabilities), stream.config.objects) for _, stream in stages] == [
        (["grounding"], (1, 1)), (["grounding"], (1, 2)), (["grounding"], (1, 3))]
    assert sorted(data.curriculum.final.probabilities) == sorted(MIXES["default"]) == sorted(data.val_tasks)


VIDEO_MIX = "{grounding: 0.2, attribute_at: 0.1, relation: 0.1, count: 0.1, compare: 0.1, needle: 0.2, order: 0.2}"
MEASURED = {  # the commands of results/learning/long/README.md, "The video tasks", that the presets stand for
    "video_stage": ["data=video", "resume.weights_only=true", "steps=2000", "optim.lr=3e-4", "eval_every=200",
                    "data.curriculum=[{steps: 300, task: {frames: [4, 4]}}, {steps: 300, task: {frames: [4, 8]}}]"],
    "mix_after_video": [f"data.mix={VIDEO_MIX}", "resume.weights_only=true", "optim.lr=3e-4", "steps=600",
                        "eval_every=100"],
}


@pytest.mark.parametrize("preset", sorted(MEASURED))
def test_the_video_recipe_presets_are_the_measured_runs(preset):
    weights = "ckpt_path=outputs/previous/checkpoints/last.ckpt"
    assert compose_config(f"experiment={preset}", weights) == compose_config(*MEASURED[preset], weights)


def test_experiment_budgets_are_the_measured_ones():
    quick, staggered = (compose_config(f"experiment={name}", tiny_model=False)
                        for name in ("quick", "ablation_staggered"))
    default = compose_config(tiny_model=False)
    assert (quick.steps, quick.data.max_pixels) == (40, default.data.max_pixels)  # quick: the same images, fewer steps
    assert staggered.steps == default.steps and staggered.data == default.data  # the recipe's budget and data
    assert asdict(ModelConfig(**OmegaConf.to_container(staggered.model))) == asdict(ModelConfig(size="tiny"))
