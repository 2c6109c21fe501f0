"""Hand-drawn descriptor curves for a few archetypal impacts (kick, snare, hat, tom, clap).

Used by the demo and as a starting point when drawing curves by hand: each
preset is an exponential decay of loudness with spectral descriptors gliding
from an attack value to a tail value, in the units of :mod:`neurorack.descriptors`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurorack.descriptors import DescriptorConfig


@dataclass(frozen=True)
class ImpactShape:
    """Parameters of a drawn impact.

    Attributes:
        duration: seconds.
        peak_rms: loudest frame rms (linear, full scale 1).
        decay: time for the rms to fall by 60 dB, seconds.
        centroid, bandwidth, rolloff: attack values in Hz (tail values are ``tail`` times them).
        flatness: 0 (tonal) .. 1 (noise).
        f0: pitch in Hz (glides down by ``pitch_drop`` ratio over the decay).
        zcr: zero-crossing rate (crossings per sample).
        tail: ratio of tail to attack for spectral descriptors (darkening).
        pitch_drop: ratio of final to initial f0.
    """

    duration: float = 0.8
    peak_rms: float = 0.2
    decay: float = 0.5
    centroid: float = 2500.0
    bandwidth: float = 2500.0
    rolloff: float = 5000.0
    flatness: float = 0.05
    f0: float = 120.0
    zcr: float = 0.05
    tail: float = 0.5
    pitch_drop: float = 0.8


PRESETS: dict[str, ImpactShape] = {
    "kick": ImpactShape(0.8, 0.3, 0.45, 400, 600, 700, 0.002, 55, 0.005, 0.4, 0.7),
    "snare": ImpactShape(0.6, 0.2, 0.3, 3500, 3000, 8000, 0.2, 190, 0.12, 0.6, 0.95),
    "hat": ImpactShape(0.35, 0.08, 0.12, 9000, 4000, 14000, 0.45, 4000, 0.4, 0.9, 1.0),
    "tom": ImpactShape(0.9, 0.25, 0.6, 700, 900, 1500, 0.01, 110, 0.02, 0.6, 0.85),
    "clap": ImpactShape(0.5, 0.15, 0.25, 2000, 1800, 4500, 0.3, 900, 0.1, 0.8, 1.0),
}


def impact_curves(shape: ImpactShape, config: DescriptorConfig) -> np.ndarray:
    """Render an :class:`ImpactShape` to descriptor curves ``float32[frames, 7]`` for ``config``."""
    n = config.n_frames(round(shape.duration * config.sample_rate))
    t = np.arange(n) * config.hop_length / config.sample_rate
    env = np.exp(-t * np.log(1000.0) / max(shape.decay, 1e-3))  # -60 dB at `decay`
    glide = np.clip(t / max(shape.decay, 1e-3), 0, 1)
    spectral = 1 + (shape.tail - 1) * glide
    f0 = shape.f0 * (1 + (shape.pitch_drop - 1) * glide)
    curves = np.stack(
        [
            shape.peak_rms * env,
            np.full(n, shape.zcr),
            shape.rolloff * spectral,
            np.full(n, shape.flatness),
            shape.bandwidth * spectral,
            shape.centroid * spectral,
            f0,
        ],
        axis=1,
    )
    return curves.astype(np.float32)
