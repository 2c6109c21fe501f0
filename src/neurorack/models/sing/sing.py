"""SING: Symbol-to-Instrument Neural Generator (Défossez et al., NeurIPS 2018).

(instrument, pitch, velocity) -> a 4 s note at 16 kHz, generated at once (no sample-by-sample
recurrence): an LSTM (:class:`~.sequence_generator.SequenceGenerator`) writes one embedding per 256-sample
frame, a convolutional decoder (:class:`~.convolutional_ae.ConvolutionalDecoder`) turns them into the
waveform. Trained in three stages (:mod:`neurorack.training.sing_module`): the autoencoder on notes, the
LSTM on the frozen encoder's embeddings, then both end to end, each with the spectral loss
(:class:`~neurorack.training.sing_loss.SingSpectralLoss`).

Configurations (:data:`SING_CONFIGS`): ``paper`` is the paper's (~64 M parameters at generation), ``cpu``
the product's (chosen by measurement, see ARCHITECTURE.md), ``tiny`` for tests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from neurorack.models.base import NoteModel
from neurorack.models.registry import register_note_model
from neurorack.models.sing.convolutional_ae import ConvolutionalDecoder, ConvolutionalEncoder
from neurorack.models.sing.sequence_generator import LSTMState, SequenceGenerator

#: The paper's sizes (§3, §4.1 and its reference code).
SING_PAPER: dict[str, Any] = {
    "channels": 4096,
    "dimension": 128,
    "kernel_size": 1024,
    "stride": 256,
    "context": 9,
    "rewrite_layers": 2,
    "hidden_size": 1024,
    "layers": 3,
    "instrument_dim": 16,
    "pitch_dim": 8,
    "velocity_dim": 2,
    "time_dim": 4,
}
#: The product's sizes on one CPU thread: see ARCHITECTURE.md for the measurements behind them.
SING_CPU: dict[str, Any] = {**SING_PAPER, "channels": 512, "hidden_size": 256, "layers": 3}
SING_TINY: dict[str, Any] = {**SING_PAPER, "channels": 16, "dimension": 8, "hidden_size": 16, "layers": 1}
SING_CONFIGS: dict[str, dict[str, Any]] = {"tiny": SING_TINY, "paper": SING_PAPER, "cpu": SING_CPU}


@dataclass(frozen=True)
class SingStreamState:
    """Where a streamed note is (see :meth:`Sing.stream`).

    Attributes:
        symbols: the note's instrument vector ``[B, instrument_dim]``, pitches and velocities ``[B]``.
        lstm: the sequence generator's state after the last frame (None before the first).
        frame: the next embedding frame to generate.
        context: the last ``context - 1`` embeddings ``[B, dimension, ≤ context - 1]``, the decoder's look-back.
        tail: the overlap-add samples ``[B, kernel_size - stride]`` still waiting for the next grains.
        skip: decoded samples still to drop before the note starts (the output padding and the margin).
        left: note samples still to emit.
    """

    symbols: tuple[Tensor, Tensor, Tensor]
    lstm: LSTMState | None
    frame: int
    context: Tensor
    tail: Tensor
    skip: int
    left: int

    @property
    def done(self) -> bool:
        return self.left <= 0


@register_note_model("sing", configs=SING_CONFIGS)
class Sing(NoteModel):
    """SING. Every length in samples at :attr:`sample_rate`; ``N`` = :attr:`note_samples`.

    Args:
        n_instruments, sample_rate, note_seconds: see :class:`~neurorack.models.base.NoteModel`.
        channels, dimension, kernel_size, stride, context, rewrite_layers: the autoencoder
            (:class:`~.convolutional_ae.ConvolutionalDecoder`).
        hidden_size, layers, instrument_dim, pitch_dim, velocity_dim, time_dim: the sequence generator
            (:class:`~.sequence_generator.SequenceGenerator`); ``time_dim=0`` is the ablation without the
            time embedding.

    Attributes:
        stride, kernel_size: hop and length of the output grains, samples.
        margin: samples of context decoded on each side of the note (the paper's 512 at stride 256).
        pad: zeros added on each side of a note before the encoder.
        frames: embeddings per note (265 for the paper's 4 s at 16 kHz).
    """

    objective = "sing"

    def __init__(
        self,
        *,
        n_instruments: int = 1,
        sample_rate: int = 16_000,
        note_seconds: float = 4.0,
        channels: int = 4096,
        dimension: int = 128,
        kernel_size: int = 1024,
        stride: int = 256,
        context: int = 9,
        rewrite_layers: int = 2,
        hidden_size: int = 1024,
        layers: int = 3,
        instrument_dim: int = 16,
        pitch_dim: int = 8,
        velocity_dim: int = 2,
        time_dim: int = 4,
    ) -> None:
        super().__init__(n_instruments=n_instruments, sample_rate=sample_rate, note_seconds=note_seconds)
        if context % 2 != 1:
            raise ValueError(f"context must be odd, got {context}")
        if kernel_size % stride or self.note_samples % stride:
            raise ValueError(
                f"kernel_size ({kernel_size}) and the note ({self.note_samples}) must be multiples of stride"
            )
        self.config.update(
            channels=channels,
            dimension=dimension,
            kernel_size=kernel_size,
            stride=stride,
            context=context,
            rewrite_layers=rewrite_layers,
            hidden_size=hidden_size,
            layers=layers,
            instrument_dim=instrument_dim,
            pitch_dim=pitch_dim,
            velocity_dim=velocity_dim,
            time_dim=time_dim,
        )
        self.stride = stride
        self.kernel_size = kernel_size
        self.margin = 2 * stride
        strip = kernel_size - stride + (context - 1) * stride // 2
        self.pad = strip + self.margin
        self.frames = (self.note_samples + 2 * self.pad - kernel_size) // stride + 1
        self.encoder = ConvolutionalEncoder(
            channels=channels,
            dimension=dimension,
            kernel_size=kernel_size,
            stride=stride,
            rewrite_layers=rewrite_layers,
        )
        self.decoder = ConvolutionalDecoder(
            channels=channels,
            dimension=dimension,
            kernel_size=kernel_size,
            stride=stride,
            context=context,
            rewrite_layers=rewrite_layers,
        )
        self.sequence = SequenceGenerator(
            n_instruments=n_instruments,
            frames=self.frames,
            dimension=dimension,
            hidden_size=hidden_size,
            layers=layers,
            instrument_dim=instrument_dim,
            pitch_dim=pitch_dim,
            velocity_dim=velocity_dim,
            time_dim=time_dim,
        )
        assert self.decoder.output_length(self.frames) == self.note_samples + 2 * self.margin

    def encode(self, audio: Tensor) -> Tensor:
        """Notes ``Tensor[B, N]`` -> embeddings ``Tensor[B, dimension, frames]``."""
        return self.encoder(F.pad(audio, (self.pad, self.pad)))

    def decode(self, embeddings: Tensor) -> Tensor:
        """Embeddings ``Tensor[B, dimension, L]`` -> ``Tensor[B, (L - frames) · stride + N + 2 · margin]``.

        ``L = frames`` gives the note with :attr:`margin` samples of context on each side (what the losses
        compare with :meth:`target`); a window of ``L`` frames starting at frame ``f`` gives the samples
        ``f · stride - margin ..`` of the note.
        """
        return self.decoder(embeddings)

    def target(self, audio: Tensor) -> Tensor:
        """Notes ``Tensor[B, N]`` -> what :meth:`decode` of all the frames should give: ``[B, N + 2 · margin]``."""
        return F.pad(audio, (self.margin, self.margin))

    def crop(self, decoded: Tensor) -> Tensor:
        """``[B, N + 2 · margin]`` -> the note ``[B, N]``."""
        return decoded[..., self.margin : self.margin + self.note_samples]

    def instrument_vector(self, instrument: Tensor) -> Tensor:
        return self.sequence.instrument_vector(instrument)

    def embeddings(
        self,
        instrument: Tensor,
        pitch: Tensor,
        velocity: Tensor,
        start: int = 0,
        length: int | None = None,
        state: LSTMState | None = None,
    ) -> tuple[Tensor, LSTMState]:
        """The sequence generator: frames ``start .. start + length`` -> (``[B, dimension, length]``, state)."""
        return self.sequence(instrument, pitch, velocity, start=start, length=length, state=state)

    def forward(self, instrument: Tensor, pitch: Tensor, velocity: Tensor) -> Tensor:
        """Indices or weights (:meth:`instrument_vector`), pitches and velocities ``[B]`` -> ``[B, N + 2 · margin]``."""
        embeddings, _ = self.embeddings(self.instrument_vector(instrument), pitch, velocity)
        return self.decode(embeddings)

    def generate(self, instrument: Tensor, pitch: Tensor, velocity: Tensor) -> Tensor:
        embeddings, _ = self.embeddings(instrument, pitch, velocity)
        return self.crop(self.decode(embeddings))

    # -- streaming: the note frame by frame, equal to :meth:`generate` ------------------------------------------
    @property
    def latency_frames(self) -> int:
        """Embedding frames to generate before a note's first sample is final (the decoder's look-back and
        grain overlap, and the dropped output padding and margin)."""
        skip_grains = -(-(self.kernel_size - self.stride + self.margin + 1) // self.stride)
        return self.decoder.context - 1 + skip_grains

    def stream_state(self, instrument: Tensor, pitch: Tensor, velocity: Tensor) -> SingStreamState:
        """The state before a note's first frame: ``instrument`` a vector ``[B, instrument_dim]`` (see
        :meth:`instrument_vector`), ``pitch``, ``velocity`` ``[B]``."""
        batch = instrument.shape[0]
        dimension = int(self.config["dimension"])
        return SingStreamState(
            symbols=(instrument, pitch, velocity),
            lstm=None,
            frame=0,
            context=instrument.new_zeros(batch, dimension, 0),
            tail=instrument.new_zeros(batch, self.kernel_size - self.stride),
            skip=self.kernel_size - self.stride + self.margin,  # the decoder's output padding, then the margin
            left=self.note_samples,
        )

    def restream(self, state: SingStreamState, instrument: Tensor) -> SingStreamState:
        """The note goes on with instrument vector ``instrument`` ``[B, instrument_dim]``: the LSTM takes it
        from the next frame on (its state and the frames already decoded are kept), so a morph moves live."""
        _, pitch, velocity = state.symbols
        return replace(state, symbols=(instrument, pitch, velocity))

    def stream(self, state: SingStreamState, frames: int) -> tuple[Tensor, SingStreamState]:
        """Generate ``frames`` more embedding frames and return the note samples they finish, ``[B, n]``.

        ``n`` is ``frames · stride`` once :attr:`latency_frames` frames have been generated (0 before, less at the
        end); the concatenated chunks equal :meth:`generate` (to float rounding). Frames past the note's end are
        ignored.
        """
        frames = min(int(frames), self.frames - state.frame)
        batch = state.tail.shape[0]
        if frames <= 0:
            return state.tail.new_zeros(batch, 0), state
        embeddings, lstm = self.embeddings(*state.symbols, start=state.frame, length=frames, state=state.lstm)
        window = torch.cat([state.context, embeddings], dim=-1)
        look_back = self.decoder.context - 1
        advanced = replace(state, lstm=lstm, frame=state.frame + frames, context=window[..., -look_back:])
        grains = window.shape[-1] - look_back
        if grains <= 0:
            return state.tail.new_zeros(batch, 0), replace(advanced, context=window)
        layer = self.decoder.grains
        # the transposed convolution as one matrix product and an overlap-add: on a few frames this is ~2x
        # faster than conv_transpose1d on one CPU thread (what a note-on waits for)
        shapes = torch.einsum("bcf,ck->bfk", self.decoder.body(window), (layer.weight * layer.window)[:, 0, :])
        final = grains * self.stride
        chunk = torch.zeros(batch, final + self.kernel_size - self.stride, dtype=shapes.dtype)
        chunk[:, : state.tail.shape[1]] = state.tail
        for j in range(grains):
            chunk[:, j * self.stride : j * self.stride + self.kernel_size] += shapes[:, j]
        out = chunk[:, :final]
        if layer.bias is not None:
            out = out + layer.bias
        drop = min(state.skip, final)
        out = out[:, drop : drop + state.left]
        return out, replace(advanced, tail=chunk[:, final:], skip=state.skip - drop, left=state.left - out.shape[1])
