"""Config composition: bad values fail before training with clear messages; strategies and presets."""

from __future__ import annotations

import re

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import MissingConfigException
from lightning.pytorch.strategies import FSDPStrategy
from omegaconf import OmegaConf
from torch import nn
from train_helpers import CONFIGS, compose_config, single_thread  # noqa: F401 (autouse fixture)

from minivlm.model import transformer_block_classes
from minivlm.model.lm import DecoderLayer
from minivlm.model.vision import VisionBlock
from minivlm.train.run import build_run, build_strategy, train
from minivlm.train.settings import check_settings

BAD_VALUES = {
    "odd head_dim": (["model.lm_dim=66", "model.lm_heads=2"], "rope needs a positive even head_dim, got 33"),
    "sections option": (["+rope.options.sections=[8,12,12]"], r"rope option\(s\) \['sections'\] are not used"),
    "schedule length": (["rope.schedule=[mrope,circle,mrope]"], "explicit rope schedule has 3 entries but the LM has 2"),
    "unknown preset": (["rope.variant=mrope3d"], r"unknown rope preset\(s\) \['mrope3d'\]; valid presets"),
    "unknown task": (["data.mix={grounding: 1.0, colour: 1.0}"], r"names unknown tasks \['colour'\]; known tasks"),
    "unknown layout": (["data.layout=stack"], "unknown collate mode 'stack'"),
    "kv heads": (["model.lm_dim=128", "model.lm_heads=2", "model.lm_kv_heads=3"], "lm_kv_heads=3 must divide"),
    "eval_every 0": (["eval_every=0"], r"eval_every must be an integer >= 1, got 0; e.g. eval_every=1"),
    "steps text": (["steps=many"], r"steps must be an integer >= 1, got 'many'"),
    "checkpoint_every": (["checkpoint_every=-5"], r"checkpoint_every must be an integer >= 1"),
    "keep_every": (["keep_every=0"], r"keep_every must be an integer >= 1, got 0; e.g. keep_every=1"),
    "log_every_n_steps": (["trainer.log_every_n_steps=0"], r"trainer.log_every_n_steps must be an integer >= 1"),
    "lr text": (["optim.lr=fast"], r"optim.lr must be a finite number in \(0.0, inf\), got 'fast'; e.g. optim.lr=0.001"),
    "lr negative": (["optim.lr=-1e-3"], r"optim.lr must be a finite number"),
    "betas": (["optim.betas=[0.9]"], r"optim.betas must be two numbers in \[0, 1\)"),
    "min_lr_ratio": (["optim.min_lr_ratio=2"], r"optim.min_lr_ratio must be a finite number in \[0.0, 1.0\]"),
    "lr_scale negative": (["optim.lr_scale.merger=-1"], r"optim.lr_scale.merger must be a finite number in \[0.0, inf\)"),
    "lr_scale part": (["+optim.lr_scale.ln=0.1"], r"optim.lr_scale names \['ln'\], which the model does not have"),
    "accumulate": (["optim.accumulate=0"], r"optim.accumulate must be an integer >= 1"),
    "batch_size 0": (["data.batch_size=0"], r"data.batch_size must be an integer >= 1, got 0"),
    "num_workers": (["data.num_workers=-1"], r"data.num_workers must be an integer >= 0"),
    "fps inf": (["data.fps=inf"], r"data.fps must be a finite number in \(0.0, inf\), got inf"),
    "pixels": (["data.min_pixels=9000", "data.max_pixels=4096"], r"data.min_pixels=9000 is above data.max_pixels"),
    "divergence": (["divergence_factor=0.5"], r"divergence_factor must be a finite number in \(1.0, inf\) or null"),
    "weights_only": (["resume.weights_only=maybe"], r"resume.weights_only must be true or false"),
    "weights_only, no checkpoint": (["resume.weights_only=true"], r"resume.weights_only=true starts from ckpt_path's weights"),
    "train_user_text": (["data.train_user_text=1"], r"data.train_user_text must be true or false"),
    "data seed": (["data.seed=-1"], r"data.seed must be an integer >= 0, got -1"),
    "fp16": (["trainer.precision=16-mixed"], r"trainer.precision must be one of 32-true, bf16-mixed, got '16-mixed'"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_fail_before_training(case, tmp_path):
    overrides, message = BAD_VALUES[case]
    with pytest.raises(ValueError, match=message):
        train(compose_config(*overrides), tmp_path)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "logs").exists()


def test_data_seed_changes_the_batches_and_keeps_the_initial_weights(tmp_path):
    def start(*overrides: str) -> tuple[dict, torch.Tensor]:
        cfg = compose_config(*overrides)
        L.seed_everything(cfg.seed, workers=True, verbose=False)  # as train does
        run = build_run(cfg, tmp_path / "_".join(overrides))
        return run.module.model.state_dict(), next(iter(run.datamodule.train_dataloader()))["input_ids"]

    weights_0, batch_0 = start("seed=0")
    weights_2, batch_2 = start("seed=2")
    weights_mixed, batch_mixed = start("seed=0", "data.seed=2")
    assert all(torch.equal(weights_mixed[name], value) for name, value in weights_0.items())
    assert torch.equal(batch_mixed, batch_2) and not torch.equal(batch_mixed, batch_0)
    assert not torch.equal(weights_mixed["lm.head.weight"], weights_2["lm.head.weight"])


def test_every_setting_of_the_default_config_passes():
    check_settings(compose_config(tiny_model=False))
    check_settings(compose_config("data=real"))


def test_a_saved_config_without_the_newer_training_settings_still_builds_for_evaluation(tmp_path):
    saved = OmegaConf.create(OmegaConf.to_container(compose_config(), resolve=True))  # as config.yaml reads back
    for key in ("checkpoint_every", "keep_every", "divergence_factor", "resume", "overwrite"):
        saved.pop(key)
    assert build_run(saved, tmp_path).module.hparams.divergence_factor is None


def test_unknown_config_group_option_is_hydras_error():
    with pytest.raises(MissingConfigException, match="rope"):
        compose_config("rope=mrope3d")


def test_fsdp_wraps_every_transformer_block():
    strategy = build_strategy(compose_config("trainer=fsdp"))
    assert isinstance(strategy, FSDPStrategy) and strategy._state_dict_type == "full"
    policy = strategy.kwargs["auto_wrap_policy"]
    assert transformer_block_classes() == {DecoderLayer, VisionBlock}
    for block, wrapped in [(DecoderLayer, True), (VisionBlock, True), (nn.Linear, False)]:
        module = block.__new__(block)  # the policy looks only at the class
        assert policy(module=module, recurse=False, nonwrapped_numel=0) is wrapped


def test_trainer_presets():
    gpu, ddp, cpu = (compose_config(f"trainer={name}").trainer for name in ("gpu", "ddp", "cpu"))
    assert (gpu.accelerator, gpu.precision, gpu.strategy) == ("gpu", "bf16-mixed", "auto")
    assert (ddp.precision, ddp.strategy, ddp.devices) == ("bf16-mixed", "ddp", "auto")
    assert (cpu.accelerator, cpu.precision, cpu.max_steps) == ("cpu", "32-true", 1000)  # trainer.max_steps follows `steps`


@pytest.mark.slow
def test_compile_switch_compiles_the_model_in_place(tmp_path):
    run = build_run(compose_config("compile=true"), tmp_path)
    assert run.module.model._compiled_call_impl is not None  # nn.Module.compile: parameter names unchanged
    assert build_run(compose_config(), tmp_path).module.model._compiled_call_impl is None


def test_experiment_presets_override_the_defaults():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        quick = compose("train", overrides=["experiment=quick"], return_hydra_config=True)
        HydraConfig.instance().set_config(quick)  # for the ${hydra:...} in `name`
        assert (quick.steps, quick.eval_every, quick.data.batch_size, quick.trainer.max_steps) == (40, 20, 8, 40)
        assert quick.name == "quick-mrope_interleaved-seed0" and quick.model.size == "tiny" and quick.trainer.accelerator == "cpu"
        gpu = compose("train", overrides=["experiment=gpu_small", "rope=circle"], return_hydra_config=True)
        HydraConfig.instance().set_config(gpu)
        assert (gpu.model.size, gpu.trainer.precision, gpu.compile, gpu.optim.lr) == ("small", "bf16-mixed", True, 3e-4)
        assert gpu.name == "gpu_small-circle-seed0"


OWN_CONFIGS = [CONFIGS / "train.yaml", CONFIGS / "data" / "real.yaml",
               *sorted((CONFIGS / "trainer").glob("*.yaml")),
               *[p for p in sorted((CONFIGS / "experiment").glob("*.yaml")) if not p.stem.startswith("ablation_")]]


@pytest.mark.parametrize("path", OWN_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_field_is_commented(path):
    # A key with a value needs a comment; section headers (`optim:`) and list entries do not.
    uncommented = [line for line in path.read_text().splitlines()
                   if re.match(r"\s*[\w.]+:\s*[^\s#]", line) and "#" not in line]
    assert uncommented == []
