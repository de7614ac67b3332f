"""One run per folder: a lock held while training runs, and no silent reuse of a folder with a run.

Two launches into one folder would interleave their checkpoints (Lightning names the second
writer's ``last-v1.ckpt``), their logs and their config; a new run started where a finished one
lies would overwrite it. So training first claims its folder (:func:`claim_run_folder`):

- it takes ``run.lock`` with a POSIX record lock (``fcntl.lockf``), which the operating system
  releases when the process ends, however it ends (``SIGKILL`` included), and which DataLoader
  workers forked from the process do not inherit, so none of them keeps it alive;
- a second process asking for a held lock fails at once, naming the holder;
- a fresh start (no checkpoint to resume) into a folder that holds checkpoints or a finished
  result is refused unless ``overwrite=true``, which deletes what training wrote there first.

Only the global rank 0 process claims: data-parallel ranks share the folder of their run.
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from minivlm.run_folder import RunFolder


@contextmanager
def claim_run_folder(folder: RunFolder, resuming: bool, overwrite: bool) -> Iterator[None]:
    """Hold ``folder``'s lock for the ``with`` block, after checking that this run may write there.

    Args:
        folder: the run folder.
        resuming: the run continues from a checkpoint of this folder (its files are the run's own).
        overwrite: a fresh start may delete a previous run's files (``overwrite=true``).

    Raises:
        ValueError: another process holds the folder, or it holds a run and neither ``resuming``
            nor ``overwrite`` says what to do with it.
    """
    folder.root.mkdir(parents=True, exist_ok=True)
    with open(folder.lock, "a+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # EACCES or EAGAIN: held by another process
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ValueError(f"run folder {folder.root} is in use by a training process ({holder}); wait for it "
                             "to end, or give this run another folder (name=...).") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        if not resuming and folder.holds_training():
            if not overwrite:
                state = "a finished run" if folder.final_eval.is_file() else "checkpoints of a run"
                raise ValueError(f"run folder {folder.root} already holds {state}; resume it with ckpt_path=last, "
                                 "start over with overwrite=true (deletes its checkpoints, logs and results), or "
                                 "give this run another folder (name=...).")
            folder.delete_training_files()
        folder.remove_partial_files()
        yield  # the lock goes with the file's closing, or with the process
