"""A run's checkpoints: written atomically, checked before resuming, the best one found for export."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from neurorack.errors import NeurorackError
from neurorack.training.run_folder import (
    BEST_PREFIX,
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
)


class _AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a kill never leaves a truncated ``last.ckpt``."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, target)


def check_checkpoint(path: Path) -> dict[str, Any]:
    """Load a training checkpoint safely (``weights_only``) to check it before resuming.

    Raises:
        NeurorackError: unreadable or not a checkpoint of a training run.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise NeurorackError(
            f"{path}: cannot read the checkpoint ({type(exc).__name__}); resume from another one by copying "
            f"a best-*.ckpt over it, or start a new run"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "loops" not in ckpt:
        raise NeurorackError(f"{path}: not a training checkpoint")
    return ckpt


class _LastCheckpoint(ModelCheckpoint):
    """The periodic resume checkpoint, under a state key that does not depend on its period."""

    @property
    def state_key(self) -> str:
        return "neurorack-last-checkpoint"


def checkpoint_callbacks(ckpt_dir: Path, checkpoint_every: int) -> tuple[ModelCheckpoint, _LastCheckpoint]:
    """A run's two checkpoint callbacks: the best by ``val_loss`` (``best-<epoch>-<step>.ckpt``) and the periodic
    resume point ``last.ckpt`` (every ``checkpoint_every`` steps, and on an exception)."""
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename=BEST_PREFIX + "-{epoch:04d}-{step:07d}",
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    last = _LastCheckpoint(
        dirpath=ckpt_dir,
        save_top_k=0,
        save_last=True,
        every_n_train_steps=max(1, checkpoint_every),
        save_on_exception=True,
    )
    return best, last


def best_checkpoint(run: Path) -> Path:
    """The checkpoint of a run with the lowest validation loss (``last.ckpt`` when none was validated).

    Raises:
        NeurorackError: the run has no checkpoint.
    """
    ckpt_dir = run / CHECKPOINT_DIR
    best = sorted(ckpt_dir.glob(f"{BEST_PREFIX}-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    last = ckpt_dir / LAST_CHECKPOINT
    if last.is_file():
        return last
    raise NeurorackError(f"{run}: no checkpoint to export (train first: neurorack train ... --out {run})")
