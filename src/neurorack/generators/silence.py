"""The silence baseline (SPEC §6): zeros, whatever the descriptors.

The floor every model must beat: its MR-STFT distance is the "silence" calibration point
(≈ 3.7 on real one-shots) and its control response is flagged as degenerate.
"""

from __future__ import annotations

import numpy as np

from neurorack.generators.base import Generator


class Silence(Generator):
    """``generate(curves: float[frames, 7]) -> float32[frames * hop]`` of exact zeros."""

    name = "silence"

    def _generate(self, descriptors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(descriptors.shape[0] * self.hop_length, dtype=np.float32)
