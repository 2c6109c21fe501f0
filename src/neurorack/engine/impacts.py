"""Rendered impacts, preallocated, published to the audio thread by an atomic reference swap.

The renderer writes a new impact into a free slot (never the one published, never one a
voice still plays, never one retired less than two audio periods ago), then publishes it by
assigning :attr:`ImpactPool.current` — a single attribute store, atomic under the GIL. The
audio thread only reads :attr:`current` and the slot's buffer and length: no lock, no copy.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

#: Fade at the end of every impact, samples (a truncated tail never clicks).
TAIL_FADE = 64


class ImpactPool:
    """``slots`` buffers of ``max_samples`` float32 samples each.

    Attributes:
        buffers: the preallocated audio buffers (only the first ``lengths[i]`` samples count).
        lengths: samples of each slot's impact.
        current: the slot gate 1 plays, -1 before the first render.
        curves: descriptor curves each slot was rendered from.
    """

    def __init__(self, slots: int, max_samples: int) -> None:
        if slots < 3 or max_samples < TAIL_FADE:
            raise ValueError(f"need slots >= 3 and max_samples >= {TAIL_FADE}")
        self.max_samples = max_samples
        self.buffers: list[np.ndarray] = [np.zeros(max_samples, dtype=np.float32) for _ in range(slots)]
        self.lengths: list[int] = [0] * slots
        self.curves: list[np.ndarray | None] = [None] * slots
        self.current = -1
        self._retired_at: list[int] = [-(10**9)] * slots
        self._fade = np.linspace(1.0, 0.0, TAIL_FADE, dtype=np.float32)
        #: Impacts published so far.
        self.published = 0

    def acquire(self, in_use: Collection[int], periods_done: int) -> int:
        """A slot the renderer may overwrite now, or -1 when every slot is busy.

        Args:
            in_use: slots voices still play.
            periods_done: audio callbacks completed so far (a slot retired at count ``c`` is
                free from ``c + 2`` on, when no callback can still hold the old reference).
        """
        current = self.current
        for i in range(len(self.buffers)):
            if i == current or i in in_use or periods_done < self._retired_at[i] + 2:
                continue
            return i
        return -1

    def write(self, slot: int, audio: np.ndarray, curves: np.ndarray | None = None) -> int:
        """Copy ``audio`` (finite float32, truncated to ``max_samples``) into ``slot`` with a short tail fade.

        Returns the samples stored.
        """
        n = min(int(audio.shape[0]), self.max_samples)
        buf = self.buffers[slot]
        np.copyto(buf[:n], audio[:n], casting="unsafe")
        np.nan_to_num(buf[:n], copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        f = min(TAIL_FADE, n)
        if f:
            buf[n - f : n] *= self._fade[TAIL_FADE - f :]
        self.lengths[slot] = n
        self.curves[slot] = None if curves is None else np.array(curves, dtype=np.float32)
        return n

    def publish(self, slot: int, periods_done: int) -> None:
        """Make ``slot`` the impact gate 1 plays (one atomic attribute store)."""
        old = self.current
        self.current = slot
        if old >= 0 and old != slot:
            self._retired_at[old] = periods_done
        self.published += 1

    def impact(self) -> np.ndarray | None:
        """A copy of the published impact, ``float32[samples]``, or None."""
        cur = self.current
        return None if cur < 0 else self.buffers[cur][: self.lengths[cur]].copy()
