"""Checkpoint files: written atomically beside their destination, last.ckpt at every interval."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from train_helpers import compose_config, single_thread  # noqa: F401 (autouse fixture)

from minivlm.run_folder import atomic_file, write_atomically
from minivlm.train.checkpointing import AtomicCheckpointIO
from minivlm.train.export import read_checkpoint
from minivlm.train.run import train


def test_an_interrupted_write_leaves_the_previous_file_whole(tmp_path):
    path = tmp_path / "result.json"
    write_atomically(path, "old")
    with pytest.raises(KeyboardInterrupt), atomic_file(path) as handle:
        handle.write(b"half of the ne")
        raise KeyboardInterrupt  # any interruption before the rename
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_the_temporary_file_is_in_the_destination_folder(tmp_path, monkeypatch):
    renames = []
    replace = os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: (renames.append((Path(source), Path(target))),
                                                               replace(source, target)))
    monkeypatch.setenv("TMPDIR", "/dev/shm")  # another filesystem: a rename from there would be a copy
    AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "checkpoints" / "last.ckpt")
    (source, target), = renames
    assert source.parent == target.parent == tmp_path / "checkpoints" and source.name == "last.ckpt.partial"


@pytest.mark.slow
def test_last_checkpoint_at_every_interval_and_after_every_validation(tmp_path, monkeypatch):
    saves = []
    save = AtomicCheckpointIO.save_checkpoint

    def recording(self, checkpoint, path, storage_options=None):
        saves.append((Path(path).name, checkpoint["global_step"], checkpoint))
        save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", recording)
    train(compose_config("steps=7", "eval_every=3", "checkpoint_every=2"), tmp_path)
    assert [step for name, step, _ in saves if name == "last.ckpt"] == [2, 3, 4, 6, 7]  # 6: once, after validating
    assert [name for name, step, _ in saves if step in (3, 6)][0] == "best-3.ckpt"  # best first, then last
    after_validation = next(ckpt for name, step, ckpt in saves if name == "last.ckpt" and step == 3)
    best_state = next(state for key, state in after_validation["callbacks"].items() if "ModelCheckpoint" in key)
    assert Path(best_state["best_model_path"]).name == "best-3.ckpt"  # it knows the validation it followed


@pytest.mark.slow
def test_keep_every_keeps_the_weights_of_those_steps(tmp_path):
    train(compose_config("steps=4", "eval_every=4", "keep_every=2"), tmp_path)
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.glob("step-*.ckpt")) == ["step-2.ckpt", "step-4.ckpt"]
    (at_2, step_2), (at_4, step_4), (last, last_step) = (read_checkpoint(folder / name) for name in
                                                         ("step-2.ckpt", "step-4.ckpt", "last.ckpt"))
    assert (step_2, step_4, last_step) == (2, 4, 4)
    last_weights = last.state_dict()
    assert all(torch.equal(value, last_weights[key]) for key, value in at_4.state_dict().items())
    assert not all(torch.equal(value, last_weights[key]) for key, value in at_2.state_dict().items())
    assert "optimizer_states" not in torch.load(folder / "step-2.ckpt", weights_only=True)  # weights only
