"""SING's sequence generator: (instrument, pitch, velocity) -> one embedding per frame, by an LSTM.

Défossez et al. 2018, §3.2: look-up embeddings of the instrument, the pitch and the velocity, with a
look-up embedding of the time step, are the input of a multi-layer LSTM at every frame; a linear layer
reads its output as the decoder's embedding of that frame. The instrument enters as a *vector*
(``Tensor[B, instrument_dim]``), so a morph is a weighted sum of instrument embeddings.

Velocities: NSynth has five (:data:`VELOCITIES`); a table row per velocity, and any MIDI velocity in
between is the linear interpolation of its two neighbours' rows (the paper's table would give a
velocity it never saw a random embedding).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

#: The velocities of the NSynth notes, MIDI units; other velocities interpolate between their embeddings.
VELOCITIES: tuple[int, ...] = (25, 50, 75, 100, 127)
#: MIDI pitches 0–127 each have an embedding row.
PITCHES = 128

#: LSTM state ``(h, c)``, each ``Tensor[layers, B, hidden]``.
LSTMState = tuple[Tensor, Tensor]


def velocity_position(velocity: Tensor) -> Tensor:
    """MIDI velocities ``Tensor[B]`` (any real values) -> fractional row positions in :data:`VELOCITIES`, ``[B]``.

    Clamped to the table: below 25 plays as 25, above 127 as 127.
    """
    known = torch.tensor(VELOCITIES, dtype=torch.float32, device=velocity.device)
    v = velocity.to(torch.float32).clamp(known[0], known[-1])
    upper = torch.searchsorted(known, v.contiguous()).clamp(1, len(VELOCITIES) - 1)
    lo, hi = known[upper - 1], known[upper]
    return (upper - 1).to(torch.float32) + (v - lo) / (hi - lo)


class SequenceGenerator(nn.Module):
    """Instrument vector ``[B, instrument_dim]``, pitch ``[B]`` and velocity ``[B]`` -> embeddings ``[B, D, L]``.

    Args:
        n_instruments: rows of the instrument table.
        frames: time steps of a note (the time table's size; paper: 265).
        dimension: embedding size per frame handed to the decoder (paper: 128).
        hidden_size, layers: the LSTM (paper: 1024, 3).
        instrument_dim, pitch_dim, velocity_dim, time_dim: look-up sizes (paper: 16, 8, 2, 4); ``time_dim = 0``
            is the paper's ablation without the time embedding.
    """

    def __init__(
        self,
        *,
        n_instruments: int,
        frames: int,
        dimension: int,
        hidden_size: int,
        layers: int,
        instrument_dim: int,
        pitch_dim: int,
        velocity_dim: int,
        time_dim: int,
    ) -> None:
        super().__init__()
        self.instrument = nn.Embedding(n_instruments, instrument_dim)
        self.pitch = nn.Embedding(PITCHES, pitch_dim)
        self.velocity = nn.Embedding(len(VELOCITIES), velocity_dim)
        self.time = nn.Embedding(frames, time_dim) if time_dim > 0 else None
        self.lstm = nn.LSTM(instrument_dim + pitch_dim + velocity_dim + time_dim, hidden_size, layers, batch_first=True)
        self.readout = nn.Linear(hidden_size, dimension)
        self.frames = frames

    def instrument_vector(self, instrument: Tensor) -> Tensor:
        """Instrument indices ``LongTensor[B]`` or weights ``Tensor[B, n_instruments]`` -> ``[B, instrument_dim]``.

        Weights mix the instruments' embeddings (a morph); they are used as given (normalise them first).
        """
        if instrument.dtype in (torch.int32, torch.int64):
            return self.instrument(instrument)
        return instrument.to(self.instrument.weight) @ self.instrument.weight

    def velocity_vector(self, velocity: Tensor) -> Tensor:
        """MIDI velocities ``Tensor[B]`` -> ``[B, velocity_dim]``, interpolated between the trained rows."""
        position = velocity_position(velocity)
        lower = position.floor().long().clamp(0, len(VELOCITIES) - 2)
        frac = (position - lower).unsqueeze(-1)
        table = self.velocity.weight
        return table[lower] * (1 - frac) + table[lower + 1] * frac

    def forward(
        self,
        instrument: Tensor,
        pitch: Tensor,
        velocity: Tensor,
        start: int = 0,
        length: int | None = None,
        state: LSTMState | None = None,
    ) -> tuple[Tensor, LSTMState]:
        """Frames ``start .. start + length`` (default: to the end of the note) of the embedding sequence.

        Args:
            instrument: ``[B, instrument_dim]`` (see :meth:`instrument_vector`).
            pitch: MIDI pitches ``LongTensor[B]``; velocity: MIDI velocities ``Tensor[B]``.
            start, length, state: a later window continues from ``state`` (truncated back-propagation,
                streaming); ``state=None`` starts a note.

        Returns:
            embeddings ``Tensor[B, dimension, length]`` and the LSTM state after the last frame.
        """
        length = self.frames - start if length is None else length
        if start < 0 or length < 1 or start + length > self.frames:
            raise ValueError(f"frames {start}..{start + length} outside the note's 0..{self.frames}")
        parts = [instrument, self.pitch(pitch.long()), self.velocity_vector(velocity)]
        inputs = torch.cat(parts, dim=-1).unsqueeze(1).expand(-1, length, -1)
        if self.time is not None:
            steps = torch.arange(start, start + length, device=inputs.device)
            inputs = torch.cat([inputs, self.time(steps).unsqueeze(0).expand(inputs.shape[0], -1, -1)], dim=-1)
        output, (h, c) = self.lstm(inputs, state)
        return self.readout(output).transpose(1, 2), (h, c)

    def extra_repr(self) -> str:
        info: dict[str, Any] = {"frames": self.frames, "time": self.time is not None}
        return ", ".join(f"{k}={v}" for k, v in info.items())
