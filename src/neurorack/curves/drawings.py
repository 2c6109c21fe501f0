"""Random plausible drawings: descriptor curves a person might draw for an impact (SPEC §3).

What a player draws is not a training sound: a loudness envelope that rises fast and decays, brightness,
richness and roll-off gliding from an attack value to a darker tail, a pitch that may glide. The drawing
generator samples such curves over the ranges of real hits (kick to hi-hat), seeded, so that tests and
``eval`` measure how a generator follows curves it never saw. Every drawing is a spectrum that can exist:
its roll-off lies inside the bounds its centroid and bandwidth allow
(:func:`neurorack.metrics.following.impossible_requests`), its centroid and roll-off below Nyquist. Its
bandwidth and roll-off keep the relation to the centroid that real hits have (:data:`SPECTRAL_SHAPES`),
and a tonal drawing's pitch sits where real tonal hits have it under their centroid
(:data:`TONAL_CENTROID_PER_F0`):
a dark hit is dark because its energy is low, not because its spectrum is narrow — measured with a
magnitude-weighted spread, every kick and tom has a bandwidth several times its centroid.

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
#: How real hits' spectra are shaped, by centroid: ``(centroid Hz, bandwidth / centroid low, high,
#: (roll-off - centroid) / bandwidth low, high)``, the 10th and 90th percentiles over the frames within
#: 30 dB of each sound's peak of the drum corpus's train split (31,017 frames; centroids within half an
#: octave of each row), interpolated over log centroid. Held-out libraries agree (sonic-pi-samples,
#: hydrogen-data: docs/design-notes.md, "Plausible drawings").
SPECTRAL_SHAPES: tuple[tuple[float, float, float, float, float], ...] = (
    (150.0, 2.36, 6.29, -0.07, 0.11),
    (300.0, 2.66, 5.49, -0.14, 0.08),
    (600.0, 2.04, 4.80, -0.19, 0.25),
    (1200.0, 1.17, 3.41, -0.24, 0.84),
    (2400.0, 0.79, 1.55, 0.39, 1.12),
    (4800.0, 0.57, 1.02, 0.74, 1.15),
    (9600.0, 0.44, 0.70, 0.95, 1.23),
)
#: Tail / attack ratio of the spectral descriptors (darkening).
TAIL = (0.4, 1.0)
F0 = (45.0, 800.0)
#: A tonal drawing's centroid / f0: the 10th and 90th percentiles over the tonal frames (flatness below 0.03,
#: f0 within YIN's range) within 30 dB of each sound's peak of the drum corpus's train split (27,086 frames).
#: A harmonic spectrum's centroid is at least its f0, and six octaves above it YIN reads a harmonic.
TONAL_CENTROID_PER_F0 = (2.0, 54.0)
PITCH_DROP = (0.6, 1.0)
#: Chance that a drawing is tonal (low flatness, a pitch that YIN can follow).
TONAL_SHARE = 0.5


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]))))


def spectral_shape(centroid: float) -> tuple[float, float, float, float]:
    """Ranges of real hits' bandwidth / centroid and (roll-off - centroid) / bandwidth at ``centroid`` (Hz):
    ``(spread_lo, spread_hi, way_lo, way_hi)``, :data:`SPECTRAL_SHAPES` interpolated over log centroid."""
    table = np.asarray(SPECTRAL_SHAPES)
    x = math.log(min(max(centroid, table[0, 0]), table[-1, 0]))
    spread_lo, spread_hi, way_lo, way_hi = (float(np.interp(x, np.log(table[:, 0]), table[:, k])) for k in range(1, 5))
    return spread_lo, spread_hi, way_lo, way_hi


def random_shape(rng: np.random.Generator, sample_rate: int = 44_100) -> ImpactShape:
    """One random :class:`~neurorack.models.impact.presets.ImpactShape` whose spectrum can exist."""
    from neurorack.metrics.following import ROLLOFF_ABOVE, ROLLOFF_BELOW

    duration = rng.uniform(*DURATION)
    decay = rng.uniform(0.25, 0.8) * duration
    centroid = _log_uniform(rng, (CENTROID[0], min(CENTROID[1], 0.25 * sample_rate)))  # low rates: below Nyquist
    tail = float(rng.uniform(*TAIL))
    spread_lo, spread_hi, way_lo, way_hi = spectral_shape(centroid * math.sqrt(tail))  # mid-way through the glide
    nyquist = sample_rate / 2
    widest = 0.9 * math.sqrt(centroid * (nyquist - centroid))  # inside the Bhatia–Davis bound
    bandwidth = min(centroid * _log_uniform(rng, (spread_lo, spread_hi)), widest)
    low = max(centroid - ROLLOFF_BELOW * bandwidth, 0.0)
    high = min(centroid + ROLLOFF_ABOVE * bandwidth, 0.85 * nyquist)
    rolloff = float(np.clip(centroid + rng.uniform(way_lo, way_hi) * bandwidth, low + 0.05 * (high - low), high))
    tonal = bool(rng.random() < TONAL_SHARE)
    flatness = _log_uniform(rng, (0.001, 0.03) if tonal else (0.05, 0.4))
    f0 = _log_uniform(rng, F0)
    if tonal:  # a pitch that fits the centroid, as in real tonal hits
        f0 = float(np.clip(centroid / _log_uniform(rng, TONAL_CENTROID_PER_F0), *F0))
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
        tail=tail,
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
