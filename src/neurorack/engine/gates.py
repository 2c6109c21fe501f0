"""Sample-accurate gate detection on audio-rate inputs (a Schmitt trigger, in place, no allocation)."""

from __future__ import annotations

import numpy as np

#: Most rising edges reported per block.
MAX_EDGES = 16


class GateDetector:
    """Rising edges of one gate input, with hysteresis.

    The gate goes high when the signal reaches ``high`` and low again when it falls
    below ``low`` (SPEC §4: Eurorack gates are high at ≥ +1 V; levels here are in the
    input's own units, i.e. already divided by the volts calibration).

    Args:
        max_block: largest block, samples.

    Attributes:
        state: the gate is high at the end of the last block.
        offsets: ``int64[MAX_EDGES]``, sample offsets of the rising edges of the last block.
    """

    def __init__(self, max_block: int) -> None:
        self._hi = np.zeros(max_block, dtype=np.bool_)
        self._lo = np.zeros(max_block, dtype=np.bool_)
        self.state = False
        self.offsets = np.zeros(MAX_EDGES, dtype=np.int64)

    def process(self, block: np.ndarray, high: float, low: float) -> int:
        """Scan ``block``; returns the number of rising edges, whose offsets are in :attr:`offsets`."""
        n = block.shape[0]
        hi, lo = self._hi[:n], self._lo[:n]
        np.greater_equal(block, high, out=hi)
        np.less(block, low, out=lo)
        i = 0
        count = 0
        while i < n:
            seg = lo[i:] if self.state else hi[i:]
            j = int(seg.argmax())
            if not seg[j]:
                break
            i += j
            self.state = not self.state
            if self.state and count < MAX_EDGES:
                self.offsets[count] = i
                count += 1
        return count
