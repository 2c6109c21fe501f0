"""The output stage: sanitising and a soft limiter, in place, without allocating (audio thread)."""

from __future__ import annotations

import math

import numpy as np


class SoftLimiter:
    """A peak limiter with instant attack and exponential release, then a hard safety clip.

    Per block: the gain that keeps the block's peak at ``threshold`` is applied at once
    when it is lower than the current gain (attack); otherwise the gain recovers towards
    1 with time constant ``release``, as a linear ramp across the block (no zipper noise).
    A final clip at ±``ceiling`` guarantees the port never sees more. NaN and ±inf are
    replaced by 0 first, so nothing non-finite ever leaves :meth:`process`.

    Args:
        sample_rate: Hz.
        max_block: largest block :meth:`process` will see, samples (buffers are preallocated).
        threshold: peak level the gain aims at, linear (default 0.89 ≈ −1 dBFS).
        release: release time constant, s.
        ceiling: hard clip level, linear.
    """

    def __init__(
        self,
        sample_rate: int,
        max_block: int,
        *,
        threshold: float = 0.89,
        release: float = 0.15,
        ceiling: float = 1.0,
    ) -> None:
        if not (0 < threshold <= ceiling) or release <= 0 or sample_rate <= 0 or max_block < 1:
            raise ValueError("need 0 < threshold <= ceiling, release > 0, sample_rate > 0, max_block >= 1")
        self.sample_rate = int(sample_rate)
        self.threshold = float(threshold)
        self.ceiling = float(ceiling)
        self.release = float(release)
        #: Current gain, linear (1 = not limiting).
        self.gain = 1.0
        self._index = np.arange(max_block, dtype=np.float32)
        self._work = np.zeros(max_block, dtype=np.float32)
        self._rel_per_sample = math.exp(-1.0 / (self.release * self.sample_rate))
        #: Blocks in which the limiter lowered the gain.
        self.active_blocks = 0
        #: Blocks that contained NaN or ±inf (replaced by 0).
        self.sanitized_blocks = 0

    def reset(self) -> None:
        """Back to unity gain."""
        self.gain = 1.0

    def process(self, block: np.ndarray) -> None:
        """Sanitise and limit ``block: float32[n]`` in place (``n`` ≤ ``max_block``)."""
        n = block.shape[0]
        if n == 0:
            return
        work = self._work[:n]
        np.abs(block, out=work)
        peak = float(work.max())
        if not math.isfinite(peak):  # rare path: zero the non-finite samples
            self.sanitized_blocks += 1
            np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
            np.abs(block, out=work)
            peak = float(work.max())
        target = self.threshold / peak if peak > self.threshold else 1.0
        g0 = self.gain
        if target < g0:
            self.gain = target
            self.active_blocks += 1
            block *= target
        else:
            g1 = min(1.0 - (1.0 - g0) * self._rel_per_sample**n, target)
            if g0 != 1.0 or g1 != 1.0:
                np.multiply(self._index[:n], (g1 - g0) / n, out=work)
                work += g0
                block *= work
            self.gain = g1
        np.clip(block, -self.ceiling, self.ceiling, out=block)
