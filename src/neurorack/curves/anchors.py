"""Descriptor curves of reference sounds ("anchors") and the edits a player makes to them (SPEC §3, §4).

Pure NumPy, no model needed. Curves are always ``float[frames, 7]`` in the
units and column order of :data:`neurorack.descriptors.DESCRIPTOR_NAMES`.

* :func:`resample_curves` stretches curves in time to a frame count;
* :func:`interpolate_curves` morphs between two anchors, :func:`position_curves`
  across an ordered list of them (what CV 1 drives);
* :func:`edit_curves` scales, offsets or replaces single descriptors (by name or
  perceptual alias: ``brightness`` = ``centroid`` ...), :func:`parse_edits` reads
  the ``NAME=VALUE`` syntax of ``neurorack generate --set``;
* :func:`select_anchors` picks diverse reference sounds from a corpus.

**Interpolation domain.** rms, rolloff, bandwidth, centroid and f0 are ratio
quantities (amplitudes and frequencies), so they are interpolated geometrically
(linearly in log): half way between an rms of 0.1 and 0.4 is 0.2, between 100 Hz
and 400 Hz is 200 Hz. zcr and flatness live on bounded 0..1 scales and are
interpolated linearly. Zeros (silence has centroid 0 by librosa's convention) are
floored before the log (:data:`GEOMETRIC_FLOORS`); results at the floor come back
as 0, so silence stays silent.

**Time alignment.** Two anchors usually differ in length. Both are time-normalised
(first frame at 0, last at 1) and resampled, linearly in the interpolation domain,
to the interpolated length ``round((1 - t) * len(a) + t * len(b))``: the result
at ``t = 0`` is exactly ``a``, at ``t = 1`` exactly ``b``, and the decay time
morphs with everything else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from neurorack.descriptors import DESCRIPTOR_NAMES, N_DESCRIPTORS, PERCEPTUAL_NAMES, descriptor_index
from neurorack.errors import NeurorackError

#: Columns interpolated geometrically (in log): rms, rolloff, bandwidth, centroid, f0.
GEOMETRIC: tuple[int, ...] = (0, 2, 4, 5, 6)
#: Columns interpolated linearly: zcr, flatness (0..1 scales).
LINEAR: tuple[int, ...] = (1, 3)
#: Floor applied before taking the log of a geometric column (rms: linear amplitude; others: Hz).
GEOMETRIC_FLOORS: dict[int, float] = {0: 1e-6, 2: 1.0, 4: 1.0, 5: 1.0, 6: 1.0}
#: Columns bounded to 0..1 after an edit (zcr, flatness); every column is kept >= 0.
UNIT_INTERVAL: tuple[int, ...] = (1, 3)


def valid_names() -> str:
    """``"rms (loudness), zcr (percussivity), ..."``: the names :func:`edit_curves` accepts."""
    return ", ".join(f"{n} ({PERCEPTUAL_NAMES[n]})" for n in DESCRIPTOR_NAMES)


def column(name: str) -> int:
    """Column of a descriptor by name or perceptual alias.

    Raises:
        NeurorackError: unknown name (the message lists the valid ones).
    """
    try:
        return descriptor_index(name)
    except ValueError:
        raise NeurorackError(f"unknown descriptor {name!r}; valid: {valid_names()}") from None


def check_curves(curves: np.ndarray, what: str = "curves") -> np.ndarray:
    """Validate ``float[frames, 7]`` (at least one frame, finite) and return it as float64."""
    arr = np.asarray(curves, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != N_DESCRIPTORS or arr.shape[0] == 0:
        raise NeurorackError(f"{what} must have shape [frames >= 1, {N_DESCRIPTORS}], got {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise NeurorackError(f"{what} contain NaN or infinite values")
    return arr


def _to_domain(curves: np.ndarray) -> np.ndarray:
    out = curves.copy()
    for col in GEOMETRIC:
        out[:, col] = np.log(np.maximum(curves[:, col], GEOMETRIC_FLOORS[col]))
    return out


def _from_domain(values: np.ndarray) -> np.ndarray:
    out = values.copy()
    for col in GEOMETRIC:
        floor = GEOMETRIC_FLOORS[col]
        lin = np.exp(values[:, col])
        out[:, col] = np.where(lin <= floor * (1 + 1e-6), 0.0, lin)
    return out


def _resample(values: np.ndarray, frames: int) -> np.ndarray:
    """Linear resampling of ``[n, 7]`` on normalised time to ``[frames, 7]`` (identity when equal)."""
    n = values.shape[0]
    if n == frames:
        return values.copy()
    if n == 1:
        return np.repeat(values, frames, axis=0)
    src = np.linspace(0.0, 1.0, n)
    dst = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    return np.stack([np.interp(dst, src, values[:, c]) for c in range(values.shape[1])], axis=1)


def resample_curves(curves: np.ndarray, frames: int) -> np.ndarray:
    """Stretch ``curves: float[n, 7]`` in time to ``float32[frames, 7]``.

    Time-normalised linear resampling, in log for the geometric columns (an
    exponential decay stays exponential). ``frames == n`` returns a copy.
    """
    arr = check_curves(curves)
    if frames < 1:
        raise NeurorackError(f"need at least one frame, got {frames}")
    if frames == arr.shape[0]:
        return arr.astype(np.float32)
    return _from_domain(_resample(_to_domain(arr), frames)).astype(np.float32)


def interpolate_curves(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Morph between two anchors: ``t = 0`` gives ``a``, ``t = 1`` gives ``b``.

    Args:
        a, b: ``float[frames_a, 7]`` and ``float[frames_b, 7]`` descriptor curves.
        t: position between them, 0..1.

    Returns:
        ``float32[round((1 - t) * frames_a + t * frames_b), 7]``: both curves
        time-normalised and resampled to that length, then mixed geometrically for
        rms, rolloff, bandwidth, centroid and f0 and linearly for zcr and flatness
        (see the module docstring).

    Raises:
        NeurorackError: bad shapes, non-finite values, ``t`` outside 0..1.
    """
    ca, cb = check_curves(a, "anchor a"), check_curves(b, "anchor b")
    if not (math.isfinite(t) and 0.0 <= t <= 1.0):
        raise NeurorackError(f"interpolation position must lie in 0..1, got {t}")
    if t == 0.0:
        return ca.astype(np.float32)
    if t == 1.0:
        return cb.astype(np.float32)
    frames = max(1, round((1 - t) * ca.shape[0] + t * cb.shape[0]))
    xa = _resample(_to_domain(ca), frames)
    xb = _resample(_to_domain(cb), frames)
    return _from_domain((1 - t) * xa + t * xb).astype(np.float32)


def position_curves(anchors: Sequence[np.ndarray], position: float) -> np.ndarray:
    """Curves at ``position`` (0..1) along an ordered list of anchors (CV 1 of the instrument).

    The anchors sit evenly on 0..1 (``k / (n - 1)``); between two neighbours the
    result is :func:`interpolate_curves` of them. Exactly an anchor's curves at its
    position; a single anchor is returned whatever the position.

    Args:
        anchors: ``n >= 1`` arrays ``float[frames_k, 7]``, in playing order.
        position: 0..1.

    Returns:
        ``float32[frames, 7]``.
    """
    if len(anchors) == 0:
        raise NeurorackError("no anchors to interpolate between")
    if not (math.isfinite(position) and 0.0 <= position <= 1.0):
        raise NeurorackError(f"position must lie in 0..1, got {position}")
    if len(anchors) == 1:
        return check_curves(anchors[0], "anchor").astype(np.float32)
    segment = position * (len(anchors) - 1)
    i = min(math.floor(segment), len(anchors) - 2)
    return interpolate_curves(anchors[i], anchors[i + 1], min(max(segment - i, 0.0), 1.0))


def _by_column(values: Mapping[str, float], what: str) -> dict[int, float]:
    out: dict[int, float] = {}
    for name, value in values.items():
        col = column(name)
        if col in out:
            raise NeurorackError(f"{DESCRIPTOR_NAMES[col]} given twice in {what} (names and aliases are the same)")
        v = float(value)
        if not math.isfinite(v):
            raise NeurorackError(f"{what} of {name} must be finite, got {value}")
        out[col] = v
    return out


def edit_curves(
    curves: np.ndarray,
    *,
    scale: Mapping[str, float] | None = None,
    offset: Mapping[str, float] | None = None,
    absolute: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Edit single descriptors of ``curves: float[frames, 7]``; returns a new ``float32[frames, 7]``.

    Keys are descriptor names or perceptual aliases (``loudness`` = ``rms``,
    ``percussivity`` = ``zcr``, ``noisiness`` = ``rolloff``, ``tonality`` =
    ``flatness``, ``richness`` = ``bandwidth``, ``brightness`` = ``centroid``,
    ``pitch`` = ``f0``); values are in the descriptor's unit. Per descriptor, in order:

    1. ``absolute``: for rms, rescale the curve so its **peak** is the value (the
       loudness envelope keeps its shape; a silent curve becomes constant); for
       every other descriptor, a constant curve at the value;
    2. ``scale``: multiply by the factor (>= 0);
    3. ``offset``: add the value (Hz for frequencies, linear amplitude for rms);
    4. clip to the descriptor's range: >= 0, and <= 1 for zcr and flatness.

    Raises:
        NeurorackError: unknown name (listing the valid ones), a descriptor given
            twice in one mapping, a negative scale, a negative absolute value.
    """
    out = check_curves(curves).copy()
    absolute_cols = _by_column(absolute or {}, "absolute")
    scale_cols = _by_column(scale or {}, "scale")
    offset_cols = _by_column(offset or {}, "offset")
    for col, value in absolute_cols.items():
        if value < 0:
            raise NeurorackError(f"{DESCRIPTOR_NAMES[col]} cannot be negative, got {value}")
        if col == 0:
            peak = float(out[:, 0].max())
            out[:, 0] = out[:, 0] * (value / peak) if peak > 0 else value
        else:
            out[:, col] = value
    for col, factor in scale_cols.items():
        if factor < 0:
            raise NeurorackError(f"scale of {DESCRIPTOR_NAMES[col]} cannot be negative, got {factor}")
        out[:, col] *= factor
    for col, delta in offset_cols.items():
        out[:, col] += delta
    np.maximum(out, 0.0, out=out)
    for col in UNIT_INTERVAL:
        np.minimum(out[:, col], 1.0, out=out[:, col])
    return out.astype(np.float32)


def edit_ratios(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """How far an edit moved each descriptor: ratio of the medians of ``after`` to ``before``.

    For :meth:`neurorack.generators.base.Generator.focus` (the engine and ``generate --set`` name the
    descriptors a player moved). Both ``float[frames, 7]``, the same frames (an edit, not a stretch);
    descriptors whose median did not change, or was 0 before, are left out.

    Returns:
        descriptor name -> ratio (> 0).
    """
    a, b = check_curves(before), check_curves(after)
    if a.shape != b.shape:
        raise NeurorackError(f"edit_ratios needs curves of one shape, got {list(a.shape)} and {list(b.shape)}")
    ratios: dict[str, float] = {}
    for col, name in enumerate(DESCRIPTOR_NAMES):
        m0, m1 = float(np.median(a[:, col])), float(np.median(b[:, col]))
        if m0 > 0 and m1 > 0 and m1 != m0:
            ratios[name] = m1 / m0
    return ratios


_NUMBER = r"[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?"
_EDIT_RE = re.compile(
    rf"""^(?:
        (?P<pct>[+-]?{_NUMBER})\s*% |
        (?P<db>[+-]{_NUMBER})\s*db |
        (?:x|\*|×)\s*(?P<mul>{_NUMBER}) | (?P<mul2>{_NUMBER})\s*x |
        (?P<off>[+-]{_NUMBER})\s*(?P<offunit>k?hz)? |
        (?P<abs>{_NUMBER})\s*(?P<absunit>k?hz)?
    )$""",
    re.VERBOSE | re.IGNORECASE,
)

#: Help text of the ``NAME=VALUE`` syntax (:func:`parse_edits`).
EDIT_SYNTAX = (
    "NAME=VALUE sets an absolute value (rms: the peak; 3000, 3kHz), NAME=+30%/-20% is relative "
    "(80% = x0.8), NAME=x1.5 scales, NAME=+6dB/-6dB scales by decibels, NAME=+100/-100 (signed, no %) "
    "adds in the descriptor's unit"
)


def parse_edits(items: Sequence[str]) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Parse ``neurorack generate --set`` items into ``(scale, offset, absolute)`` for :func:`edit_curves`.

    Syntax of each item, ``NAME=VALUE`` (NAME: descriptor or perceptual alias):

    ============== ======================================================
    ``rms=0.3``     absolute (rms: peak; others: constant); ``3kHz`` ok
    ``centroid=+30%`` relative: scale by 1.3 (``-20%``: 0.8; ``80%``: 0.8)
    ``rms=x0.5``    scale by 0.5 (also ``*0.5``, ``0.5x``)
    ``rms=-6dB``    scale by 10 ** (-6 / 20) (sign required)
    ``f0=+100``     offset: add 100 (Hz here); a sign without ``%`` is an offset
    ============== ======================================================

    Keys of the returned dicts are canonical descriptor names. Two items for the
    same descriptor and kind combine (scales multiply, offsets add; the last
    absolute wins).

    Raises:
        NeurorackError: bad syntax or unknown name, in one line.
    """
    scale: dict[str, float] = {}
    offset: dict[str, float] = {}
    absolute: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise NeurorackError(f"bad --set {item!r}: expected NAME=VALUE ({EDIT_SYNTAX})")
        key = DESCRIPTOR_NAMES[column(name)]
        m = _EDIT_RE.match(value.strip())
        if m is None:
            raise NeurorackError(f"bad --set value {value.strip()!r} for {key}: {EDIT_SYNTAX}")
        if m["pct"] is not None:
            text = m["pct"]
            factor = 1 + float(text) / 100 if text[0] in "+-" else float(text) / 100
            if factor < 0:
                raise NeurorackError(f"bad --set {item!r}: a relative change cannot go below -100%")
            scale[key] = scale.get(key, 1.0) * factor
        elif m["db"] is not None:
            scale[key] = scale.get(key, 1.0) * 10 ** (float(m["db"]) / 20)
        elif m["mul"] is not None or m["mul2"] is not None:
            scale[key] = scale.get(key, 1.0) * float(m["mul"] or m["mul2"])
        elif m["off"] is not None:
            unit = 1000.0 if (m["offunit"] or "").lower() == "khz" else 1.0
            offset[key] = offset.get(key, 0.0) + float(m["off"]) * unit
        else:
            unit = 1000.0 if (m["absunit"] or "").lower() == "khz" else 1.0
            absolute[key] = float(m["abs"]) * unit
    return scale, offset, absolute


# ------------------------------------------------------------------------------------------------
# Choosing anchors
# ------------------------------------------------------------------------------------------------
def summary_features(curves: np.ndarray, threshold_db: float = -40.0) -> np.ndarray:
    """Summary of one sound for clustering: ``float64[9]``.

    Means over active frames (rms within ``threshold_db`` of the peak) of log rms,
    zcr, log rolloff, flatness, log bandwidth, log centroid, log f0, plus log
    duration (frames) and log peak rms.
    """
    arr = check_curves(curves)
    rms = arr[:, 0]
    peak = float(rms.max())
    mask = rms >= peak * 10 ** (threshold_db / 20) if peak > 0 else np.ones(rms.shape, dtype=bool)
    dom = _to_domain(arr[mask])
    return np.concatenate([dom.mean(axis=0), [math.log(arr.shape[0]), math.log(max(peak, 1e-6))]])


def select_anchors(
    sounds: Mapping[str, np.ndarray] | Sequence[tuple[str, np.ndarray]],
    n: int,
    *,
    seed: int = 0,
) -> tuple[list[str], list[np.ndarray]]:
    """Pick ``n`` diverse reference sounds to store as anchors in a model file.

    k-means (scikit-learn, ``n_init=10``, ``random_state=seed``) on standardised
    :func:`summary_features`; for each centre the sound nearest to it (each sound
    at most once). The chosen anchors are ordered from dark to bright (by the
    mean log centroid of their active frames, ties by name), so the position
    control sweeps brightness. Deterministic for a given input order and seed.

    Args:
        sounds: ``name -> float[frames, 7]`` curves (a mapping or ``(name, curves)`` pairs; names unique).
        n: anchors wanted; all sounds when there are ``<= n`` of them.
        seed: k-means seed.

    Returns:
        ``(names, curves)``: ``n`` names and their ``float32[frames, 7]`` curves, in the same order.
    """
    from sklearn.cluster import KMeans

    pairs = list(sounds.items()) if isinstance(sounds, Mapping) else list(sounds)
    if n < 1:
        raise NeurorackError(f"need at least one anchor, got n={n}")
    if not pairs:
        raise NeurorackError("no sounds to choose anchors from")
    names = [str(name) for name, _ in pairs]
    if len(set(names)) != len(names):
        raise NeurorackError("sound names must be unique to become anchor names")
    curves = [check_curves(c, f"curves of {name}").astype(np.float32) for name, c in pairs]
    features = np.stack([summary_features(c) for c in curves])
    if len(pairs) <= n:
        chosen = list(range(len(pairs)))
    else:
        std = features.std(axis=0)
        z = (features - features.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)
        km = KMeans(n_clusters=n, n_init=10, random_state=seed).fit(z)
        dist = ((z[:, None, :] - km.cluster_centers_[None, :, :]) ** 2).sum(axis=-1)  # [sounds, n]
        chosen = []
        # resolve centres in order of their best match so each gets a distinct sound
        for centre in np.argsort(dist.min(axis=0), kind="stable"):
            order = np.argsort(dist[:, centre], kind="stable")
            chosen.append(int(next(i for i in order if int(i) not in chosen)))
    chosen.sort(key=lambda i: (features[i, 5], names[i]))
    return [names[i] for i in chosen], [curves[i] for i in chosen]
