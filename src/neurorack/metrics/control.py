"""Control response: does scaling a descriptor curve scale the generated descriptor? (SPEC §6)

For one sound's curves ``D: float[frames, 7]`` and one descriptor ``d``:

1. for each scale ``s`` in :data:`DEFAULT_SCALES` (0.5 … 2, about half-octave steps), multiply
   column ``d`` by ``s`` (all other columns unchanged) and generate with a fixed seed;
2. measure the seven descriptors of the output with :func:`neurorack.descriptors.describe`
   (librosa-compatible, same frame/hop/pitch range as the generator's config);
3. keep the **active frames**: frames whose *reference* rms (column 0 of the unscaled input
   ``D``) lies within :data:`ACTIVE_DB` (50 dB) of the sound's peak rms — the same set for
   every scale, so that scaling the rms itself does not change which frames count;
4. summarise each scale by the **median** of the measured descriptor over the active frames,
   clipped from below at a per-descriptor floor (:data:`LOG_FLOORS`) so that the logarithm
   of a silent output (rms 0, centroid 0 Hz ...) stays finite;
5. fit the least-squares slope of ``log(measured)`` against ``log(s)`` (ideal 1: the output
   descriptor is proportional to the requested one) and the Spearman rank correlation
   ``ρ`` between ``s`` and the measured value (ideal 1: monotone response), with
   :func:`scipy.stats.spearmanr`.

A result is **flagged** (``valid=False`` with a ``reason``) when any measured value hit the
floor: the output was silent or had no measurable value there, so its slope means nothing
(e.g. the silence baseline). A measurable output that does not move at all with the scale
(a generator that ignores the control, or nearest-sample playback that keeps choosing the
same sound) is a valid result of **no control**: slope 0 and ``ρ = 0`` (Spearman's ρ is
undefined for constant data; 0 is its value for "no monotone relation"), ``constant=True``.
:func:`control_response_many` gives the median slope and ρ over the valid results of many
sounds, as reported in SPEC §6 tables, so ignoring a control counts against a generator.

With ``focused=True`` each generation runs inside ``generator.focus({descriptor: s})``: the
generator is told which descriptor was scaled, as the engine and ``generate --set`` tell it which
knob a player turned. Scaling one curve while holding the others can ask for an impossible
spectrum (a doubled roll-off at the same centroid and bandwidth); a generator that trades the
requests off can then favour the moved one. The SPEC §6 figure is the default, ``focused=False``:
the curves alone (a generator may still read the moved knob from them, as a model with a descriptor
prior does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from neurorack.descriptors import DESCRIPTOR_NAMES, describe_with, descriptor_index, loud_frames
from neurorack.errors import NeurorackError
from neurorack.generators.base import Generator, check_descriptors

#: Scale factors applied to the descriptor curve (SPEC §6).
DEFAULT_SCALES: tuple[float, ...] = (0.5, 0.71, 1.0, 1.41, 2.0)

#: Frames whose reference rms is more than this many dB below the peak rms are ignored.
ACTIVE_DB = 50.0

#: Floors applied before taking logarithms, in each descriptor's unit (SPEC §2):
#: rms −120 dBFS, zcr one crossing per 10^6 samples, frequencies 1 Hz, flatness 1e-12 (pure
#: tones measure 1e-9 and below: librosa floors the power spectrum at 1e-10).
LOG_FLOORS: dict[str, float] = {
    "rms": 1e-6,
    "zcr": 1e-6,
    "rolloff": 1.0,
    "flatness": 1e-12,
    "bandwidth": 1.0,
    "centroid": 1.0,
    "f0": 1.0,
}


@dataclass(frozen=True)
class ControlResult:
    """Control response of one generator for one descriptor on one sound.

    Attributes:
        descriptor: descriptor name (:data:`DESCRIPTOR_NAMES`).
        scales: the scale factors ``s``.
        measured: median measured descriptor per scale over the active frames, in the
            descriptor's unit, clipped at its floor (same order as ``scales``).
        slope: least-squares slope of ``log(measured)`` vs ``log(s)`` (ideal 1).
        rho: Spearman ρ between ``s`` and ``measured`` (ideal 1; 0 when ``measured`` is constant).
        active_frames: number of frames measured.
        valid: False when an output was unmeasurable (see ``reason``); exclude it from averages.
        constant: True when the measured value did not change at all with the scale (rho is then 0).
        reason: why the result is flagged or constant, empty otherwise.
    """

    descriptor: str
    scales: tuple[float, ...]
    measured: tuple[float, ...]
    slope: float
    rho: float
    active_frames: int
    valid: bool = True
    constant: bool = False
    reason: str = ""


@dataclass(frozen=True)
class ControlSummary:
    """Control response over many sounds (SPEC §6: median over held-out sounds).

    Attributes:
        descriptor: descriptor name.
        slope: median slope over the valid results (NaN when none is valid).
        rho: median Spearman ρ over the valid results (NaN when none is valid).
        n_sounds: sounds measured (sounds without active frames are skipped and not counted).
        n_valid: results that were not flagged.
        results: the per-sound results.
    """

    descriptor: str
    slope: float
    rho: float
    n_sounds: int
    n_valid: int
    results: tuple[ControlResult, ...] = field(default_factory=tuple)


def active_frames(descriptors: np.ndarray, active_db: float = ACTIVE_DB) -> np.ndarray:
    """Boolean mask ``[frames]`` of frames whose rms is within ``active_db`` dB of the peak rms.

    Args:
        descriptors: ``float[frames, 7]`` curves (column 0 is rms, linear amplitude).
        active_db: threshold below the peak, in dB (positive).

    Returns:
        ``bool[frames]``; all False when the rms is zero everywhere.
    """
    return loud_frames(descriptors, active_db)


def control_response(
    generator: Generator,
    descriptors: np.ndarray,
    descriptor: str,
    scales: Sequence[float] = DEFAULT_SCALES,
    seed: int = 0,
    focused: bool = False,
) -> ControlResult:
    """Measure how one descriptor of ``generator``'s output follows a scaled input curve.

    Args:
        generator: any :class:`~neurorack.generators.base.Generator`.
        descriptors: ``float[frames, 7]`` reference curves (typically a held-out sound's).
        descriptor: name or perceptual alias of the descriptor to scale (e.g. ``"centroid"``).
        scales: at least two distinct positive scale factors.
        seed: generation seed, the same for every scale so only the control changes.
        focused: tell the generator which descriptor was scaled (:meth:`Generator.focus`), as the
            engine and ``generate --set`` do when a player turns a knob; the SPEC §6 protocol is
            ``False`` (the curves alone).

    Returns:
        A :class:`ControlResult` (flagged, not raised, when the output is degenerate).

    Raises:
        NeurorackError: bad curves, unknown descriptor, bad scales, or no active frame.
    """
    curves = check_descriptors(descriptors)
    try:
        col = descriptor_index(descriptor)
    except ValueError as exc:
        raise NeurorackError(str(exc)) from None
    name = DESCRIPTOR_NAMES[col]
    scale_arr = np.asarray([float(s) for s in scales], dtype=np.float64)
    if scale_arr.size < 2 or np.unique(scale_arr).size < 2 or not (np.isfinite(scale_arr) & (scale_arr > 0)).all():
        raise NeurorackError(f"scales must hold at least two distinct positive values, got {list(scales)}")
    mask = active_frames(curves)
    if not mask.any():
        raise NeurorackError("the reference curves have no active frame (rms is zero everywhere)")
    cfg = generator.descriptor_config
    n_frames = curves.shape[0]
    floor = LOG_FLOORS[name]
    measured = np.empty(scale_arr.size, dtype=np.float64)
    for i, s in enumerate(scale_arr):
        edited = curves.copy()
        edited[:, col] *= np.float32(s)
        if focused:
            with generator.focus({name: float(s)}):
                audio = generator.generate(edited, seed=seed)
        else:
            audio = generator.generate(edited, seed=seed)
        out = describe_with(audio, cfg)[:n_frames, col]
        measured[i] = float(np.median(out[mask[: out.shape[0]]]))
    at_floor = measured <= floor
    measured = np.maximum(measured, floor)
    constant = bool(np.ptp(measured) == 0.0)
    slope = 0.0 if constant else float(np.polyfit(np.log(scale_arr), np.log(measured), 1)[0])
    reasons = []
    if constant:
        rho = 0.0
        reasons.append("measured value does not change with the scale")
    else:
        rho = float(stats.spearmanr(scale_arr, measured).statistic)
    if at_floor.any():
        reasons.append(f"{int(at_floor.sum())} of {scale_arr.size} outputs at the {name} floor ({floor:g})")
    return ControlResult(
        descriptor=name,
        scales=tuple(float(s) for s in scale_arr),
        measured=tuple(float(m) for m in measured),
        slope=slope,
        rho=rho,
        active_frames=int(mask.sum()),
        valid=not at_floor.any(),
        constant=constant,
        reason="; ".join(reasons),
    )


def control_response_many(
    generator: Generator | Sequence[Generator],
    curves: Sequence[np.ndarray],
    descriptor: str,
    scales: Sequence[float] = DEFAULT_SCALES,
    seed: int = 0,
    focused: bool = False,
) -> ControlSummary:
    """Median control response over several sounds (SPEC §6).

    Args:
        generator: the generator under test, or one per sound (an autoencoder bound to each source sound).
        curves: one ``float[frames, 7]`` array per sound (frames may differ).
        descriptor: descriptor name or perceptual alias.
        scales: scale factors, as in :func:`control_response`.
        seed: generation seed; sound ``i`` uses ``seed + i``.
        focused: as in :func:`control_response`.

    Returns:
        A :class:`ControlSummary`; sounds without active frames are skipped, flagged results are
        kept in ``results`` but excluded from the medians.

    Raises:
        NeurorackError: no curves, or bad curves / descriptor / scales.
    """
    if len(curves) == 0:
        raise NeurorackError("control_response_many needs at least one sound's curves")
    if not isinstance(generator, Generator) and len(generator) != len(curves):
        raise NeurorackError(f"got {len(generator)} generators for {len(curves)} sounds")
    try:
        name = DESCRIPTOR_NAMES[descriptor_index(descriptor)]
    except ValueError as exc:
        raise NeurorackError(str(exc)) from None
    results: list[ControlResult] = []
    for i, c in enumerate(curves):
        if not active_frames(check_descriptors(c)).any():
            continue
        gen = generator if isinstance(generator, Generator) else generator[i]
        results.append(control_response(gen, c, descriptor, scales, seed=seed + i, focused=focused))
    valid = [r for r in results if r.valid]
    nan = float("nan")
    return ControlSummary(
        descriptor=name,
        slope=float(np.median([r.slope for r in valid])) if valid else nan,
        rho=float(np.median([r.rho for r in valid])) if valid else nan,
        n_sounds=len(results),
        n_valid=len(valid),
        results=tuple(results),
    )
