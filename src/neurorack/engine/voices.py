"""Polyphonic playback of rendered impacts (audio thread; preallocated, no buffer allocation).

A hit starts a voice that plays one impact from the :class:`~neurorack.engine.impacts.ImpactPool`
to its end; a new hit never cuts the previous tail. When ``limit`` voices already sound, the
oldest one is stolen: it fades out over ``fade`` samples while the new one starts.

Per-voice state lives in plain Python lists (fast scalar access); the mix uses one preallocated
scratch buffer and in-place NumPy operations only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Default fade applied to a stolen voice, samples (≈ 5.8 ms at 44.1 kHz).
STEAL_FADE = 256


class VoicePool:
    """Up to ``capacity`` voices, of which at most ``limit`` sound without fading.

    Args:
        capacity: physical voices (stolen voices fade on spare ones), ≥ 2.
        max_block: largest block :meth:`mix` will see, samples.
        limit: voices allowed at once (1 … ``capacity // 2``); changeable with :attr:`limit`.
        fade: fade-out of a stolen voice, samples.
    """

    def __init__(self, capacity: int, max_block: int, limit: int = 8, fade: int = STEAL_FADE) -> None:
        if capacity < 2 or max_block < 1 or fade < 1:
            raise ValueError("need capacity >= 2, max_block >= 1, fade >= 1")
        self.capacity = capacity
        self.max_limit = capacity // 2
        self._limit = 1
        self.limit = limit
        self.fade = fade
        self.slot: list[int] = [-1] * capacity  # impact slot played, -1 = free
        self.pos: list[int] = [0] * capacity  # next sample of the impact
        self.length: list[int] = [0] * capacity  # samples of the impact
        self.gain: list[float] = [0.0] * capacity
        self.delay: list[int] = [0] * capacity  # samples into the next block before the onset
        self.fading: list[int] = [-1] * capacity  # samples of fade left, -1 = not fading
        self.serial: list[int] = [0] * capacity  # start order, for stealing the oldest
        self._next_serial = 1
        self._tmp = np.zeros(max_block, dtype=np.float32)
        self._ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
        #: Voices stolen so far.
        self.stolen = 0
        #: Hits started so far.
        self.started = 0

    @property
    def limit(self) -> int:
        """Voices that may sound at once (a new hit beyond it steals the oldest)."""
        return self._limit

    @limit.setter
    def limit(self, value: int) -> None:
        if not 1 <= int(value) <= self.max_limit:
            raise ValueError(f"max_voices must be 1..{self.max_limit}, got {value}")
        self._limit = int(value)

    def active(self) -> int:
        """Voices sounding now, fading ones included."""
        return sum(1 for s in self.slot if s >= 0)

    def in_use(self) -> set[int]:
        """Impact slots some voice still reads (for the renderer; not called on the audio thread)."""
        return {s for s in list(self.slot) if s >= 0}

    def clear(self) -> None:
        """Silence every voice at once."""
        for i in range(self.capacity):
            self.slot[i] = -1

    def start(self, slot: int, length: int, delay: int = 0, gain: float = 1.0) -> int:
        """Start playing impact ``slot`` (``length`` samples) ``delay`` samples into the next block.

        Returns the voice index used.
        """
        sounding = 0
        oldest = -1
        oldest_serial = 0
        for i in range(self.capacity):
            if self.slot[i] >= 0 and self.fading[i] < 0:
                sounding += 1
                if oldest < 0 or self.serial[i] < oldest_serial:
                    oldest, oldest_serial = i, self.serial[i]
        if sounding >= self._limit and oldest >= 0:
            self.fading[oldest] = self.fade
            self.stolen += 1
        free = -1
        for i in range(self.capacity):
            if self.slot[i] < 0:
                free = i
                break
        if free < 0:  # every voice is busy fading: take the one closest to silence
            least = self.fade + 1
            for i in range(self.capacity):
                if 0 <= self.fading[i] < least:
                    free, least = i, self.fading[i]
            if free < 0:
                free = 0
        self.slot[free] = slot
        self.pos[free] = 0
        self.length[free] = length
        self.gain[free] = gain
        self.delay[free] = delay
        self.fading[free] = -1
        self.serial[free] = self._next_serial
        self._next_serial += 1
        self.started += 1
        return free

    def mix(self, out: np.ndarray, buffers: Sequence[np.ndarray]) -> int:
        """Add every voice's next ``len(out)`` samples into ``out`` (in place); returns voices sounding."""
        n = out.shape[0]
        tmp = self._tmp
        sounding = 0
        for i in range(self.capacity):
            s = self.slot[i]
            if s < 0:
                continue
            d = self.delay[i]
            if d >= n:
                self.delay[i] = d - n
                sounding += 1
                continue
            pos = self.pos[i]
            m = min(n - d, self.length[i] - pos)
            fl = self.fading[i]
            if fl >= 0:
                m = min(m, fl)
            if m > 0:
                t = tmp[:m]
                np.multiply(buffers[s][pos : pos + m], self.gain[i], out=t)
                if fl >= 0:
                    start = self.fade - fl
                    t *= self._ramp[start : start + m]
                seg = out[d : d + m]
                seg += t
            pos += m
            self.pos[i] = pos
            self.delay[i] = 0
            if fl >= 0:
                fl -= m
                self.fading[i] = fl
            if pos >= self.length[i] or (fl >= 0 and fl <= 0) or m <= 0:
                self.slot[i] = -1
                self.fading[i] = -1
            else:
                sounding += 1
        return sounding


class PoolVoices:
    """The impact voices as the engine's audio callback sees every voice group: ``mix(out)`` and ``clear()``
    (the note voices, :class:`~neurorack.engine.note_voices.NoteVoices`, have the same two)."""

    def __init__(self, voices: VoicePool, buffers: Sequence[np.ndarray]) -> None:
        self.voices = voices
        self.buffers = buffers

    def mix(self, out: np.ndarray) -> int:
        return self.voices.mix(out, self.buffers)

    def clear(self) -> None:
        self.voices.clear()
