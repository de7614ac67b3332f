"""SIGKILL at random points, saves included: every resume continues from the latest checkpoint
interval and the run ends with exactly the weights of an uninterrupted run."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys

import pytest
import torch
from train_helpers import REPO, compose_config, metric_rows, single_thread  # noqa: F401 (autouse fixture)

from minivlm.train.run import train

pytestmark = pytest.mark.slow  # launches training processes

STEPS, EVAL_EVERY, CHECKPOINT_EVERY = 12, 4, 3
RUN = (f"steps={STEPS}", f"eval_every={EVAL_EVERY}", f"checkpoint_every={CHECKPOINT_EVERY}",
       "trainer.log_every_n_steps=1", "optim.warmup_steps=2")
VALIDATED = set(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
SAVED = set(range(CHECKPOINT_EVERY, STEPS + 1, CHECKPOINT_EVERY)) | VALIDATED | {STEPS}  # steps last.ckpt holds


def kill_points(seed: int, count: int, saves: int) -> list[str]:
    """``count`` pause points at increasing steps (so each launch gets past its resume point),
    ``saves`` of them inside a write of last.ckpt."""
    rng = random.Random(seed)
    saves = rng.sample(sorted(SAVED), saves)
    others = rng.sample([k for k in range(1, STEPS) if k not in saves], count - len(saves))
    points = {k: f"save:{k}" for k in saves} | {k: f"step:{k}" for k in others}
    return [points[k] for k in sorted(points)]


def expected_last_step(point: str) -> int | None:
    """The step ``last.ckpt`` holds after a kill at ``point``: the latest completed save before it.

    At a validated step, last.ckpt is written after the validation, so after ``step:<k>``'s pause."""
    kind, k = point.split(":")
    k = int(k)
    done = [s for s in SAVED if s < k or (s == k and kind == "step" and k not in VALIDATED)]
    return max(done, default=None)


def launch(run_dir, pause: str, stderr) -> subprocess.Popen:
    command = [sys.executable, "tests/sigkill_driver.py", str(run_dir), pause, *RUN, "ckpt_path=last"]
    return subprocess.Popen(command, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)


def paused(process: subprocess.Popen) -> bool:
    """Read the driver's output until it pauses (True) or ends (False)."""
    return any(line == "PAUSED\n" for line in process.stdout)


def last_step(run_dir) -> int | None:
    last = run_dir / "checkpoints" / "last.ckpt"
    return torch.load(last, weights_only=False)["global_step"] if last.exists() else None


def test_sigkilled_runs_resume_from_the_latest_interval_to_the_uninterrupted_weights(tmp_path):
    whole = tmp_path / "whole"
    train(compose_config(*RUN), whole)
    reference = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=False)
    losses = {int(row["step"]): row["train/loss"] for row in metric_rows(whole) if row.get("train/loss")}

    run_dir, log = tmp_path / "killed", (tmp_path / "stderr.txt").open("w")
    points = kill_points(seed=int(os.environ.get("SIGKILL_SEED", "0")), count=5, saves=3)
    for point in points:
        process = launch(run_dir, point, log)
        assert paused(process), (tmp_path / "stderr.txt").read_text()[-3000:]
        process.kill()  # SIGKILL
        assert process.wait() == -signal.SIGKILL
        assert last_step(run_dir) == expected_last_step(point), point  # loads: never left half written
        if point.startswith("save"):
            assert (run_dir / "checkpoints" / "last.ckpt.partial").exists(), "the kill landed inside a save"

    resumed_from = last_step(run_dir)
    final = launch(run_dir, "none", log)
    final.communicate()
    assert final.returncode == 0, (tmp_path / "stderr.txt").read_text()[-3000:]

    state = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["global_step"] == STEPS
    assert all(torch.equal(state["state_dict"][name], value) for name, value in reference["state_dict"].items())
    # Every step any launch logged reproduced the uninterrupted loss bit for bit; the last launch
    # started right after the checkpoint it resumed.
    rows = [row for row in metric_rows(run_dir) if row.get("train/loss")]
    assert all(row["train/loss"] == losses[int(row["step"])] for row in rows)
    newest = max((run_dir / "logs").glob("version_*"), key=lambda path: int(path.name.removeprefix("version_")))
    last_launch = [row for row in csv.DictReader((newest / "metrics.csv").open()) if row.get("train/loss")]
    assert int(last_launch[0]["step"]) == (resumed_from or 0)
    assert not list((run_dir / "checkpoints").glob("*.partial"))  # removed when the folder was claimed
