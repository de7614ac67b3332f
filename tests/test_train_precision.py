"""bf16 autocast, the precision of every GPU preset, trains on CPU like fp32 and clips its gradients."""

from __future__ import annotations

import pytest
import torch
from train_helpers import compose_config, logged, single_thread  # noqa: F401 (autouse fixture)

from minivlm.train.run import train

pytestmark = pytest.mark.slow  # trains

RUN = ("steps=3", "eval_every=3", "trainer.log_every_n_steps=1", "optim.warmup_steps=1", "data.mix=position")


def test_bf16_autocast_trains_like_fp32_with_the_fused_adamw_and_clipping(tmp_path, monkeypatch):
    clip = torch.nn.utils.clip_grad_norm_
    norms = []

    def recording_clip(parameters, max_norm, *args, **kwargs):
        norms.append(max_norm)
        return clip(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    train(compose_config(*RUN, "trainer.precision=bf16-mixed", "optim.grad_clip=0.5"), tmp_path / "bf16")
    assert norms == [0.5, 0.5, 0.5]  # every optimizer step clipped, at optim.grad_clip
    train(compose_config(*RUN, "optim.grad_clip=0.5"), tmp_path / "fp32")

    bf16, fp32 = (logged(tmp_path / run, "train/loss") for run in ("bf16", "fp32"))
    assert list(bf16) == [0, 1, 2]
    # bf16 keeps 8 bits of mantissa: its logits differ from fp32's by about 1e-2 relative, and so do the losses.
    assert bf16 == pytest.approx(fp32, rel=3e-2)
    weights = [torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
               for run in ("bf16", "fp32")]
    assert all(value.dtype == torch.float32 for value in weights[0].values())  # autocast: the weights stay fp32
    assert weights[0].keys() == weights[1].keys()
