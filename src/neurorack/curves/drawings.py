"""Random plausible drawings: descriptor curves a person might draw for an impact (SPEC §3).

What a player draws is not a training sound: a loudness envelope that rises fast and decays, brightness,
richness and roll-off gliding from an attack value to a darker tail, a pitch that may glide. The drawing
generator samples such curves over the ranges of real hits (kick to hi-hat), seeded, so that tests and
``eval`` measure how a generator follows curves it never saw. Every drawing is a spectrum that can exist:
its roll-off lies inside the bounds its centroid and bandwidth allow
(:func:`neurorack.metrics.following.impossible_requests`), its centroid and roll-off below Nyquist.

Pure NumPy. Curves are ``float32[frames, 7]`` in :data:`neurorack.descriptors.DESCRIPTOR_NAMES` order.
"""

from __future__ import annotations

import math

import numpy as np

from neurorack.descriptors import DescriptorConfig
from neurorack.models.impact.presets import ImpactShape, impact_curves

#: Sampling ranges (low, high) of the drawn parameters; Hz, seconds or plain ratios.
DURATION = (0.25, 1.2)
PEAK_RMS = (0.02, 0.5)
CENTROID = (250.0, 9000.0)
#: Bandwidth as a share of the centroid.
SPREAD = (0.5, 1.3)
#: Roll-off placed between the centroid and its upper bound, as a share of the way (0: at the centroid).
ROLLOFF_WAY = (0.15, 0.6)
#: Tail / attack ratio of the spectral descriptors (darkening).
TAIL = (0.4, 1.0)
F0 = (45.0, 800.0)
PITCH_DROP = (0.6, 1.0)
#: Chance that a drawing is tonal (low flatness, a pitch that YIN can follow).
TONAL_SHARE = 0.5


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def random_shape(rng: np.random.Generator, sample_rate: int = 44_100) -> ImpactShape:
    """One random :class:`~neurorack.models.impact.presets.ImpactShape` whose spectrum can exist."""
    from neurorack.metrics.following import ROLLOFF_ABOVE

    duration = rng.uniform(*DURATION)
    decay = rng.uniform(0.25, 0.8) * duration
    centroid = _log_uniform(rng, (CENTROID[0], min(CENTROID[1], 0.25 * sample_rate)))  # low rates: below Nyquist
    bandwidth = centroid * rng.uniform(*SPREAD)
    reach = min(centroid + ROLLOFF_ABOVE * bandwidth, 0.85 * sample_rate / 2)
    rolloff = max(centroid + rng.uniform(*ROLLOFF_WAY) * (reach - centroid), centroid * 1.05)
    tonal = bool(rng.random() < TONAL_SHARE)
    flatness = _log_uniform(rng, (0.001, 0.03) if tonal else (0.05, 0.4))
    f0 = _log_uniform(rng, F0)
    return ImpactShape(
        duration=float(duration),
        peak_rms=_log_uniform(rng, PEAK_RMS),
        decay=float(decay),
        centroid=centroid,
        bandwidth=bandwidth,
        rolloff=rolloff,
        flatness=flatness,
        f0=f0,
        zcr=min(0.5, 2.0 * centroid / sample_rate),
        tail=float(rng.uniform(*TAIL)),
        pitch_drop=float(rng.uniform(*PITCH_DROP)) if tonal else 1.0,
    )


def random_drawings(count: int, config: DescriptorConfig, seed: int = 0) -> list[np.ndarray]:
    """``count`` seeded random drawings for ``config``: ``float32[frames, 7]`` curves each."""
    rng = np.random.default_rng(seed)
    return [impact_curves(random_shape(rng, config.sample_rate), config) for _ in range(count)]


def drawing_batch(count: int, frames: int, config: DescriptorConfig, rng: np.random.Generator) -> np.ndarray:
    """``count`` random drawings fitted to ``frames`` frames: ``float32[count, frames, 7]``, for training.

    A drawing longer than ``frames`` is cut; a shorter one is held at its last frame with the rms at 0
    (silent frames, which losses and metrics leave out as inactive).
    """
    out = np.zeros((count, frames, 7), dtype=np.float32)
    for i in range(count):
        curves = impact_curves(random_shape(rng, config.sample_rate), config)[:frames]
        out[i, : len(curves)] = curves
        out[i, len(curves) :] = curves[-1]
        out[i, len(curves) :, 0] = 0.0
    return out
