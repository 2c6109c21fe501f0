"""Exporting a training run as a playable model file: weights, anchors and the descriptor prior."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from neurorack.corpus import Corpus
from neurorack.corpus.manifest import Sound, sound_id
from neurorack.curves.descriptor_prior import DescriptorPrior
from neurorack.errors import NeurorackError
from neurorack.models.base import ImpactModel, TransferModel
from neurorack.training.checkpoints import best_checkpoint
from neurorack.training.module import load_checkpoint
from neurorack.training.run_folder import (
    MODEL_FILE,
    read_run_json,
)

#: Anchors stored in an exported model.
DEFAULT_ANCHORS = 8


def _anchor_name(sound: Any, taken: set[str]) -> str:
    stem = Path(sound.source).stem.strip() or sound.hash[:8]
    name = f"{sound.label}/{stem}" if sound.label else stem
    name = "".join(ch if ord(ch) >= 32 else "_" for ch in name).strip() or sound.hash[:8]
    if name in taken:
        name = f"{name}#{sound.hash[:8]}"
    taken.add(name)
    return name


def export_run(
    run: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    n_anchors: int = DEFAULT_ANCHORS,
    checkpoint: str | os.PathLike[str] | None = None,
) -> Path:
    """Export the best checkpoint of ``run`` as a playable model file, with anchors from the corpus train split.

    Args:
        run: a run folder.
        out: the model file (default ``run/model.safetensors``).
        n_anchors: reference sounds stored as anchors (:func:`neurorack.curves.anchors.select_anchors`).
        checkpoint: a specific checkpoint instead of the best one.

    Returns:
        the path written.

    Raises:
        NeurorackError: not a run, no checkpoint, unreadable corpus.
    """
    from neurorack.curves.anchors import select_anchors
    from neurorack.model_file import export_model

    run_path = Path(run)
    meta = read_run_json(run_path)
    ckpt = Path(checkpoint) if checkpoint is not None else best_checkpoint(run_path)
    model, hparams = load_checkpoint(ckpt)
    corpus = Corpus.open(meta["corpus"])
    by_split = {split: corpus.sounds(split) for split in ("train", "validation", "test")}
    sounds = by_split["train"] or corpus.sounds()
    taken: set[str] = set()
    named = [(_anchor_name(s, taken), s) for s in sounds]
    names, curves = select_anchors([(n, s.descriptors()) for n, s in named], n_anchors)
    by_name = {n: s for n, s in named}
    info = {
        n: {"label": by_name[n].label, "source": Path(by_name[n].source).name, "hash": by_name[n].hash} for n in names
    }
    ckpt_meta = torch.load(ckpt, map_location="cpu", weights_only=True)
    training = {
        "corpus": corpus.path.name,
        "sounds": {split: len(found) for split, found in by_split.items()},
        "checkpoint": ckpt.name,
        "global_step": int(ckpt_meta.get("global_step", 0)),
        "epoch": int(ckpt_meta.get("epoch", 0)),
        "lr": float(hparams.get("lr", 0.0)),
        "batch_size": meta.get("batch_size"),
        "frames": meta.get("frames"),
        "best_val_loss": meta.get("best_val_loss"),
        # what it learned from or was selected on: `eval` leaves these out of any corpus it measures
        "trained_on": sorted({sound_id(s.hash) for split in ("train", "validation") for s in by_split[split]}),
    }
    if isinstance(model, TransferModel):
        model.set_timbre(model.timbre_of([s.audio() for s in sounds]))
        training["timbre_sounds"] = len(sounds)
    prior = fit_prior(model, sounds)
    target = Path(out) if out is not None else run_path / MODEL_FILE
    return export_model(
        model,
        target,
        anchors=dict(zip(names, curves, strict=True)),
        anchor_info=info,
        training=training,
        descriptor_config=corpus.config,
        prior=prior,
    )


def fit_prior(model: ImpactModel, sounds: Sequence[Sound]) -> DescriptorPrior | None:
    """The descriptor prior of ``sounds`` for a model that takes the moved-knob hint, else None.

    Also None when the sounds have too few active frames for a mixture (a handful of very short sounds).
    """
    if not model.takes_focus:
        return None
    try:
        return DescriptorPrior.fit(s.descriptors() for s in sounds)
    except NeurorackError:
        return None
