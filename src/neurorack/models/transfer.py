"""Timbre and attribute transfer of audio files through any transfer model (an autoencoder, SPEC §5).

``transfer(model, audio)``: the input's descriptor curves are measured (:mod:`neurorack.descriptors`),
optionally edited (:func:`neurorack.curves.anchors.edit_curves`: *attribute transfer*, e.g. brighter), and the
input is encoded and decoded with those curves by a :class:`~neurorack.models.base.TransferModel`
(e.g. ``fader-ae``). Through a model trained on
another corpus the result is *timbre transfer*: the input's descriptors played with the model's
timbre. The audio runs through the model's streaming path in blocks (memory stays flat on long
files; the result equals one offline pass) and comes out aligned with the input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from neurorack.curves.anchors import edit_curves
from neurorack.descriptors import describe_with
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator
from neurorack.models.base import GeneratorKind, TransferModel
from neurorack.models.generator import ModelGenerator
from neurorack.models.registry import MODELS, model_names

#: Latent frames per streamed block (64 x 512 samples = 0.74 s at 44.1 kHz).
BLOCK_FRAMES = 64


@dataclass(frozen=True)
class TransferResult:
    """What :func:`transfer` made.

    Attributes:
        audio: float32 ``[T]`` at the model's rate, as long as the input and aligned with it.
        measured: float32 ``[F, 7]`` descriptor curves of the input.
        requested: float32 ``[F, 7]`` the curves the decoder was given (``measured`` after the edits).
    """

    audio: np.ndarray
    measured: np.ndarray
    requested: np.ndarray


def transfer_model_names() -> list[str]:
    """Registered models of the transfer kind (autoencoders)."""
    return [n for n in model_names() if MODELS[n].kind is GeneratorKind.TRANSFER]


def transfer_model_of(model: ModelGenerator) -> TransferModel:
    """The transfer model (an autoencoder) inside a loaded model.

    Raises:
        NeurorackError: the model is not an autoencoder (e.g. an impact generator such as ddsp-impact).
    """
    if model.model.kind is not GeneratorKind.TRANSFER or not isinstance(model.model, TransferModel):
        names = transfer_model_names()
        raise NeurorackError(
            f"model {model.name!r} generates from descriptors only and cannot transfer audio; "
            f"use a model of {', '.join(names)} (neurorack train CORPUS --model {names[0]})"
        )
    return model.model


def transfer_curves(
    ae: TransferModel, audio: np.ndarray, curves: np.ndarray, progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """``audio float32[T]`` encoded and decoded with ``curves float32[F, 7]`` -> ``float32[F · hop]``.

    The input is cut or zero-padded to ``F · hop`` samples and run through
    :meth:`TransferModel.stream <neurorack.models.base.TransferModel.stream>` in blocks of
    :data:`BLOCK_FRAMES` frames, flushed by its stream delay, so the output is aligned with it.
    """
    hop, frames = ae.hop_length, curves.shape[0]
    total = frames + ae.pad_frames  # the stream delay is flushed by a few frames of silence
    signal = torch.zeros(1, 1, total * hop)
    piece = torch.from_numpy(np.asarray(audio, dtype=np.float32)[: frames * hop])
    signal[0, 0, : piece.numel()] = piece
    controls = ae.extend_curves(torch.from_numpy(np.asarray(curves, dtype=np.float32)).unsqueeze(0))
    blocks = range(0, total, BLOCK_FRAMES)
    outputs, state = [], None
    torch.set_flush_denormal(True)  # decaying tails end in denormals, ~100x slower on x86
    with torch.inference_mode():
        for done, start in enumerate(blocks, 1):
            stop = min(total, start + BLOCK_FRAMES)
            y, state = ae.stream(signal[..., start * hop : stop * hop], controls[:, start:stop], state)
            outputs.append(y)
            if progress is not None:
                progress(done, len(blocks))
    delay = ae.stream_delay
    return torch.cat(outputs, dim=-1)[0, 0, delay : delay + frames * hop].numpy().astype(np.float32)


def transfer(
    model: ModelGenerator,
    audio: np.ndarray,
    *,
    scale: Mapping[str, float] | None = None,
    offset: Mapping[str, float] | None = None,
    absolute: Mapping[str, float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TransferResult:
    """Re-synthesise ``audio`` (float ``[T]`` at the model's rate) through a transfer model (e.g. ``fader-ae``).

    Args:
        model: a loaded autoencoder (:func:`neurorack.model_file.load_model`).
        audio: mono input samples.
        scale, offset, absolute: descriptor edits (:func:`neurorack.curves.anchors.edit_curves`); none: plain
            reconstruction (or timbre transfer, through a model of another corpus).
        progress: called with (blocks done, blocks in total).

    Raises:
        NeurorackError: not an autoencoder, empty or non-finite audio, a bad edit.
    """
    ae = transfer_model_of(model)
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise NeurorackError(f"transfer needs mono audio with samples, got shape {list(x.shape)}")
    if not np.isfinite(x).all():
        raise NeurorackError("the input audio holds NaN or infinite samples")
    measured = describe_with(x, model.descriptor_config)
    requested = edit_curves(measured, scale=scale, offset=offset, absolute=absolute)
    out = transfer_curves(ae, x, requested, progress)[: x.size]
    return TransferResult(audio=out, measured=measured, requested=requested)


class SourceTransfer(Generator):
    """One sound re-synthesised through an autoencoder with whatever curves are asked for.

    A :class:`~neurorack.generators.base.Generator` (curves in, audio out) bound to a source sound, so
    the generator measurements of ``eval`` apply to attribute transfer unchanged: its own curves give
    the reconstruction, scaled curves the control response. The seed is ignored (the transfer reads
    the model's fixed noise table).

    Args:
        model: a loaded ``fader-ae`` model.
        audio: the source sound, ``float[T]`` at the model's rate.
    """

    def __init__(self, model: ModelGenerator, audio: np.ndarray) -> None:
        super().__init__(model.descriptor_config)
        self.ae = transfer_model_of(model)
        self.audio = np.asarray(audio, dtype=np.float32)
        self.name = model.name

    def _generate(self, descriptors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return transfer_curves(self.ae, self.audio, descriptors)
