"""Trains like ``python train.py`` and stops dead at one chosen moment, for a test to SIGKILL it there.

    python tests/sigkill_driver.py RUN_DIR PAUSE [OVERRIDES...]

``PAUSE`` is ``step:<k>`` (right after optimizer step ``k`` and the saves due before it),
``save:<k>`` (half-way through writing ``last.ckpt`` at step ``k``: half its bytes are in
``last.ckpt.partial``) or ``none``. There the driver prints ``PAUSED`` and blocks reading
stdin, so the kill lands exactly at that point, with no timing involved.
"""

from __future__ import annotations

import io
import sys

import torch
from train_helpers import compose_config

from minivlm.train.config_store import register_configs
from minivlm.train.module import VLMTrainingModule
from minivlm.train.run import train


def pause() -> None:
    print("PAUSED", flush=True)
    sys.stdin.readline()  # the test kills the process while it waits here
    raise SystemExit("resumed without being killed")


def main() -> None:
    run_dir, when, *overrides = sys.argv[1:]
    torch.set_num_threads(1)
    real_save = torch.save

    def save(checkpoint, handle, *args, **kwargs):  # checkpoints reach the disk through torch.save
        buffer = io.BytesIO()
        real_save(checkpoint, buffer, *args, **kwargs)
        data = buffer.getvalue()
        if when == f"save:{checkpoint['global_step']}" and handle.name.endswith("last.ckpt.partial"):
            handle.write(data[: len(data) // 2])
            handle.flush()
            pause()
        handle.write(data)

    batch_end = VLMTrainingModule.on_train_batch_end  # the module's own (it reads and logs each interval)

    def on_train_batch_end(module, *args):
        batch_end(module, *args)
        if when == f"step:{module.global_step}":
            pause()

    torch.save = save
    VLMTrainingModule.on_train_batch_end = on_train_batch_end
    register_configs()
    train(compose_config(*overrides), run_dir)


if __name__ == "__main__":
    main()
