"""Volts in, control values out: the CV calibration of the instrument (SPEC §4).

A CV is first normalised to ``u`` in −1…+1: with the Eurorack bipolar range
(``cv_range = 5``) ``u = volts / 5`` (−5 V … +5 V); with the unipolar range
(``cv_range = 10``) ``u = (volts − 5) / 5`` (0 V … 10 V, centre 5 V). Values
outside the range are clamped. ``u`` then drives its target:

============== ============================================ ===============================
target         effect of ``u`` (−1 … 0 … +1)                 unit of the change
============== ============================================ ===============================
position       anchor position 0 … 0.5 … 1                   (0..1 across the anchors)
rms            loudness gain −24 dB … 0 … +24 dB            × 10^(24·u/20)
zcr            percussivity × ½ … 1 … 2                     one octave each way
rolloff        noisiness × ½ … 1 … 2                        one octave each way (Hz)
flatness       tonality offset −0.5 … 0 … +0.5              0..1 scale, clipped
bandwidth      richness × ½ … 1 … 2                         one octave each way (Hz)
centroid       brightness × ½ … 1 … 2                       one octave each way (Hz)
f0             pitch × 1/32 … 1 … 32: 1 V/octave (bipolar)  five octaves each way (Hz)
inharmonicity  partial stretch β offset −1e-3 … 0 … +1e-3   added to the model's β
============== ============================================ ===============================

0 V (bipolar) or 5 V (unipolar) therefore leaves every descriptor as the
anchors have it. Gates are high at or above ``gate_threshold`` volts (SPEC: +1 V)
and low again below half of it (hysteresis).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from neurorack.descriptors import DESCRIPTOR_NAMES, descriptor_index

#: Targets a CV can drive: the anchor position, any descriptor, or the model's inharmonicity knob.
TARGETS: tuple[str, ...] = ("position", *DESCRIPTOR_NAMES, "inharmonicity")

#: Accepted CV ranges, volts: 5 → bipolar −5…+5 V, 10 → unipolar 0…10 V.
CV_RANGES: tuple[float, ...] = (5.0, 10.0)

#: Loudness change at full CV, dB.
RMS_RANGE_DB = 24.0
#: Octaves at full CV for zcr, rolloff, bandwidth and centroid.
FREQ_RANGE_OCTAVES = 1.0
#: Octaves at full CV for f0 (5 octaves over 5 V: 1 V/octave in the bipolar range).
F0_RANGE_OCTAVES = 5.0
#: Flatness offset at full CV.
FLATNESS_RANGE = 0.5
#: Inharmonicity (β offset) at full CV.
INHARMONICITY_RANGE = 1e-3
#: Volts of a CV or gate input are refused beyond this (Eurorack rails are ±12 V).
MAX_VOLTS = 12.0


def target_name(target: str) -> str:
    """Canonical target name for ``target`` (descriptor aliases such as ``brightness`` allowed).

    Raises:
        ValueError: not a target (the message lists them).
    """
    key = target.strip().lower()
    if key in ("position", "inharmonicity"):
        return key
    try:
        return DESCRIPTOR_NAMES[descriptor_index(key)]
    except ValueError:
        raise ValueError(
            f"unknown CV target {target!r}; targets: {', '.join(TARGETS)} (or a perceptual alias)"
        ) from None


def check_cv_range(cv_range: float) -> float:
    """``cv_range`` as one of :data:`CV_RANGES`.

    Raises:
        ValueError: anything else.
    """
    if cv_range not in CV_RANGES:
        raise ValueError(f"cv_range must be 5 (bipolar −5…+5 V) or 10 (unipolar 0…10 V), got {cv_range}")
    return float(cv_range)


def normalise(volts: float, cv_range: float = 5.0) -> float:
    """``u`` in −1…+1 for ``volts`` in the given range (see the module docstring); non-finite → 0."""
    if not math.isfinite(volts):
        return 0.0
    u = volts / 5.0 if cv_range == 5.0 else (volts - 5.0) / 5.0
    return min(1.0, max(-1.0, u))


def volts_for(u: float, cv_range: float = 5.0) -> float:
    """Inverse of :func:`normalise`: the volts that give ``u`` (−1…+1)."""
    u = min(1.0, max(-1.0, u))
    return 5.0 * u if cv_range == 5.0 else 5.0 * u + 5.0


def position(u: float) -> float:
    """Anchor position 0…1 for ``u`` −1…+1."""
    return min(1.0, max(0.0, 0.5 * (u + 1.0)))


def scale_for(target: str, u: float) -> float:
    """Multiplicative factor a CV applies to a ratio descriptor (rms, zcr, rolloff, bandwidth, centroid, f0)."""
    if target == "rms":
        return float(10.0 ** (RMS_RANGE_DB * u / 20.0))
    if target == "f0":
        return float(2.0 ** (F0_RANGE_OCTAVES * u))
    return float(2.0 ** (FREQ_RANGE_OCTAVES * u))


def offset_for(target: str, u: float) -> float:
    """Additive change a CV applies to ``flatness`` (0..1 scale) or ``inharmonicity`` (β)."""
    if target == "flatness":
        return FLATNESS_RANGE * u
    if target == "inharmonicity":
        return INHARMONICITY_RANGE * u
    raise ValueError(f"{target} is scaled, not offset")


def descriptor_edits(
    volts: Sequence[float], assignments: Mapping[int, str], offsets: Mapping[str, float], cv_range: float = 5.0
) -> tuple[dict[str, float], dict[str, float], float]:
    """The descriptor edits the CVs and offsets ask for (steps 3–5 of the renderer, and live transfer).

    Args:
        volts: volts of CV 1, 2, … (index ``cv - 1``).
        assignments: CV index -> target (:data:`TARGETS`).
        offsets: descriptor offsets in their units (``/neurorack/descriptor/<name>``); an
            ``inharmonicity`` entry is a β offset.
        cv_range: 5 (bipolar) or 10 (unipolar).

    Returns:
        ``(scale, offset, inharmonicity)``: factors per descriptor (rms, zcr, rolloff, bandwidth,
        centroid, f0), offsets per descriptor (flatness CVs add to the flatness offset), and the β
        offset of the ``inharmonicity`` CVs and offset. ``position`` CVs are left out (the caller
        reads them).
    """
    scale: dict[str, float] = {}
    offset: dict[str, float] = dict(offsets)
    inharmonicity = offset.pop("inharmonicity", 0.0)
    for cv, target in assignments.items():
        if target == "position":
            continue
        u = normalise(volts[cv - 1], cv_range)
        if target == "inharmonicity":
            inharmonicity += offset_for(target, u)
        elif target == "flatness":
            offset[target] = offset.get(target, 0.0) + offset_for(target, u)
        else:
            scale[target] = scale.get(target, 1.0) * scale_for(target, u)
    return scale, offset, inharmonicity


def velocity_gain(velocity: float, range_db: float = 24.0) -> float:
    """Linear gain of a hit with ``velocity`` 0…1 (MIDI velocity / 127): 1 → 0 dB, 0 → −``range_db`` dB."""
    v = min(1.0, max(0.0, velocity)) if math.isfinite(velocity) else 1.0
    return float(10.0 ** (range_db * (v - 1.0) / 20.0))
