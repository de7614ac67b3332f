"""Training throughput from Python counts: tokens/s, samples/s, FLOP/s and MFU, read once per interval.

A GPU runs ahead of the Python that launches its work, so a wall-clock time is only true right
after the host has waited for the device. The training step never waits (no host syncs, see
:mod:`minivlm.train.module`); the one wait of a logging interval is the read of its metrics, and
the time taken right after it closes the interval. Everything counted in between is a Python
number the collator made on CPU (real tokens, samples) or a FLOP count from shapes
(:mod:`minivlm.train.flops`), so counting costs the device nothing. Validation time is paused
out: rates are of training alone. The run's totals (tokens, FLOPs, training seconds) travel in its
checkpoints, so a resumed run goes on counting where it stopped.

MFU (model FLOPs utilisation, PaLM, Chowdhery et al., arXiv 2204.02311, appendix B) divides the
achieved FLOP/s by the device's peak for the run's precision, as Lightning's table of devices
knows it (``get_available_flops``; None on CPUs, whose peak it does not know).
"""

from __future__ import annotations

from time import perf_counter

import torch
from lightning.fabric.utilities.throughput import get_available_flops


class Throughput:
    """Counts since the last interval, turned into rates when the interval closes.

    Args:
        device: the training device (for its peak FLOP/s).
        dtype: the compute dtype of the run's precision.
        world_size: ranks (every rank counts its own batches; rates are summed over ranks as if
            each rank ran the same work, which data-parallel ranks do).
    """

    def __init__(self, device: torch.device, dtype: torch.dtype, world_size: int = 1) -> None:
        peak = get_available_flops(device, dtype) if device.type == "cuda" else None
        self.peak = peak * world_size if peak else None
        self.world_size = world_size
        self.tokens = self.samples = self.flops = 0  # this interval's, on this rank
        self.total_tokens = self.total_flops = 0
        self.seconds = 0.0  # training time of the whole run so far (train/time)
        self.started: float | None = None  # start of the running interval; None: paused
        self.interval = 0.0  # training seconds of the running interval before its last pause

    def start(self) -> None:
        self.started = perf_counter()

    def pause(self) -> None:
        """Stop the clock (validation starts); :meth:`start` resumes it."""
        if self.started is not None:
            self.interval += perf_counter() - self.started
            self.started = None

    def add(self, tokens: int, samples: int, flops: int) -> None:
        """One batch's counts (Python numbers)."""
        self.tokens, self.samples, self.flops = self.tokens + tokens, self.samples + samples, self.flops + flops

    def state_dict(self) -> dict[str, float]:
        """The run's totals over all ranks, for a checkpoint (a resume may use another number of ranks)."""
        world = self.world_size
        return {"tokens": self.total_tokens * world, "flops": self.total_flops * world, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, float]) -> None:
        """Go on from a checkpoint's totals (:meth:`state_dict`)."""
        self.total_tokens, self.total_flops = state["tokens"] / self.world_size, state["flops"] / self.world_size
        self.seconds = state["seconds"]

    def close(self) -> dict[str, float]:
        """Rates of the interval that ends now; call right after the host waited for the device."""
        self.pause()
        seconds, world = max(self.interval, 1e-9), self.world_size
        self.total_tokens, self.total_flops = self.total_tokens + self.tokens, self.total_flops + self.flops
        self.seconds += self.interval
        rates = {
            "train/tokens_per_sec": self.tokens * world / seconds,  # real (non-padding) tokens
            "train/samples_per_sec": self.samples * world / seconds,
            "train/flops_per_sec": self.flops * world / seconds,
            "train/tokens": self.total_tokens * world,
            "train/flops": self.total_flops * world,
            "train/time": self.seconds,
        }
        if self.peak:
            rates["train/mfu"] = rates["train/flops_per_sec"] / self.peak
        self.tokens = self.samples = self.flops = 0
        self.interval = 0.0
        self.start()
        return rates
