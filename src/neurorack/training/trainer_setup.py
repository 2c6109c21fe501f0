"""The Lightning pieces a run trains with: thread budget, progress bar, end-of-session summary, quiet logs."""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, RichProgressBar, Timer

from neurorack.training.run_folder import (
    Log,
)


def _threads_for(accelerator: str, devices: int, threads: int | None) -> int | None:
    """Torch CPU threads per process when training on the CPU: ``threads``, else all cores shared by the
    local processes; ``None`` on GPUs."""
    if accelerator not in ("auto", "cpu") or (accelerator == "auto" and torch.cuda.is_available()):
        return None
    if threads is not None:
        return max(1, threads)
    return max(1, (os.cpu_count() or 1) // max(1, devices))


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads (unchanged when ``None``), restoring the previous count."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _ProgressBar(RichProgressBar):
    """Rich progress bar (per-epoch ETA) whose title also shows the time left of the run's budget."""

    def _get_train_description(self, current_epoch: int) -> str:
        text = f"Epoch {current_epoch}"
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and max_epochs > 0:
            text += f"/{max_epochs - 1}"
        timer = next((c for c in self.trainer.callbacks if isinstance(c, Timer)), None)  # type: ignore[attr-defined]
        left = timer.time_remaining() if timer is not None else None
        if left is not None:
            text += f" ({max(0.0, left) / 60:.1f} min left)"
        return text


class _Summary(Callback):
    """One line per validation on stderr: epoch, step, losses, learning rate, speed, time."""

    def __init__(self, log: Log) -> None:
        self.emit = log
        self.start = time.monotonic()
        self.start_step = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.monotonic()
        self.start_step = trainer.global_step

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        elapsed = time.monotonic() - self.start
        rate = (trainer.global_step - self.start_step) / max(elapsed, 1e-9)
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else float("nan")
        parts = [f"epoch {trainer.current_epoch}", f"step {trainer.global_step}"]
        for key, label in (
            ("train/total_epoch", "train"),
            ("val/loss", "val"),
            ("val/mrstft", "mrstft"),
            ("val/control_centroid", "ctrl"),
        ):
            if key in m:
                parts.append(f"{label} {m[key]:.4f}")
        parts += [f"lr {lr:.2e}", f"{rate:.2f} steps/s", f"{elapsed / 60:.1f} min"]
        self.emit("  ".join(parts))


def _final_metrics(trainer: L.Trainer) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in trainer.callback_metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            out[key] = float(value)
    return out


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
    # a budget that ends mid-epoch stops before that epoch's validation: nothing to monitor then
    warnings.filterwarnings("ignore", message=".*could not find the monitored key in the returned metrics.*")
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")
    warnings.filterwarnings("ignore", message=".*`isinstance.treespec, LeafSpec.` is deprecated.*")
    warnings.filterwarnings("ignore", message=".*is an invalid version and will not be supported.*")
    # fader-ae steps its optimisers by hand; its periodic checkpoints hold the state after the step, as wanted
    warnings.filterwarnings("ignore", message=".*ModelCheckpoint with manual optimization and every_n_train_steps.*")
    # every epoch draws fresh random crops: resuming mid-epoch loses nothing a resumable loader would keep
    warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")
