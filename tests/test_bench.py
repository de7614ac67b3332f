"""python -m minivlm.bench and python -m minivlm.profile run and print their tables (speed itself is not asserted)."""

from __future__ import annotations

import importlib.util

import pytest
from train_helpers import single_thread  # noqa: F401 (autouse fixture)

from minivlm import bench, profile
from minivlm.model import VLM, ModelConfig
from minivlm.resources import TOKENIZER_DIR
from minivlm.tokenizer import BPETokenizer

needs_transformers = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                                        reason='transformers not installed: pip install -e ".[bench]"')


@needs_transformers
def test_the_reference_is_built_at_minivlm_s_size():
    tokenizer = BPETokenizer.load(TOKENIZER_DIR)
    config = ModelConfig(size="tiny", vocab_size=tokenizer.vocab_size)
    ours = sum(p.numel() for p in VLM(config).parameters())
    theirs = sum(p.numel() for p in bench.reference_model(config, tokenizer).parameters())
    # Same widths, depths and vocabulary; minivlm adds QK-norm and the ViT's absolute position table.
    assert abs(ours - theirs) / ours < 0.05


@pytest.mark.slow
@needs_transformers
def test_bench_prints_both_models_and_their_ratio(capsys, tmp_path):
    bench.main(["--sizes", "tiny", "--batch-size", "2", "--steps", "1", "--rounds", "1", "--warmup", "0",
                "--out", str(tmp_path / "bench.md")])
    printed = capsys.readouterr().out
    assert "| tiny | minivlm |" in printed and "| tiny | transformers |" in printed
    assert printed.strip().endswith((tmp_path / "bench.md").read_text().strip().splitlines()[-1])
    assert "x |" in printed.split("| tiny | minivlm |")[1].splitlines()[0]  # the speed-up column


@pytest.mark.slow
def test_profile_splits_a_step_into_buckets(capsys):
    profile.main(["--batch-size", "2", "--repeats", "1", "--lightning-steps", "0"])
    printed = capsys.readouterr().out
    for bucket in ("matmuls", "attention", "norms (forward)", "ropes (forward)", "everything else", "data: one batch"):
        assert bucket in printed
