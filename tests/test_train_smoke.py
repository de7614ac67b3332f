"""End-to-end training runs on tiny configs: every rope config, the model sizes, run files and export."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from train_helpers import CONFIGS, compose_config, finite, logged, single_thread  # noqa: F401 (autouse fixture)

from minivlm.data.tasks import MIXES
from minivlm.model import SIZES, VLM, ModelConfig
from minivlm.model.config import size_fields
from minivlm.tokenizer import BPETokenizer
from minivlm.train.export import read_checkpoint
from minivlm.train.run import build_run, train

ROPE_CONFIGS = sorted(path.stem for path in (CONFIGS / "rope").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("rope", ROPE_CONFIGS)
def test_one_step_for_every_rope_config(rope, tmp_path):
    cfg = compose_config(f"rope={rope}", "steps=1", "eval_every=1", "trainer.log_every_n_steps=1")
    result = train(cfg, tmp_path)
    losses = logged(tmp_path, "train/loss")
    assert list(losses) == [0] and finite(losses.values()) and 0 < losses[0] < 20
    assert set(result["accuracy"]) == set(MIXES[cfg.data.mix]) and result["steps"] == 1
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 1


@pytest.mark.slow
def test_run_folder_is_complete_and_the_export_reproduces_the_checkpoint(tmp_path, tokenizer):
    cfg = compose_config("rope=circle_alternate", "data=mix", "steps=3", "eval_every=2")
    result = train(cfg, tmp_path)

    final = json.loads((tmp_path / "final_eval.json").read_text())
    assert final["steps"] == 3 and set(final["accuracy"]) == set(MIXES["default"])
    assert all(0.0 <= acc <= 1.0 for acc in final["accuracy"].values())
    assert final["val_acc"] == pytest.approx(sum(final["accuracy"].values()) / len(final["accuracy"]))
    assert result["val_acc"] == final["val_acc"]

    folder = tmp_path / "checkpoints"
    assert OmegaConf.to_container(OmegaConf.load(folder / "config.yaml")) == OmegaConf.to_container(cfg, resolve=True)
    saved = BPETokenizer.load(folder)
    assert saved.vocab_size == tokenizer.vocab_size
    assert saved.encode("Where is the red square?") == tokenizer.encode("Where is the red square?")
    assert torch.load(folder / "last.ckpt", weights_only=False)["global_step"] == 3
    assert (folder / "best-2.ckpt").is_file()  # the one validation mid-run picked it

    trained, _ = read_checkpoint(folder / "last.ckpt")
    exported, exported_tokenizer = VLM.from_pretrained(tmp_path / "export"), BPETokenizer.load(tmp_path / "export")
    assert exported.config == trained.config and exported_tokenizer.vocab_size == tokenizer.vocab_size
    L.seed_everything(cfg.seed)
    run = build_run(cfg, tmp_path)  # the run as it started: same seed, same initial weights
    batch = next(iter(run.datamodule.train_dataloader()))
    with torch.no_grad():
        expected = trained(batch, return_logits=True).logits
        assert torch.equal(exported(batch, return_logits=True).logits, expected)
        assert not torch.allclose(run.module.model(batch, return_logits=True).logits, expected)  # it trained


@pytest.mark.slow
def test_small_model_forward_backward(tmp_path):
    # A full run would spend its time writing 0.4 GB checkpoints; one step shows the size trains.
    run = build_run(compose_config("model=small", tiny_model=False), tmp_path)
    assert all(getattr(run.model_config, key) == value for key, value in size_fields(*SIZES["small"]).items())
    batch = next(iter(run.datamodule.train_dataloader()))
    loss = run.module.model(batch).loss
    loss.backward()
    grads = [p.grad for p in run.module.model.parameters()]
    assert torch.isfinite(loss) and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert loss.item() == pytest.approx(torch.log(torch.tensor(float(run.model_config.vocab_size))).item(), rel=0.2)


def test_base_model_config_builds(tokenizer):
    cfg = compose_config("model=base", tiny_model=False)
    fields = {**OmegaConf.to_container(cfg.model), "rope": OmegaConf.to_container(cfg.rope)}
    config = ModelConfig(**fields, vocab_size=tokenizer.vocab_size)  # validates sizes and the rope schedule
    assert all(getattr(config, key) == value for key, value in size_fields(*SIZES["base"]).items())
    assert config.rope_schedule().describe() == " ".join(["mrope_interleaved"] * SIZES["base"][1])
