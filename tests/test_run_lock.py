"""One run per folder: a folder in use is locked, and a folder holding a run is not reused unless asked."""

from __future__ import annotations

import subprocess
import sys

import pytest
from train_helpers import REPO, compose_config, single_thread  # noqa: F401 (autouse fixture)

from minivlm.run_folder import RunFolder
from minivlm.train.run import train

pytestmark = pytest.mark.slow  # trains (and launches a process)

RUN = ("steps=1", "eval_every=1")
HOLD = """
import sys
from minivlm.run_folder import RunFolder
from minivlm.train.run_lock import claim_run_folder
with claim_run_folder(RunFolder(sys.argv[1]), resuming=False, overwrite=False):
    print("HELD", flush=True)
    sys.stdin.readline()
"""


def test_a_folder_in_use_refuses_a_second_run_until_its_holder_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline() == "HELD\n"
    with pytest.raises(ValueError, match=rf"run folder {tmp_path} is in use by a training process \(pid {holder.pid} on"):
        train(compose_config(*RUN), tmp_path)
    assert not (tmp_path / "checkpoints").exists()
    holder.kill()  # SIGKILL: the operating system releases the lock
    holder.wait()
    assert train(compose_config(*RUN), tmp_path)["steps"] == 1


def test_a_finished_run_is_not_overwritten_unless_asked(tmp_path):
    first = train(compose_config(*RUN), tmp_path)
    with pytest.raises(ValueError, match="already holds a finished run; resume it with ckpt_path=last, start over with "
                                         "overwrite=true"):
        train(compose_config(*RUN), tmp_path)
    assert train(compose_config(*RUN, "ckpt_path=last"), tmp_path) == first  # resumed at its end: scored again
    (tmp_path / "evaluation.json").write_text("{}")  # what evaluate.py adds
    train(compose_config("steps=2", "eval_every=2", "overwrite=true"), tmp_path)
    folder = RunFolder(tmp_path)
    assert folder.load_final_eval()["steps"] == 2 and not folder.evaluation_json.exists()
    assert sorted(path.name for path in folder.logs.iterdir()) == ["version_0"]  # the old run's logs went too


def test_a_fresh_start_into_an_unfinished_run_is_refused(tmp_path):
    train(compose_config("steps=4", "eval_every=2", "trainer.max_steps=2"), tmp_path)
    RunFolder(tmp_path).final_eval.unlink()  # as a run killed after step 2 leaves its folder
    with pytest.raises(ValueError, match="already holds checkpoints of a run"):
        train(compose_config("steps=4", "eval_every=2"), tmp_path)
    assert train(compose_config("steps=4", "eval_every=2", "ckpt_path=last"), tmp_path)["steps"] == 4
