"""Spectral locks: per-frame spectral shaping that makes brightness controls structural (SPEC §3).

A generator trained only to reconstruct learns to lean on whichever inputs predict the
training sounds best and may ignore the rest (the original Neurorack ignores brightness).
A lock removes that freedom: after the network has proposed a spectrum, a smooth
per-frame gain curve ``g(f)`` is solved (no gradient) so that the frame's expected
magnitude spectrum has exactly the requested descriptors, then the frame's power is
restored so loudness is unchanged.

The spectrum of a synthesis frame is summarised by components ``i`` (noise bands and
partials) with expected STFT magnitude mass ``m_i`` at frequency ``f_i`` Hz. The
magnitude-weighted descriptors of librosa (:mod:`neurorack.descriptors`) become

* centroid ``c = Σ m f / Σ m``;
* bandwidth ``b = sqrt(Σ m (f - c)² / Σ m)``;
* roll-off: the frequency below which 85 % of ``Σ m`` lies, which equals the target
  ``r`` exactly when ``Σ_{f > r} m / Σ m = 0.15``.

:func:`centroid_tilt` solves one parameter, a power-law tilt ``(f / 1 kHz)^α`` (damped
Newton on ``log c``). :func:`moment_shaping` solves three,
``g(f) = exp(θ₁ l + θ₂ l² + θ₃ h(f))`` with ``l = ln(f / c)`` (log frequency relative to
the requested centroid) and ``h`` a smooth high shelf at the requested roll-off, by a
Levenberg–Marquardt iteration on the three conditions above (log centroid, log variance,
log odds of the mass above ``r``).

Not every request can be met: with the centroid and bandwidth of a real hit held, its
roll-off cannot double (Cantelli's inequality bounds the 85 % quantile by
``c + 2.38 b``). Each condition is therefore weighted by how far the network's own
spectrum is from it (:data:`PRIORITY_GAIN`), times a fixed emphasis (:data:`EMPHASIS`:
brightness first), and the others give way. This is a compromise, not a solution: with one
descriptor moved and the others held, the centroid follows well, bandwidth and roll-off only
part of the way. Told which descriptor moved (:func:`focus_emphasis`,
from the player's knob or read from the curves by :mod:`neurorack.curves.descriptor_prior`), the moved
one wins — but only where the plain solve leaves the moved one off (:data:`FOCUS_MET`): a request that can
be met is met in full, so a drawing read as "one knob moved" keeps its other curves. The roll-off
condition can stall even then (a bright hit asked for a roll-off below its held centroid kept 96 % of
its mass above it): when it is the moved one, a last one-parameter step scales the gains by
``exp(κ h(f))`` so that exactly 15 % of the shaped mass lies above the request. A *lowered* roll-off is not
met in frames already darker than the request: lifting 15 % of a nearly pure low tone's mass above it would
add hiss.
Parameters are clamped, steps damped, and nothing becomes NaN.

The per-frame solve is a small compiled loop (numba; it ships with librosa): in PyTorch
the ~45 tiny tensor operations per iteration cost more than the whole synthesis. Frames
start from the previous frame's solution and stop at a 0.2 % tolerance, so a 1 s hit
takes well under a millisecond on one thread. A step that raises the weighted cost is taken back
(with more damping), so the cost never grows.

Gains are normalised to the largest one among the *audible* components (mass at least
:data:`TOP_SHARE` of the frame's loudest), capped at 1 and floored at :data:`MIN_GAIN` (-120 dB).
Where the solution boosts some components by more than that range over the audible ones (a steep
tilt reaching far from the centroid), those sit on the floor and the frame keeps much of the network's
own shape: the lock does not build a spectrum out of nothing. Letting near-silent components set the
scale froze frames asked for a lower roll-off; letting only the loudest shaped one set it lost the
pitch control (the measurements: ``docs/design-notes.md``).

That clipping is not in the plain solve's model, which can then report a request met that the applied
gains miss by far (a kick drawn at 350 Hz on a network answer centred at 9 kHz: solved 470 Hz, bandwidth
1.2 kHz for 526 Hz asked). A frame whose own centroid is more than :data:`APPLIED_BEYOND` (an octave)
from the request therefore solves for the gains as they are applied: relative to the largest audible
one, capped at 1 and floored at :data:`MIN_GAIN`; a capped or floored component moves with the largest
one. Nearer frames keep the plain solve: applied everywhere, it met more frames of the drum test split
and lost their reconstruction (MR-STFT 1.80 → 1.98).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numba
import numpy as np
import torch
from torch import Tensor

from neurorack.numba_math import FAST_MATH, fast_exp

#: Share of the magnitude that lies above the roll-off frequency (librosa's roll_percent 0.85).
ABOVE_ROLLOFF = 0.15
#: Bounds of the shaping parameters (tilt per ln-kHz, curvature, shelf gain in nepers): the
#: curvature bound keeps ``exp(θ₂ l²)`` finite in float32 down to 20 Hz.
_LIMITS = np.array([6.0, 2.0, 6.0])
#: Largest change of a shaping parameter per iteration.
_MAX_STEP = 0.5
#: Smallest gain relative to the frame's loudest component (-120 dB).
MIN_GAIN = 1e-6
#: Components quieter than this share of the frame's loudest one (-100 dB) do not set the gain scale.
TOP_SHARE = 1e-5
#: A frame is solved when every condition is met within this (log units: 0.2 %).
_TOLERANCE = 2e-3
#: Smallest Levenberg–Marquardt damping, relative to the mean diagonal of the normal equations.
_DAMPING = 1e-3
#: When the three requests cannot all be met, each condition is weighted by
#: ``1 + PRIORITY_GAIN · |its residual on the network's proposed spectrum|``: the descriptor the
#: player moved furthest from what the sound would naturally have wins.
PRIORITY_GAIN = 12.0
#: Extra weight of the centroid, bandwidth and roll-off conditions on top of those priorities:
#: brightness first (CV 3 by default), then richness, then roll-off.
EMPHASIS = np.array([3.0, 2.0, 1.0])
#: Smallest frequency relative to the requested centroid the shaping works with (and its log).
_MIN_RATIO = 1e-3
_LOG_MIN_RATIO = math.log(_MIN_RATIO)
#: Width of the roll-off shelf in natural-log frequency units (ln 2 = one octave).
SHELF_WIDTH = 0.15


def centroid_tilt(mass: Tensor, freqs: Tensor, target: Tensor, iterations: int = 6) -> Tensor:
    """Per-component tilt ``(f / 1 kHz)^α`` making the centroid of ``mass`` equal ``target``.

    Args:
        mass: ``[..., N]`` non-negative expected magnitudes (detached inside).
        freqs: ``[..., N]`` Hz.
        target: ``[...]`` requested centroid, Hz.
        iterations: damped Newton steps (α clamped to [-4, 4]).

    Returns:
        ``[..., N]`` multiplicative gains (no gradient).
    """
    with torch.no_grad():
        lr = torch.log(freqs.clamp_min(20.0) / 1000.0)
        m, goal = mass.detach(), target.unsqueeze(-1).log()
        alpha = torch.zeros_like(goal)
        fl = freqs * lr
        for _ in range(iterations):
            # log c(α) with c = Σ w f / Σ w, w = m e^{α l}; d log c / dα = E_wf[l] - E_w[l]
            w = m * torch.exp(alpha * lr)
            s0 = w.sum(-1, keepdim=True).clamp_min(1e-20)
            s1 = (w * freqs).sum(-1, keepdim=True).clamp_min(1e-20)
            slope = (w * fl).sum(-1, keepdim=True) / s1 - (w * lr).sum(-1, keepdim=True) / s0
            step = ((torch.log(s1 / s0) - goal) / slope.clamp_min(1e-3)).clamp(-1.0, 1.0)  # damped
            alpha = (alpha - step).clamp(-4.0, 4.0)
        return torch.exp(alpha * lr)


#: Order of the lock's conditions, as descriptor names.
LOCKED = ("centroid", "bandwidth", "rolloff")
#: How much a moved descriptor's condition outweighs the others per neper of its move
#: (:func:`focus_emphasis`): a 1.41× move weighs ~3,400× more, so the moved knob wins the trade-off.
FOCUS_GAIN = 1e4
#: A moved knob only breaks ties: a frame is solved with the moved knob first only where the plain solve
#: leaves the moved centroid or bandwidth further off than this (log ratio, 5 %), or, for a moved roll-off,
#: any condition further off than the third (log units); a request that can be met is met in full, and a
#: nearly met brightness or bandwidth does not trade the others away (``docs/design-notes.md``).
FOCUS_MET = (0.05, 0.05, 0.02)

#: A tonal request the network answered with noise alone (a drawn kick or tom: no partials) gets its floor as
#: partials, harmonics of the requested f0, so the lock has a pitch to shape: all of it at a requested flatness
#: up to the first value, none from the second, linear between; only where the network's partials carry less
#: than :data:`TONAL_FLOOR_SHARE` of its magnitude mass (real hits' frames: 5 %, drawn presets: all).
TONAL_FLOOR_FLATNESS = (0.02, 0.1)
#: See :data:`TONAL_FLOOR_FLATNESS`.
TONAL_FLOOR_SHARE = 1e-3

#: A frame whose own centroid is further than this from the request (natural log: one octave) is solved
#: for its gains as they are applied (relative to the loudest audible component, capped and floored);
#: nearer ones keep the plain solve, which leaves the network's own shape where clipping binds.
APPLIED_BEYOND = math.log(2.0)


def focus_emphasis(moved: Mapping[str, float] | None) -> np.ndarray | None:
    """Condition weights giving priority to the descriptors a player moved, and the roll-off's direction.

    Args:
        moved: canonical descriptor name -> requested / unedited ratio (others are ignored);
            None or no locked descriptor moved: None (the default :data:`EMPHASIS`).

    Returns:
        ``float64[4]``: weights for (centroid, bandwidth, roll-off), ``EMPHASIS · (1 + FOCUS_GAIN · |ln ratio|)``,
        then the direction of the roll-off's move (-1 lowered, +1 raised, 0 not moved). A frame whose own
        spectrum is already past a moved roll-off in that direction (darker than a lowered request) is
        not pushed back towards it: the lock drops that condition there.
    """
    if not moved:
        return None
    ratios = [float(moved.get(d, 1.0)) for d in LOCKED]
    logs = [math.log(r) if math.isfinite(r) and r > 0 else 0.0 for r in ratios]
    boost = np.abs(np.array(logs))
    if not boost.any():
        return None
    weights = EMPHASIS * (1.0 + FOCUS_GAIN * boost)
    return np.asarray([*weights, float(np.sign(logs[2]))], dtype=np.float64)


def _focus_met() -> np.ndarray:
    """:data:`FOCUS_MET` as the kernels take it (read at each call, so a test may change it)."""
    return np.asarray(FOCUS_MET, dtype=np.float64)


def _emphasis(emphasis: np.ndarray | None) -> np.ndarray:
    """The kernels' ``float64[4]`` weights and roll-off direction (a bare ``[3]`` of weights: direction 0)."""
    arr = np.asarray(EMPHASIS if emphasis is None else emphasis, dtype=np.float64)
    return np.concatenate([arr, [0.0]]) if arr.shape == (3,) else arr


def moment_shaping(
    mass: Tensor,
    freqs: Tensor,
    centroid: Tensor,
    bandwidth: Tensor,
    rolloff: Tensor,
    iterations: int = 6,
    emphasis: np.ndarray | None = None,
) -> Tensor:
    """Per-component gains giving ``mass`` the requested centroid, bandwidth and roll-off.

    Args:
        mass: ``[..., N]`` non-negative expected magnitudes (detached inside).
        freqs: ``[..., N]`` Hz.
        centroid, bandwidth, rolloff: ``[...]`` requested values, Hz.
        iterations: Levenberg–Marquardt steps per frame.
        emphasis: weights of the centroid, bandwidth and roll-off conditions (:data:`EMPHASIS` when
            None), optionally followed by the roll-off's direction; :func:`focus_emphasis` for a player's
            moved knobs.

    Returns:
        ``[..., N]`` multiplicative gains (no gradient, same device and dtype as ``mass``) in
        ``[MIN_GAIN, 1]``, 1 for the loudest component with mass; all ones for a frame without mass or
        with a non-finite request.
    """
    n = mass.shape[-1]
    with torch.no_grad():  # the logarithms vectorised by torch, the rest in the kernel
        log_freqs = torch.log(freqs.detach().clamp_min(1e-30))
    flat = [t.detach().to("cpu", torch.float32).reshape(-1, n).contiguous().numpy() for t in (mass, freqs, log_freqs)]
    requests = [
        t.detach().to("cpu", torch.float32).reshape(-1).contiguous().numpy() for t in (centroid, bandwidth, rolloff)
    ]
    gains = np.ones(flat[0].shape)
    kernel: Any = _shape_frames  # a numba dispatcher (its typing stubs do not describe the call)
    constants = (PRIORITY_GAIN, ABOVE_ROLLOFF, SHELF_WIDTH, _LIMITS, _MAX_STEP, _TOLERANCE, MIN_GAIN, TOP_SHARE)
    kernel(*flat, *requests, _emphasis(emphasis), _emphasis(None), _focus_met(), iterations, *constants, gains)
    return torch.from_numpy(gains).to(device=mass.device, dtype=mass.dtype).reshape(mass.shape)


def tonal_floor_share(flatness: Tensor, partial_share: Tensor) -> Tensor:
    """Share of the shape lock's floor made of partials: by the requested spectral ``flatness`` (0..1) as
    :data:`TONAL_FLOOR_FLATNESS` says, where the network's ``partial_share`` of the magnitude mass is below
    :data:`TONAL_FLOOR_SHARE`, else 0."""
    lo, hi = TONAL_FLOOR_FLATNESS
    return ((hi - flatness) / (hi - lo)).clamp(0.0, 1.0) * (partial_share < TONAL_FLOOR_SHARE)


def floor_and_lock(
    band_gains: Tensor,
    partial_amps: Tensor,
    freqs: Tensor,
    targets: Tensor,
    *,
    band_freq: Tensor,
    band_mass: Tensor,
    band_power: Tensor,
    partial_mass: float,
    floor: float,
    tonal_floor: bool = False,
    iterations: int = 6,
    emphasis: np.ndarray | None = None,
) -> tuple[Tensor, Tensor]:
    """Inference path of ``ddsp-impact``'s shape lock in one compiled pass (no gradient, CPU float32).

    Per frame: the noise floor shaped like the request (``DDSPImpact._target_floor``), the
    moment shaping of the expected magnitudes (:func:`moment_shaping`) and the power
    renormalisation (``DDSPImpact.lock_spectrum``). Equal to those PyTorch steps; the tests check it.

    Args:
        band_gains: ``[B, M, nb]`` noise band gains; partial_amps, freqs: ``[B, M, K]`` (Hz).
        targets: ``[B, M, 7]`` requested descriptors at synthesis-frame rate.
        band_freq, band_mass, band_power: ``[nb]`` centre (Hz), expected magnitude and power per unit gain.
        partial_mass: expected magnitude of a unit partial. floor: level of the floor (0: none).
        tonal_floor: a tonal request answered without partials gets its floor as partials
            (:func:`tonal_floor_share`).
        emphasis: as in :func:`moment_shaping`.

    Returns:
        The shaped ``band_gains`` and ``partial_amps`` (new tensors).
    """
    batch, frames, nb = band_gains.shape
    k = partial_amps.shape[-1]

    def rows(t: Tensor, width: int) -> np.ndarray:
        return t.detach().to("cpu", torch.float32).reshape(-1, width).contiguous().numpy()

    with torch.no_grad():
        log_freqs = torch.log(freqs.clamp_min(1e-30))
    bands_out = np.empty((batch * frames, nb), dtype=np.float32)
    amps_out = np.empty((batch * frames, k), dtype=np.float32)
    lock_rows(
        rows(band_gains, nb), rows(partial_amps, k), rows(freqs, k), rows(log_freqs, k), rows(targets, 7),
        band_freq, band_mass, band_power, partial_mass=partial_mass, floor=floor, tonal_floor=tonal_floor,
        iterations=iterations, emphasis=emphasis, bands_out=bands_out, amps_out=amps_out,
    )  # fmt: skip
    device = band_gains.device
    return (
        torch.from_numpy(bands_out).view(batch, frames, nb).to(device),
        torch.from_numpy(amps_out).view(batch, frames, k).to(device),
    )


def lock_rows(
    band_gains: np.ndarray,
    partial_amps: np.ndarray,
    freqs: np.ndarray,
    log_freqs: np.ndarray,
    targets: np.ndarray,
    band_freq: Tensor | np.ndarray,
    band_mass: Tensor | np.ndarray,
    band_power: Tensor | np.ndarray,
    *,
    partial_mass: float,
    floor: float,
    bands_out: np.ndarray,
    amps_out: np.ndarray,
    tonal_floor: bool = False,
    iterations: int = 6,
    emphasis: np.ndarray | None = None,
) -> None:
    """:func:`floor_and_lock` on NumPy frames, written to ``bands_out [M, nb]`` and ``amps_out [M, K]`` (float32).

    ``band_gains: float32[M, nb]``, ``partial_amps, freqs, log_freqs: float32[M, K]`` (Hz, ln Hz),
    ``targets: float32[M, 7]``; the tables as in :func:`floor_and_lock`.
    """
    tables = [
        t if isinstance(t, np.ndarray) else t.detach().to("cpu", torch.float64).contiguous().numpy()
        for t in (band_freq, band_mass, band_power)
    ]
    kernel: Any = _floor_and_lock  # a numba dispatcher
    kernel(
        band_gains, partial_amps, freqs, log_freqs, targets, *tables, float(partial_mass), float(floor),
        bool(tonal_floor), *TONAL_FLOOR_FLATNESS, TONAL_FLOOR_SHARE, _emphasis(emphasis), _emphasis(None),
        _focus_met(), iterations, PRIORITY_GAIN, ABOVE_ROLLOFF, SHELF_WIDTH, _LIMITS, _MAX_STEP, _TOLERANCE, MIN_GAIN,
        TOP_SHARE, bands_out, amps_out,
    )  # fmt: skip


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _floor_and_lock(
    bands: np.ndarray,
    amps: np.ndarray,
    freqs: np.ndarray,
    log_freqs: np.ndarray,
    targets: np.ndarray,
    band_freq: np.ndarray,
    band_mass: np.ndarray,
    band_power: np.ndarray,
    partial_mass: float,
    floor: float,
    tonal_floor: bool,
    tonal_lo: float,
    tonal_hi: float,
    tonal_share_max: float,
    emphasis: np.ndarray,
    plain: np.ndarray,
    met: np.ndarray,
    iterations: int,
    priority_gain: float,
    above: float,
    shelf_width: float,
    limits: np.ndarray,
    max_step: float,
    tolerance: float,
    min_gain: float,
    top_share: float,
    bands_out: np.ndarray,
    amps_out: np.ndarray,
) -> None:  # pragma: no cover - compiled; tested against the PyTorch path
    frames, nb = bands.shape
    k = amps.shape[1]
    n = nb + k
    theta = np.zeros((2, 3))
    scratch = np.empty((10, n))
    mass, f, log_f, gains, level = np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(nb)
    partials = np.empty(k)
    log_band = np.empty(nb)
    for b in range(nb):
        f[b] = band_freq[b]
        log_band[b] = math.log(max(band_freq[b], 20.0))  # the floor's distance (bands clamped to 20 Hz)
        log_f[b] = math.log(max(band_freq[b], 1e-30))
    for i in range(frames):
        c_req, bw_req, r_req = np.float64(targets[i, 5]), np.float64(targets[i, 4]), np.float64(targets[i, 2])
        top = top_mass = band_total = partial_total = 0.0
        for b in range(nb):
            top = max(top, np.float64(bands[i, b]))
            top_mass = max(top_mass, np.float64(bands[i, b]) * band_mass[b])
            band_total += np.float64(bands[i, b]) * band_mass[b]
        for j in range(k):
            top = max(top, np.float64(amps[i, j]))
            top_mass = max(top_mass, np.float64(amps[i, j]) * partial_mass)
            partial_total += np.float64(amps[i, j]) * partial_mass
        share = 0.0  # tonal_floor_share
        if tonal_floor and partial_total < tonal_share_max * (partial_total + band_total + 1e-30):
            share = min(max((tonal_hi - np.float64(targets[i, 3])) / (tonal_hi - tonal_lo), 0.0), 1.0)
        c = max(c_req, 20.0)
        reach = max(max(bw_req, r_req - c), 0.0)
        sigma = max(math.log1p(reach / c), 0.25)
        log_c = math.log(c)
        band_floor = (1.0 - share) * floor * top
        for b in range(nb):
            # fast_exp (no libm call, so the loop vectorises); below e^-600 the bump is 0 to float32 anyway
            bump = fast_exp(max(-0.5 * ((log_band[b] - log_c) / sigma) ** 2, -600.0))
            level[b] = np.float64(bands[i, b]) + band_floor * bump
            mass[b] = level[b] * band_mass[b]
        # slices, not [nb + j]: a possibly negative index is wrapped and stops vectorisation
        p_mass, p_f, p_log_f = mass[nb:], f[nb:], log_f[nb:]
        for j in range(k):
            partials[j] = np.float64(amps[i, j])
            if share > 0.0 and amps[i, j] > 0.0:  # muted partials (above the synthesis's top) stay muted
                distance = (math.log(max(np.float64(freqs[i, j]), 20.0)) - log_c) / sigma
                partials[j] += share * floor * top_mass / partial_mass * math.exp(-0.5 * distance * distance)
            p_mass[j] = partials[j] * partial_mass
            p_f[j] = freqs[i, j]
            p_log_f[j] = log_freqs[i, j]
        gains[:] = 1.0
        _solve_focused_frame(
            mass, f, log_f, max(c_req, 20.0), bw_req, r_req, emphasis, plain, met, iterations, priority_gain,
            above, shelf_width, limits, max_step, tolerance, min_gain, top_share, theta, scratch, gains,
        )  # fmt: skip
        before = after = 0.0
        for b in range(nb):
            p = level[b] * level[b] * band_power[b]
            before += p
            after += p * gains[b] * gains[b]
        p_gains = gains[nb:]
        for j in range(k):
            a = partials[j]
            p = a * a * 0.5
            before += p
            after += p * p_gains[j] * p_gains[j]
        keep = math.sqrt((before + 1e-20) / (after + 1e-20))
        for b in range(nb):
            bands_out[i, b] = level[b] * gains[b] * keep
        for j in range(k):
            amps_out[i, j] = partials[j] * p_gains[j] * keep


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _shape_frames(
    mass: np.ndarray,
    freqs: np.ndarray,
    log_freqs: np.ndarray,
    centroid: np.ndarray,
    bandwidth: np.ndarray,
    rolloff: np.ndarray,
    emphasis: np.ndarray,
    plain: np.ndarray,
    met: np.ndarray,
    iterations: int,
    priority_gain: float,
    above: float,
    shelf_width: float,
    limits: np.ndarray,
    max_step: float,
    tolerance: float,
    min_gain: float,
    top_share: float,
    gains: np.ndarray,
) -> None:  # pragma: no cover - compiled; tested through moment_shaping
    """Solve every frame in place (:func:`_solve_frame`, warm-started from the previous frame).

    ``mass, freqs, log_freqs: [F, N]`` (negative masses count as 0; Hz; ln Hz), ``centroid, bandwidth,
    rolloff: [F]`` Hz; ``gains: [F, N]`` ones on entry.
    """
    frames, n = mass.shape
    theta = np.zeros((2, 3))
    scratch = np.empty((10, n))
    for i in range(frames):
        _solve_focused_frame(
            mass[i], freqs[i], log_freqs[i], centroid[i], bandwidth[i], rolloff[i], emphasis, plain, met,
            iterations, priority_gain, above, shelf_width, limits, max_step, tolerance, min_gain, top_share,
            theta, scratch, gains[i],
        )  # fmt: skip


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _solve_frame(
    mass: np.ndarray,
    freqs: np.ndarray,
    log_freqs: np.ndarray,
    centroid: float,
    bandwidth: float,
    rolloff: float,
    emphasis: np.ndarray,
    iterations: int,
    priority_gain: float,
    above: float,
    shelf_width: float,
    limits: np.ndarray,
    max_step: float,
    tolerance: float,
    min_gain: float,
    top_share: float,
    theta: np.ndarray,
    scratch: np.ndarray,
    gains: np.ndarray,
) -> float:  # pragma: no cover - compiled; tested through moment_shaping
    """One frame: ``mass, freqs, log_freqs: [N]`` -> ``gains: [N]`` (left as they are when the frame has no
    mass or a non-finite request). ``theta: [3]`` carries the solution to the next frame (warm start);
    ``scratch: [10, N]`` is work space. Returns the largest of the three conditions' residuals (log units)
    at the solution (infinite when the frame was left as it is): for the gains as applied where the frame's
    own centroid is beyond :data:`APPLIED_BEYOND` of the request, else before the normalisation clips them.

    With ``c`` the requested centroid: ``x = f / c``, ``lg = ln x``, the shelf
    ``sigmoid((lg - ln(r / c)) / shelf_width)`` and ``hard = lg > ln(r / c)``.
    """
    n = mass.shape[0]
    goal_r = math.log(above / (1.0 - above))
    m_k, x, lg, shelf, hard = scratch[0], scratch[1], scratch[2], scratch[3], scratch[4]
    t0, t1, t2 = theta[0], theta[1], theta[2]
    c = max(np.float64(centroid), 20.0)
    lr = math.log(max(np.float64(rolloff), 20.0) / c)
    goal_v = 2.0 * math.log(max(np.float64(bandwidth), 10.0) / c)
    if not (math.isfinite(c) and math.isfinite(lr) and math.isfinite(goal_v)):
        return math.inf
    s0 = s1 = s2 = sh = 0.0
    inv_c, log_c = 1.0 / c, math.log(c)
    for k in range(n):  # arithmetic and selects only: vectorises
        m = max(np.float64(mass[k]), 0.0)
        a = max(np.float64(log_freqs[k]) - log_c, _LOG_MIN_RATIO)
        xk = max(np.float64(freqs[k]) * inv_c, _MIN_RATIO)
        m_k[k] = m
        x[k] = xk
        lg[k] = a
        shelf[k] = 1.0 / (1.0 + fast_exp(min(max((lr - a) / shelf_width, -600.0), 600.0)))
        hard[k] = 1.0 if a > lr else 0.0
        s0 += m
        s1 += m * xk
        s2 += m * xk * xk
        sh += m * hard[k]
    if not (math.isfinite(s0) and math.isfinite(s2) and s0 > 1e-300):
        return math.inf
    # priorities from the network's own spectrum: the request furthest from it matters most
    sh = min(max(sh, s0 * 1e-6), s0 * (1.0 - 1e-6))
    e1 = s1 / s0
    p0 = emphasis[0] * (1.0 + priority_gain * abs(math.log(e1)))
    p1 = emphasis[1] * (1.0 + priority_gain * abs(math.log(max(s2 / s0 - e1 * e1, 1e-8)) - goal_v))
    p2 = emphasis[2] * (1.0 + priority_gain * abs(math.log(sh / (s0 - sh)) - goal_r))
    # a lowered roll-off the frame is already darker than is left alone: meeting it would add mass above r
    # (hiss on a nearly pure low tone); a raised one the frame is brighter than is still met (a cut)
    past = emphasis[3] < 0.0 and math.log(sh / (s0 - sh)) < goal_r
    if past:
        p2 = 0.0
    loud = 0.0
    for k in range(n):
        loud = max(loud, m_k[k])
    audible = max(loud * top_share, 1e-300)  # quieter components do not set the scale
    # far from the request, solve for the gains as they are applied (see the module docstring)
    applied = abs(math.log(e1)) > APPLIED_BEYOND
    log_min_gain = math.log(min_gain)
    # the features each component's weight is taken with: ln x, ln² x and the shelf, plus a log offset; far from
    # the request they are rewritten each iteration so the weights are the gains as applied (below)
    fa, fq, fs, off = scratch[6], scratch[7], scratch[8], scratch[9]
    for k in range(n):
        fa[k] = lg[k]
        fq[k] = lg[k] * lg[k]
        fs[k] = shelf[k]
        off[k] = 0.0
    # Levenberg–Marquardt with step acceptance: a step that raises the weighted cost is taken back and
    # the damping raised, so the cost never grows (undamped Gauss–Newton steps oscillate on hard frames)
    best = best_residual = math.inf
    b0, b1, b2 = t0, t1, t2
    n00 = n01 = n02 = n11 = n12 = n22 = g0 = g1 = g2 = 0.0
    mu = _DAMPING
    for _ in range(iterations):
        if applied:
            # gains relative to the largest audible one, capped at 1 and floored at min_gain: a capped or
            # floored component moves with the largest one, so it takes that one's features
            top, ks = -1e300, 0
            for k in range(n):
                e = t0 * lg[k] + t1 * lg[k] * lg[k] + t2 * shelf[k]
                if m_k[k] >= audible and e > top:
                    top, ks = e, k
            low = top + log_min_gain
            a_top, s_top = lg[ks], shelf[ks]
            for k in range(n):  # selects only: vectorises
                a = lg[k]
                e = t0 * a + t1 * a * a + t2 * shelf[k]
                free = (e > low) & (e <= top)
                fa[k] = a if free else a_top
                fq[k] = a * a if free else a_top * a_top
                fs[k] = shelf[k] if free else s_top
                off[k] = -top + (log_min_gain if e <= low else 0.0)
        # sums S_g = Σ w g and their derivatives D_gj = Σ w g φ_j, g in (1, x, x², above), φ = (l, l², shelf)
        s0 = s1 = s2 = sh = 0.0
        d00 = d01 = d02 = d10 = d11 = d12 = d20 = d21 = d22 = d30 = d31 = d32 = 0.0
        for k in range(n):  # branch-free, so it vectorises (components without mass add 0)
            a = fa[k]
            q = fq[k]
            sk = fs[k]
            w = m_k[k] * fast_exp(t0 * a + t1 * q + t2 * sk + off[k])
            wx = w * x[k]
            wxx = wx * x[k]
            wh = w * hard[k]
            s0 += w
            s1 += wx
            s2 += wxx
            sh += wh
            d00 += w * a
            d01 += w * q
            d02 += w * sk
            d10 += wx * a
            d11 += wx * q
            d12 += wx * sk
            d20 += wxx * a
            d21 += wxx * q
            d22 += wxx * sk
            d30 += wh * a
            d31 += wh * q
            d32 += wh * sk
        if not s0 > 1e-300:
            break
        sh = min(max(sh, s0 * 1e-6), s0 * (1.0 - 1e-6))
        e1, e2 = s1 / s0, s2 / s0
        var = max(e2 - e1 * e1, 1e-8)
        rest = s0 - sh
        r0, r1, r2 = math.log(e1), math.log(var) - goal_v, math.log(sh / rest) - goal_r
        residual = max(abs(r0), abs(r1), abs(r2))
        if residual < tolerance:
            b0, b1, b2 = t0, t1, t2
            best_residual = residual
            break
        cost = (p0 * r0) ** 2 + (p1 * r1) ** 2 + (p2 * r2) ** 2
        if cost < best:  # accept: new linearisation, less damping
            best = cost
            best_residual = residual
            b0, b1, b2 = t0, t1, t2
            mu = max(mu * 0.3, _DAMPING)
            # rows of the Jacobian: d log E[x], d log Var[x], d logit(share above the roll-off)
            de1 = ((d10 - e1 * d00) / s0, (d11 - e1 * d01) / s0, (d12 - e1 * d02) / s0)
            de2 = ((d20 - e2 * d00) / s0, (d21 - e2 * d01) / s0, (d22 - e2 * d02) / s0)
            j00, j01, j02 = de1[0] / e1, de1[1] / e1, de1[2] / e1
            j10 = (de2[0] - 2.0 * e1 * de1[0]) / var
            j11 = (de2[1] - 2.0 * e1 * de1[1]) / var
            j12 = (de2[2] - 2.0 * e1 * de1[2]) / var
            j20 = d30 / sh - (d00 - d30) / rest
            j21 = d31 / sh - (d01 - d31) / rest
            j22 = d32 / sh - (d02 - d32) / rest
            # weighted normal equations JᵀWJ δ = JᵀWr
            w0, w1, w2 = p0 * p0, p1 * p1, p2 * p2
            n00 = w0 * j00 * j00 + w1 * j10 * j10 + w2 * j20 * j20
            n01 = w0 * j00 * j01 + w1 * j10 * j11 + w2 * j20 * j21
            n02 = w0 * j00 * j02 + w1 * j10 * j12 + w2 * j20 * j22
            n11 = w0 * j01 * j01 + w1 * j11 * j11 + w2 * j21 * j21
            n12 = w0 * j01 * j02 + w1 * j11 * j12 + w2 * j21 * j22
            n22 = w0 * j02 * j02 + w1 * j12 * j12 + w2 * j22 * j22
            g0 = w0 * j00 * r0 + w1 * j10 * r1 + w2 * j20 * r2
            g1 = w0 * j01 * r0 + w1 * j11 * r1 + w2 * j21 * r2
            g2 = w0 * j02 * r0 + w1 * j12 * r1 + w2 * j22 * r2
        else:  # reject: back to the best point, more damping
            mu *= 10.0
        lam = mu * (n00 + n11 + n22) / 3.0 + 1e-12
        a00, a11, a22 = n00 + lam, n11 + lam, n22 + lam
        # symmetric 3×3 solve by Cramer's rule
        c00 = a11 * a22 - n12 * n12
        c01 = n02 * n12 - n01 * a22
        c02 = n01 * n12 - n02 * a11
        det = a00 * c00 + n01 * c01 + n02 * c02
        if not (math.isfinite(det) and abs(det) > 1e-300):
            break
        c11 = a00 * a22 - n02 * n02
        c12 = n01 * n02 - a00 * n12
        c22 = a00 * a11 - n01 * n01
        st0 = (c00 * g0 + c01 * g1 + c02 * g2) / det
        st1 = (c01 * g0 + c11 * g1 + c12 * g2) / det
        st2 = (c02 * g0 + c12 * g1 + c22 * g2) / det
        if not (math.isfinite(st0) and math.isfinite(st1) and math.isfinite(st2)):
            break
        t0 = min(max(b0 - min(max(st0, -max_step), max_step), -limits[0]), limits[0])
        t1 = min(max(b1 - min(max(st1, -max_step), max_step), -limits[1]), limits[1])
        t2 = min(max(b2 - min(max(st2, -max_step), max_step), -limits[2]), limits[2])
    t0, t1, t2 = b0, b1, b2  # the best point evaluated
    # normalise by the loudest component that has mass (a silent one may sit anywhere), and keep
    # the range within MIN_GAIN so the power renormalisation downstream stays finite in float32
    theta[0], theta[1], theta[2] = t0, t1, t2
    for k in range(n):
        gains[k] = t0 * lg[k] + t1 * lg[k] * lg[k] + t2 * shelf[k]
    _normalise_log_gains(gains, m_k, audible, min_gain)
    if emphasis[2] > emphasis[0] and emphasis[2] > emphasis[1] and not past:  # roll-off first: meet it exactly
        _fit_rolloff(m_k, shelf, hard, gains, goal_r, tolerance, min_gain, audible, scratch[1])
    return best_residual


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _shaped_residual(
    scratch: np.ndarray,
    gains: np.ndarray,
    centroid: float,
    bandwidth: float,
    above: float,
    emphasis: np.ndarray,
    plain: np.ndarray,
    met: np.ndarray,
) -> float:  # pragma: no cover - compiled; tested through moment_shaping
    """Largest residual, in units of ``met [3]``, of the conditions (log ratio of centroid and bandwidth, log odds
    above the roll-off) that decide whether a focus ``emphasis`` is needed, for the final ``gains [N]`` of a
    plain :func:`_solve_frame` (after normalisation, which clips gains), from the masses, ``f / c`` and the
    above-the-roll-off flags it left in ``scratch`` rows 0, 1 and 4. With the roll-off moved: all three, each
    in units of ``met[2]``; else the moved ones (weighted differently from ``plain``), each in its own."""
    c = max(np.float64(centroid), 20.0)
    goal_v = 2.0 * math.log(max(np.float64(bandwidth), 10.0) / c)
    goal_r = math.log(above / (1.0 - above))
    s0 = s1 = s2 = sh = 0.0
    for k in range(gains.shape[0]):
        w = scratch[0, k] * gains[k]
        s0 += w
        s1 += w * scratch[1, k]
        s2 += w * scratch[1, k] * scratch[1, k]
        sh += w * scratch[4, k]
    if not s0 > 1e-300:
        return math.inf
    sh = min(max(sh, s0 * 1e-6), s0 * (1.0 - 1e-6))
    e1 = s1 / s0
    var = max(s2 / s0 - e1 * e1, 1e-8)
    # the bandwidth's condition is on the log variance: half of it is the log bandwidth ratio
    residuals = (
        abs(math.log(max(e1, 1e-300))),
        0.5 * abs(math.log(var) - goal_v),
        abs(math.log(sh / (s0 - sh)) - goal_r),
    )
    rolloff_moved = emphasis[2] != plain[2]
    worst = 0.0
    for j in range(3):
        if rolloff_moved:
            worst = max(worst, residuals[j] / met[2])
        elif emphasis[j] != plain[j]:
            worst = max(worst, residuals[j] / met[j])
    return worst


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _solve_focused_frame(
    mass: np.ndarray,
    freqs: np.ndarray,
    log_freqs: np.ndarray,
    centroid: float,
    bandwidth: float,
    rolloff: float,
    emphasis: np.ndarray,
    plain: np.ndarray,
    met: np.ndarray,
    iterations: int,
    priority_gain: float,
    above: float,
    shelf_width: float,
    limits: np.ndarray,
    max_step: float,
    tolerance: float,
    min_gain: float,
    top_share: float,
    theta: np.ndarray,
    scratch: np.ndarray,
    gains: np.ndarray,
) -> None:  # pragma: no cover - compiled; tested through moment_shaping
    """:func:`_solve_frame`, where a focus ``emphasis`` (a moved knob) only breaks ties: the frame is first
    solved with the ``plain`` weights, and solved again with ``emphasis`` only when the plain solve leaves a
    moved centroid or bandwidth further off than ``met [3]`` (a moved roll-off: any condition further than
    ``met[2]``, since only the focused solve's last step meets it exactly) — a request that can be met is met
    in full, and a knob the plain solve already met does not trade the others away. ``theta: [2, 3]`` carries the two
    solves' warm starts separately (row 0 plain, row 1 focused), so one frame's fallback does not move the
    next frame's plain solve."""
    focused = False
    for j in range(4):
        focused = focused or emphasis[j] != plain[j]
    if focused:
        residual = _solve_frame(
            mass, freqs, log_freqs, centroid, bandwidth, rolloff, plain, iterations, priority_gain, above,
            shelf_width, limits, max_step, tolerance, min_gain, top_share, theta[0], scratch, gains,
        )  # fmt: skip
        # a moved roll-off is met exactly only by the focused solve's last step: the plain solve is kept only
        # with every condition within met[2], its own residual included; a moved centroid or bandwidth: within met[j]
        kept = residual < met[2] if emphasis[2] != plain[2] else True
        if kept and _shaped_residual(scratch, gains, centroid, bandwidth, above, emphasis, plain, met) < 1.0:
            return
        gains[:] = 1.0
    _solve_frame(
        mass, freqs, log_freqs, centroid, bandwidth, rolloff, emphasis, iterations, priority_gain, above,
        shelf_width, limits, max_step, tolerance, min_gain, top_share, theta[1 if focused else 0], scratch, gains,
    )  # fmt: skip


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _fit_rolloff(
    mass: np.ndarray,
    shelf: np.ndarray,
    hard: np.ndarray,
    gains: np.ndarray,
    goal_r: float,
    tolerance: float,
    min_gain: float,
    audible: float,
    work: np.ndarray,
) -> None:  # pragma: no cover - compiled; tested through moment_shaping
    """Scale ``gains [N]`` by ``exp(κ · shelf)`` so exactly :data:`ABOVE_ROLLOFF` of the shaped mass lies above
    the requested roll-off (log odds ``goal_r``), then renormalise (:func:`_normalise_log_gains`).

    The three-parameter shaping trades the roll-off against the centroid and bandwidth and can stall far
    from it (a bright hit asked for a roll-off below its centroid); when the roll-off is the moved knob,
    this last one-parameter step meets it. The log odds rise monotonically with ``κ``, so a Newton step
    safeguarded by bisection on ``|κ| <= ln(1 / min_gain)`` converges in a few iterations.
    ``work [N]`` is scratch space (overwritten with the shaped masses).
    """
    n = mass.shape[0]
    above = below = 0.0
    for k in range(n):
        w = mass[k] * gains[k]
        work[k] = w
        above += w * hard[k]
        below += w * (1.0 - hard[k])
    if not (above > 1e-300 and below > 1e-300) or abs(math.log(above / below) - goal_r) < tolerance:
        return
    bound = -math.log(min_gain)
    lo, hi, kappa = -bound, bound, 0.0
    for _ in range(40):
        a = b = da = db = 0.0
        for k in range(n):  # branch-free: vectorises
            w = work[k] * fast_exp(kappa * shelf[k])
            a += w * hard[k]
            b += w * (1.0 - hard[k])
            da += w * hard[k] * shelf[k]
            db += w * (1.0 - hard[k]) * shelf[k]
        if not (a > 1e-300 and b > 1e-300):
            break
        resid = math.log(a / b) - goal_r
        if abs(resid) < tolerance:
            break
        if resid > 0.0:
            hi = kappa
        else:
            lo = kappa
        slope = da / a - db / b  # d log(a / b) / dκ > 0
        step = kappa - resid / slope if slope > 1e-12 else 0.5 * (lo + hi)
        kappa = step if lo < step < hi else 0.5 * (lo + hi)
    for k in range(n):
        gains[k] = math.log(gains[k]) + kappa * shelf[k]
    _normalise_log_gains(gains, mass, audible, min_gain)


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _normalise_log_gains(
    gains: np.ndarray, mass: np.ndarray, audible: float, min_gain: float
) -> None:  # pragma: no cover - compiled; tested through moment_shaping
    """In place: log gains ``[N]`` -> gains relative to the largest among components with at least ``audible``
    mass, capped at 1 and floored at ``min_gain``."""
    top = -1e300
    for k in range(gains.shape[0]):
        top = max(top, gains[k] if mass[k] >= audible else -1e300)
    for k in range(gains.shape[0]):
        gains[k] = max(fast_exp(max(min(gains[k] - top, 0.0), -600.0)), min_gain)
