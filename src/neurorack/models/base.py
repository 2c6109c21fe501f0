"""Base classes every model family builds on (SPEC §3, §5, §7).

An :class:`ImpactModel` maps descriptor curves in physical units
(``Tensor[B, frames, 7]``, :data:`~neurorack.descriptors.DESCRIPTOR_NAMES`
order) to audio ``Tensor[B, frames * hop_length]`` at ``sample_rate``.
It owns the descriptor normalisation statistics (buffers, saved with the
weights) so an exported model needs nothing from the training corpus.

A model declares what it is to the rest of the product with two class attributes, so the engine,
``eval``, ``bench`` and the CLI never test for a family's class:

* :attr:`ImpactModel.kind` (:class:`GeneratorKind`): ``curves`` models only generate from curves;
  ``transfer`` models (:class:`TransferModel`, autoencoders) also re-synthesise audio, offline
  (``neurorack transfer``), live (``play --transfer``) and in ``eval`` (measured by transfer);
* :attr:`ImpactModel.objective`: the training objective that fits it
  (:data:`neurorack.training.objectives.OBJECTIVES`).

A :class:`NoteModel` is the other kind of instrument: symbols (instrument, MIDI pitch, MIDI velocity) ->
a note of fixed length (NSynth's 4 s at 16 kHz), played from keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from neurorack.curves.anchors import column
from neurorack.descriptors import DESCRIPTOR_NAMES, N_DESCRIPTORS, DescriptorConfig
from neurorack.errors import NeurorackError

#: Descriptors fed to the network on a log scale (strictly positive quantities in Hz or amplitude).
LOG_DESCRIPTORS: tuple[int, ...] = (0, 2, 3, 4, 5, 6)
LOG_FLOOR = 1e-5


class GeneratorKind(StrEnum):
    """What a model does for the engine, ``eval``, ``bench`` and the CLI."""

    #: descriptor curves -> audio (impact generators)
    CURVES = "curves"
    #: also audio + its (edited) curves -> audio, block by block (autoencoders, :class:`TransferModel`)
    TRANSFER = "transfer"
    #: (instrument, pitch, velocity) -> a note (:class:`NoteModel`: SING and the note instruments)
    NOTES = "notes"


def to_feature_scale(descriptors: Tensor) -> Tensor:
    """Physical units -> network scale: log for rms, rolloff, flatness, bandwidth, centroid, f0.

    ``descriptors: Tensor[..., 7]`` -> ``Tensor[..., 7]``.
    """
    mask = torch.tensor([i in LOG_DESCRIPTORS for i in range(N_DESCRIPTORS)], device=descriptors.device)
    return torch.where(mask, torch.log(descriptors.clamp_min(LOG_FLOOR)), descriptors)


def canonical_focus(moved: Mapping[str, float] | None) -> dict[str, float]:
    """``moved`` (names or perceptual aliases -> ratio) with canonical descriptor names.

    Raises:
        NeurorackError: an unknown descriptor name.
    """
    return {DESCRIPTOR_NAMES[column(key)]: float(ratio) for key, ratio in (moved or {}).items()}


class ImpactModel(nn.Module):
    """Descriptor curves -> impact audio.

    Subclasses implement :meth:`synthesize` and declare ``kwargs`` they were
    built with in ``self.config`` (plain JSON-able values) so checkpoints and
    exports are self-describing.

    Args:
        sample_rate: output rate in Hz.
        hop_length: output samples per descriptor frame.
        frame_length: analysis frame of the descriptors (metadata).
    """

    name: str = "impact-model"
    #: what the model does (see the module docstring)
    kind: ClassVar[GeneratorKind] = GeneratorKind.CURVES
    #: the training objective that fits it, a key of :data:`neurorack.training.objectives.OBJECTIVES`
    objective: ClassVar[str] = "impact"
    #: Values of keyword arguments added after files of this model were first exported: a model
    #: file that does not name one was written before it existed and is rebuilt with this value.
    legacy_kwargs: ClassVar[dict[str, Any]] = {}
    desc_mean: Tensor
    desc_std: Tensor

    def __init__(self, *, sample_rate: int = 44_100, hop_length: int = 512, frame_length: int = 2048) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.hop_length = hop_length
        self.frame_length = frame_length
        self.config: dict[str, Any] = {
            "sample_rate": sample_rate,
            "hop_length": hop_length,
            "frame_length": frame_length,
        }
        self.register_buffer("desc_mean", torch.zeros(N_DESCRIPTORS))
        self.register_buffer("desc_std", torch.ones(N_DESCRIPTORS))

    @property
    def descriptor_config(self) -> DescriptorConfig:
        return DescriptorConfig(self.sample_rate, self.frame_length, self.hop_length)

    @property
    def latency(self) -> int:
        """Algorithmic latency in samples (0: offline, whole impact rendered at once)."""
        return 0

    @property
    def takes_focus(self) -> bool:
        """True when the subclass overrides :meth:`set_focus` (e.g. ``ddsp-impact``'s shape lock)."""
        return type(self).set_focus is not ImpactModel.set_focus

    def set_focus(self, moved: Mapping[str, float] | None) -> None:
        """Descriptors the player moved (name -> requested / unedited ratio), None to clear.

        See :meth:`neurorack.generators.base.Generator.focus`; models without a trade-off between
        descriptors ignore it (this default, which still checks the names).

        Raises:
            NeurorackError: an unknown descriptor name.
        """
        canonical_focus(moved)

    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        """Store normalisation statistics of :func:`to_feature_scale` descriptors, each ``[7]``."""
        self.desc_mean.copy_(mean.to(self.desc_mean))
        self.desc_std.copy_(std.to(self.desc_std).clamp_min(1e-4))

    def normalize(self, descriptors: Tensor) -> Tensor:
        """``[B, F, 7]`` physical units -> z-normalised network scale."""
        return (to_feature_scale(descriptors) - self.desc_mean) / self.desc_std

    def forward(self, descriptors: Tensor, noise: Tensor | None = None) -> Tensor:
        """``descriptors: Tensor[B, F, 7]`` (physical units) -> ``audio: Tensor[B, F * hop]``.

        ``noise``: optional noise from :meth:`make_noise` (for reproducibility); drawn from the
        global generator when ``None``.
        """
        if descriptors.dim() != 3 or descriptors.shape[-1] != N_DESCRIPTORS:
            raise ValueError(f"descriptors must be [B, F, {N_DESCRIPTORS}], got {list(descriptors.shape)}")
        if noise is None:
            noise = self.make_noise(descriptors.shape[0], descriptors.shape[1])
        return self.synthesize(descriptors, noise)

    def make_noise(self, batch: int, frames: int, generator: torch.Generator | None = None) -> Tensor:
        """Random input for ``frames`` descriptor frames; default standard normal ``[B, frames * hop]``."""
        return torch.randn(batch, frames * self.hop_length, generator=generator, device=self.desc_mean.device)

    def synthesize(self, descriptors: Tensor, noise: Tensor) -> Tensor:
        """Implementation: physical-unit curves ``[B, F, 7]`` and noise ``[B, F*hop]`` -> ``[B, F*hop]``."""
        raise NotImplementedError


class TransferModel(ImpactModel):
    """An autoencoder: audio and descriptor curves -> audio, offline and block by block (``kind = transfer``).

    What the offline transfer (:mod:`neurorack.models.transfer`), live transfer
    (:mod:`neurorack.engine.live_transfer`, through :class:`~neurorack.models.compiled_stream.CompiledStream`)
    and ``eval``'s latent-leakage measure use; a family implements the abstract methods. As an
    :class:`ImpactModel` (curves alone) it plays its *timbre*, a latent set at export
    (:meth:`timbre_of` its training sounds).

    Attributes:
        controls: descriptor names the decoder takes.
        latent_dim: latent channels per descriptor frame.
        pad_frames: frames of silence after a signal that flush :attr:`stream_delay` out of :meth:`stream`.
    """

    kind: ClassVar[GeneratorKind] = GeneratorKind.TRANSFER
    controls: tuple[str, ...]
    latent_dim: int
    pad_frames: int

    @property
    def n_controls(self) -> int:
        return len(self.controls)

    @property
    def stream_delay(self) -> int:
        """Samples by which :meth:`stream`'s output lags its input."""
        raise NotImplementedError

    def set_timbre(self, latent: Tensor) -> None:
        """The latent ``[latent_dim]`` used when generating from descriptor curves alone."""
        raise NotImplementedError

    def control_features(self, descriptors: Tensor) -> Tensor:
        """Physical curves ``[B, F, 7]`` -> normalised decoder controls ``[B, n_controls, F]``."""
        raise NotImplementedError

    def latent_of(self, audio: Tensor, frames: int) -> Tensor:
        """Latent ``[latent_dim, frames]`` of one sound ``audio [T]`` (cut or zero-padded to ``frames · hop``)."""
        raise NotImplementedError

    def transfer(self, audio: Tensor, descriptors: Tensor) -> Tensor:
        """``audio [B, T]`` re-synthesised with ``descriptors [B, T / hop, 7]`` (edited or not) -> ``[B, T]``."""
        raise NotImplementedError

    def initial_state(self, batch: int = 1) -> Any:
        """Streaming state of :meth:`stream` before the first block."""
        raise NotImplementedError

    def stream(self, audio: Tensor, descriptors: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """One block: ``audio [B, 1, N]`` (``N`` a multiple of ``hop_length``) and its curves ``[B, N / hop, 7]``
        -> output ``[B, 1, N]`` (the input delayed by :attr:`stream_delay`) and the new state."""
        raise NotImplementedError

    def extend_curves(self, descriptors: Tensor) -> Tensor:
        """Curves ``[B, F, 7]`` extended by :attr:`pad_frames` copies of their last frame -> ``[B, F + pad_frames, 7]``
        (the frames of the zero padding that flushes the stream delay)."""
        if self.pad_frames == 0:
            return descriptors
        return torch.cat([descriptors, descriptors[:, -1:].expand(-1, self.pad_frames, -1)], dim=1)

    def timbre_of(self, sounds: Sequence[Any], limit: int = 256) -> Tensor:
        """Mean latent ``[latent_dim]`` over (up to ``limit``) sounds, float arrays ``[T]``, weighted by frames:
        the timbre the model plays from descriptor curves alone.

        Raises:
            NeurorackError: no sound.
        """
        total, count = None, 0
        with torch.inference_mode():
            for audio in sounds[:limit]:
                frames = max(1, len(audio) // self.hop_length)
                latent = self.latent_of(torch.as_tensor(audio, dtype=torch.float32), frames).sum(-1)
                total = latent if total is None else total + latent
                count += frames
        if total is None:
            raise NeurorackError("no sound to compute the model's timbre from")
        return total / count


class NoteModel(nn.Module):
    """(instrument, pitch, velocity) -> a note ``Tensor[B, note_samples]`` at :attr:`sample_rate` (``kind = notes``).

    Subclasses declare their keyword arguments in ``self.config`` (plain JSON-able values), as impact models do.

    Args:
        n_instruments: instruments the model knows (rows of its instrument table).
        sample_rate: output rate, Hz.
        note_seconds: length of a generated note, s (NSynth: 4, the key held for the first 3).
    """

    name: str = "note-model"
    kind: ClassVar[GeneratorKind] = GeneratorKind.NOTES
    objective: ClassVar[str] = "notes"

    def __init__(self, *, n_instruments: int, sample_rate: int = 16_000, note_seconds: float = 4.0) -> None:
        super().__init__()
        if n_instruments < 1:
            raise ValueError(f"n_instruments must be >= 1, got {n_instruments}")
        self.n_instruments = n_instruments
        self.sample_rate = sample_rate
        self.note_seconds = note_seconds
        self.config: dict[str, Any] = {
            "n_instruments": n_instruments,
            "sample_rate": sample_rate,
            "note_seconds": note_seconds,
        }

    @property
    def note_samples(self) -> int:
        """Samples of a generated note."""
        return round(self.sample_rate * self.note_seconds)

    def instrument_vector(self, instrument: Tensor) -> Tensor:
        """Indices ``LongTensor[B]`` or mixing weights ``Tensor[B, n_instruments]`` -> the model's instrument input."""
        raise NotImplementedError

    def generate(self, instrument: Tensor, pitch: Tensor, velocity: Tensor) -> Tensor:
        """Notes ``Tensor[B, note_samples]`` for instrument vectors (:meth:`instrument_vector`) ``[B, ...]``,
        MIDI pitches ``LongTensor[B]`` and MIDI velocities ``Tensor[B]``."""
        raise NotImplementedError

    @property
    def latency_frames(self) -> int:
        """Frames :meth:`stream` must generate before the first sample of a note is final."""
        raise NotImplementedError

    def stream_state(self, instrument: Tensor, pitch: Tensor, velocity: Tensor) -> Any:
        """The streaming state before a note's first frame (arguments as :meth:`generate`)."""
        raise NotImplementedError

    def restream(self, state: Any, instrument: Tensor) -> Any:
        """``state`` with another instrument vector for the frames still to come (a live morph)."""
        raise NotImplementedError

    def stream(self, state: Any, frames: int) -> tuple[Tensor, Any]:
        """``frames`` more frames of the note -> (the samples they finish ``Tensor[B, n]``, the new state); the
        chunks concatenate to :meth:`generate`. The state has a ``done`` attribute."""
        raise NotImplementedError
