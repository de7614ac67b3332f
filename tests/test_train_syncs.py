"""The training step never reads a tensor back to the host: one read per logging interval, none in between.

On a GPU every such read (``.item()``, ``bool()``, ``int()``, ``float()``, ``.tolist()``...) makes
the host wait until the device has finished all queued work. On CPU nothing waits, but the same
reads happen in the same places, so counting them here counts the syncs a GPU run would make.
"""

from __future__ import annotations

from collections import Counter

import lightning as L
import pytest
import torch
from train_helpers import compose_config, single_thread  # noqa: F401 (autouse fixture)

from minivlm.train import run as run_module
from minivlm.train.module import VLMTrainingModule
from minivlm.train.run import train

READS = ("item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__")


class ReadCounter(L.Callback):
    """Counts tensor reads in training steps, by the optimizer step they belong to.

    A batch's reads are those from its ``on_train_batch_start`` to the end of the training module's
    ``on_train_batch_end``, the last hook of a batch: the forward, backward and optimizer step,
    and every callback's ``on_train_batch_end`` (where the logging interval's read happens).
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counting, self.step, self.reads = False, 0, Counter()
        for name in READS:
            original = getattr(torch.Tensor, name)

            def counted(tensor, *args, _original=original, **kwargs):
                if self.counting:
                    self.reads[self.step] += 1
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counted)

    def on_train_batch_start(self, trainer, module, batch, batch_index):
        self.counting, self.step = True, trainer.global_step + 1  # the optimizer step this batch belongs to

    def stop(self) -> None:
        self.counting = False


@pytest.mark.slow
@pytest.mark.parametrize("accumulate", [1, 2])
def test_one_read_per_logging_interval_and_none_in_between(tmp_path, monkeypatch, accumulate):
    counter = ReadCounter(monkeypatch)
    build_trainer = run_module.build_trainer

    def with_counter(cfg, run):
        trainer = build_trainer(cfg, run)
        trainer.callbacks.insert(0, counter)
        return trainer

    monkeypatch.setattr(run_module, "build_trainer", with_counter)
    batch_end = VLMTrainingModule.on_train_batch_end

    def then_stop(module, *args):
        batch_end(module, *args)
        counter.stop()

    monkeypatch.setattr(VLMTrainingModule, "on_train_batch_end", then_stop)
    # Workers make the batches (the collator's counting is CPU work in another process, by design).
    train(compose_config("steps=9", "eval_every=9", "trainer.log_every_n_steps=3", "data.num_workers=1",
                         "logging.progress_every=3", f"optim.accumulate={accumulate}"), tmp_path)
    assert dict(counter.reads) == {3: 1, 6: 1, 9: 1}, dict(counter.reads)
