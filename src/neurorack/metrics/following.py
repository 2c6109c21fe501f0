"""How closely a render followed its drawn curves, and which requests could not exist (SPEC §3, §6).

A :class:`FollowReport` compares the descriptors measured on a render with the requested ones, per
descriptor, as the median over active frames of ``log2(measured / requested)`` (octaves; 0 is exact).
A descriptor misses when that median is more than :data:`TOLERANCE_OCTAVES` away (f0: more than a
semitone, judged only on tonal requests and frames YIN can measure). Some drawings ask for spectra
that no sound has: the 85 % roll-off quantile of a magnitude spectrum with centroid ``c`` and
bandwidth ``b`` lies within ``c - 0.42 b … c + 2.38 b`` (Cantelli's inequality), and a spectrum on
``0 … Nyquist`` has ``b² ≤ c (Nyquist - c)`` (Bhatia–Davis). :func:`impossible_requests` finds the
frames that break those bounds, and the report names the descriptor a generator has to give up there.

Also the level: the peak in dBFS and, above 0 dBFS, the gain that brings it to
:data:`HEADROOM_DBFS` (a float WAV keeps such a peak; 24-bit FLAC and Ogg clip it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from neurorack.descriptors import DESCRIPTOR_NAMES, DescriptorConfig, describe_with, loud_frames

#: A descriptor is followed when its median |log2(measured / requested)| is at most this (octaves).
TOLERANCE_OCTAVES = 0.2
#: f0 is followed within a semitone (octaves).
F0_TOLERANCE_OCTAVES = 1.0 / 12.0
#: Descriptors judged against :data:`TOLERANCE_OCTAVES` (zcr and flatness are reported, not judged).
JUDGED = ("rms", "centroid", "bandwidth", "rolloff")
#: Bounds on the roll-off (85 % quantile) in bandwidths from the centroid: Cantelli's inequality.
ROLLOFF_ABOVE = math.sqrt(0.85 / 0.15)
ROLLOFF_BELOW = math.sqrt(0.15 / 0.85)
#: A descriptor counts as impossible in a drawing when at least this share of its active frames is.
IMPOSSIBLE_SHARE = 0.25
#: Frames within this many dB of the request's loudest are judged (as ``neurorack demo`` prints them).
FOLLOW_ACTIVE_DB = 40.0
#: Measured values below this (silence) count as this.
MEASURED_FLOOR = 1e-9
#: Where a too-loud render is brought to by the suggested gain, dBFS.
HEADROOM_DBFS = -0.3


@dataclass(frozen=True)
class Miss:
    """One descriptor a render did not follow.

    Attributes:
        descriptor: name (:data:`neurorack.descriptors.DESCRIPTOR_NAMES`).
        octaves: median ``log2(measured / requested)`` over the judged frames (signed).
        impossible: share of the active frames whose request for it cannot exist (0 when it is a miss
            of the generator, not of the drawing).
        bounds: for an impossible request, the median range the bounds allow there (Hz), else NaNs.
    """

    descriptor: str
    octaves: float
    impossible: float = 0.0
    bounds: tuple[float, float] = (math.nan, math.nan)

    def describe(self) -> str:
        """One line for a person: what was missed, by how much, and why when the drawing is to blame."""
        factor = 2.0**self.octaves
        if self.descriptor == "f0":
            size = f"{12 * self.octaves:+.1f} semitones"
        else:
            size = f"{self.octaves:+.2f} octave ({factor:.2f}x the request)"
        text = f"{self.descriptor} missed by {size}"
        if self.impossible > 0:
            text += (
                f"; the drawing asks for a spectrum that cannot exist in {100 * self.impossible:.0f} % of its frames"
                f" (its centroid and bandwidth allow a {self.descriptor} of"
                f" ~{self.bounds[0]:.0f}-{self.bounds[1]:.0f} Hz)"
            )
        return text


@dataclass(frozen=True)
class FollowReport:
    """Requested vs measured descriptors of one render.

    Attributes:
        octaves: descriptor -> median ``log2(measured / requested)`` over active frames (NaN: not measured;
            f0 over the frames YIN can measure).
        misses: descriptors beyond tolerance, worst first.
        impossible: descriptor -> share of active frames whose request breaks the bounds.
        peak: largest absolute sample (full scale 1).
        tonal: whether f0 was judged (a tonal request).
    """

    octaves: dict[str, float]
    misses: tuple[Miss, ...]
    impossible: dict[str, float] = field(default_factory=dict)
    peak: float = 0.0
    tonal: bool = False

    @property
    def followed(self) -> bool:
        """True when no descriptor missed."""
        return not self.misses

    @property
    def peak_dbfs(self) -> float:
        """Peak level in dBFS (-inf for silence)."""
        return 20.0 * math.log10(self.peak) if self.peak > 0 else -math.inf

    @property
    def clipping_gain_db(self) -> float | None:
        """Gain (dB, negative) that brings a peak above 0 dBFS to :data:`HEADROOM_DBFS`; None when it fits."""
        if self.peak <= 1.0:
            return None
        return HEADROOM_DBFS - self.peak_dbfs

    def warnings(self) -> list[str]:
        """Lines for a person: the level above full scale and each miss."""
        lines = []
        gain = self.clipping_gain_db
        if gain is not None:
            lines.append(
                f"peaks at {self.peak_dbfs:+.1f} dBFS, above full scale: a float WAV keeps it, 24-bit FLAC and Ogg "
                f"clip it; a gain of {gain:.1f} dB (--set rms=x{10 ** (gain / 20):.3g}) brings it to "
                f"{HEADROOM_DBFS:g} dBFS"
            )
        lines.extend(miss.describe() for miss in self.misses)
        return lines


def impossible_requests(curves: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """Frames of ``curves: float[frames, 7]`` whose spectral request cannot exist.

    Returns:
        ``{"rolloff": bool[frames], "bandwidth": bool[frames]}``: roll-off outside the Cantelli bounds of
        the requested centroid and bandwidth; bandwidth above the Bhatia–Davis bound of the centroid.
    """
    d = np.asarray(curves, dtype=np.float64)
    nyquist = sample_rate / 2.0
    centroid = np.clip(d[:, 5], 0.0, nyquist)
    bandwidth, rolloff = d[:, 4], d[:, 2]
    rolloff_bad = (rolloff > centroid + ROLLOFF_ABOVE * bandwidth) | (rolloff < centroid - ROLLOFF_BELOW * bandwidth)
    bandwidth_bad = bandwidth**2 > centroid * (nyquist - centroid)
    return {"rolloff": rolloff_bad, "bandwidth": bandwidth_bad}


def follow_report(
    curves: np.ndarray,
    audio: np.ndarray,
    config: DescriptorConfig,
    *,
    tonal: bool | None = None,
    measured: np.ndarray | None = None,
) -> FollowReport:
    """Measure ``audio: float[frames * hop]`` and compare it with the requested ``curves: float[frames, 7]``.

    Args:
        config: the analysis the curves are in (and the audio is measured with).
        tonal: judge f0 (None: when the request is tonal, :func:`neurorack.evaluation.tonal.is_tonal` with its
            median f0 inside the YIN range).
        measured: the audio's descriptors when already computed (``describe_with(audio, config)``).
    """
    from neurorack.evaluation.tonal import is_tonal

    req = np.asarray(curves, dtype=np.float64)
    got = describe_with(audio, config) if measured is None else measured
    got = np.asarray(got, dtype=np.float64)[: len(req)]
    active = loud_frames(req, FOLLOW_ACTIVE_DB)
    if tonal is None:  # one request, not a control sweep: its own median f0 must lie in the YIN range
        tonal = is_tonal(req, config, scales=(1.0,))
    octaves: dict[str, float] = {}
    for i, name in enumerate(DESCRIPTOR_NAMES):
        ok = active & (req[:, i] > 0)
        if name == "f0":  # YIN cannot measure outside its range, and its "no pitch" (0) is not a measurement
            ok &= (req[:, i] >= config.fmin) & (req[:, i] <= config.fmax) & (got[:, i] > 0)
        # a silent render measures 0 (rms, spectral descriptors): floored, it is a miss by ~30 octaves
        ratio = np.maximum(got[ok, i], MEASURED_FLOOR) / req[ok, i]
        octaves[name] = float(np.median(np.log2(ratio))) if ok.any() else float("nan")
    bad = impossible_requests(req, config.sample_rate)
    shares = {name: float(mask[active].mean()) if active.any() else 0.0 for name, mask in bad.items()}
    bounds = _allowed(req[active], config.sample_rate) if active.any() else {}
    misses = []
    for name in (*JUDGED, "f0"):
        value = octaves[name]
        limit = F0_TOLERANCE_OCTAVES if name == "f0" else TOLERANCE_OCTAVES
        if (name == "f0" and not tonal) or not math.isfinite(value) or abs(value) <= limit:
            continue
        share = shares.get(name, 0.0)
        impossible = share if share >= IMPOSSIBLE_SHARE else 0.0
        allowed = bounds.get(name, (math.nan, math.nan)) if impossible else (math.nan, math.nan)
        misses.append(Miss(name, value, impossible, allowed))
    misses.sort(key=lambda m: -abs(m.octaves))
    peak = float(np.abs(audio).max()) if np.size(audio) else 0.0
    return FollowReport(octaves, tuple(misses), shares, peak, bool(tonal))


def _allowed(curves: np.ndarray, sample_rate: int) -> dict[str, tuple[float, float]]:
    """Median allowed range (Hz) of the roll-off and the bandwidth over ``curves: float[frames, 7]``."""
    centroid, bandwidth = np.clip(curves[:, 5], 0.0, sample_rate / 2.0), curves[:, 4]
    return {
        "rolloff": (
            float(np.median(np.maximum(centroid - ROLLOFF_BELOW * bandwidth, 0.0))),
            float(np.median(np.minimum(centroid + ROLLOFF_ABOVE * bandwidth, sample_rate / 2.0))),
        ),
        "bandwidth": (0.0, float(np.median(np.sqrt(centroid * (sample_rate / 2.0 - centroid))))),
    }
