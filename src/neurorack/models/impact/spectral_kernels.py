"""Compiled inference kernels for :mod:`neurorack.models.impact.spectral_synth` (no gradient, CPU).

At inference the synthesis tensors are small (~90 frames × 32 partials for a 1 s hit), so the
PyTorch versions spend most of their time in per-operation overhead: ~20 broadcasts, a gather
and a scatter for the partials, a ``cos`` over every bin for the comb. These numba loops compute
the same values in one pass each and are what make the default generator several hundred times
faster than real time. :class:`~neurorack.models.impact.spectral_synth.SpectralSynth` calls them only
when no gradient is needed and the tensors live on the CPU; the tests check them against the
differentiable PyTorch path. They release the GIL (``nogil``), as torch operations do, so a render
thread running them never holds up the audio callback's Python code.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import torch
from torch import Tensor

from neurorack.numba_math import FAST_MATH, cos_sin_turns


def kernels_apply(*tensors: Tensor) -> bool:
    """Whether the compiled kernels may replace the PyTorch path: CPU float32, no gradient wanted."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def add_partials_rows(
    out: np.ndarray,
    freqs: np.ndarray,
    amps: np.ndarray,
    phases: np.ndarray,
    rows: np.ndarray,
    lobe: np.ndarray,
    *,
    bins_per_hz: float,
    max_hz: float,
    half_width: int,
    oversample: int,
    image_partials: int,
) -> None:
    """Add windowed sinusoids to the spectra ``out: float32[M, bins, 2]`` in place (``SpectralSynth.partial_spectra``).

    ``freqs, amps, phases: float32[M, K]`` (Hz, peak amplitude, radians at the frame centre); ``rows`` and
    ``lobe`` are the synth's lobe tables.
    """
    frames, k = freqs.shape
    if k == 0 or frames == 0:
        return
    kernel: Any = _add_partials  # numba dispatcher
    kernel(out, freqs, amps, phases, rows, lobe, bins_per_hz, max_hz, half_width, oversample, min(k, image_partials))


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _add_partials(
    out: np.ndarray,
    freqs: np.ndarray,
    amps: np.ndarray,
    phases: np.ndarray,
    rows: np.ndarray,
    lobe: np.ndarray,
    bins_per_hz: float,
    max_hz: float,
    hw: int,
    oversample: int,
    low_k: int,
) -> None:  # pragma: no cover - compiled; tested against the PyTorch path
    frames, n_partials = freqs.shape
    last = lobe.shape[0] - 1
    for m in range(frames):
        for k in range(n_partials):
            f = freqs[m, k]
            a = amps[m, k] * 0.5 if (f > 0.0 and f < max_hz) else 0.0
            centre = min(max(f, 0.0), max_hz) * bins_per_hz
            cos_t, sin_t = cos_sin_turns(phases[m, k] * (0.5 / math.pi) - 0.5 * centre)  # θ = φ - π c
            cr = a * cos_t
            ci = a * sin_t
            base = math.floor(centre)
            row = min(int((centre - base) * oversample), oversample - 1)
            first = int(base) - hw + 1
            for j in range(2 * hw):
                b = first + j
                if b < 0:
                    continue
                wr = rows[row, 2 * j]
                wi = rows[row, 2 * j + 1]
                out[m, b, 0] += cr * wr - ci * wi
                out[m, b, 1] += ci * wr + cr * wi
            if k < low_k:
                # negative-frequency image: bins 0 ... hw get conj-phase * W(j + c)
                for j in range(hw + 1):
                    delta = j + centre
                    if delta >= hw + 1:
                        continue
                    idx = min(int(np.round((delta + hw + 1) * oversample)), last)
                    l0 = lobe[idx, 0]
                    l1 = lobe[idx, 1]
                    out[m, j, 0] += cr * l0 + ci * l1
                    out[m, j, 1] += cr * l1 - ci * l0


def band_noise_rows(
    noise: np.ndarray,
    band_gains: np.ndarray,
    band_runs: np.ndarray,
    band_weights: np.ndarray,
    f0: np.ndarray,
    depth: float,
    bin_hz: float,
) -> np.ndarray:
    """Filtered noise spectra (``SpectralSynth.noise_spectra``): ``noise: float32[M, bins, 2]`` times the band gains
    ``float32[M, nb]`` interpolated to the bins, times the harmonic comb of ``f0: float64[M]`` Hz at ``depth``
    (none when 0). ``band_runs``, ``band_weights``: the band matrix as :func:`band_pairs` describes it; the
    comb's cosine comes from an inline polynomial (:func:`cos_sin_turns`), not one libm call per bin.
    Returns new ``float32[M, bins, 2]`` spectra."""
    out = np.empty(noise.shape, dtype=np.float32)
    kernel: Any = _band_noise  # numba dispatcher
    kernel(noise, band_gains, band_runs, band_weights, f0, depth, bin_hz, out)
    return out


def hann_convolve_rows(spectra: np.ndarray) -> np.ndarray:
    """:func:`~neurorack.models.impact.spectral_synth.hann_convolve` compiled, in place on ``float32[M, bins, 2]``
    (returned)."""
    kernel: Any = _hann_convolve  # numba dispatcher
    kernel(spectra)
    return spectra


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _hann_convolve(spectra: np.ndarray) -> None:  # pragma: no cover - compiled; tested against the PyTorch path
    frames, bins, _ = spectra.shape
    for m in range(frames):
        row = spectra[m]
        # bin -1 is the conjugate of bin 1, bin `bins` the conjugate of bin `bins - 2`
        prev_re, prev_im = row[1, 0], -row[1, 1]
        mirror_re, mirror_im = row[bins - 2, 0], -row[bins - 2, 1]  # read before the loop overwrites it
        for b in range(bins):
            re, im = row[b, 0], row[b, 1]
            if b + 1 < bins:
                next_re, next_im = row[b + 1, 0], row[b + 1, 1]
            else:
                next_re, next_im = mirror_re, mirror_im
            row[b, 0] = 0.5 * re - 0.25 * (prev_re + next_re)
            row[b, 1] = 0.5 * im - 0.25 * (prev_im + next_im)
            prev_re, prev_im = re, im


def band_pairs(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A band-to-bin interpolation matrix ``[nb, bins]`` as runs of bins reading the same two neighbouring bands.

    Returns:
        ``int64[R, 4]`` runs ``(first bin, end bin, band, next band)`` covering every bin in order, and
        ``float32[2, bins]``: each bin's weight of its run's band and of the next band.

    Raises:
        ValueError: a bin reads other bands than two neighbours (not an interpolation matrix).
    """
    nb, bins = matrix.shape
    low = np.zeros(bins, dtype=np.int64)
    weights = np.zeros((2, bins), dtype=np.float32)
    for b in range(bins):
        used = np.flatnonzero(matrix[:, b])
        first = min(int(used[0]), max(nb - 2, 0)) if used.size else 0
        if used.size and used[-1] > first + 1:
            raise ValueError(f"bin {b} reads bands {used.tolist()}: not neighbours")
        low[b] = first
        weights[0, b] = matrix[first, b]
        if first + 1 < nb:
            weights[1, b] = matrix[first + 1, b]
    starts = np.flatnonzero(np.diff(low, prepend=-1))
    ends = np.append(starts[1:], bins)
    runs = np.stack([starts, ends, low[starts], np.minimum(low[starts] + 1, nb - 1)], axis=1)
    return runs.astype(np.int64), weights


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _band_noise(
    noise: np.ndarray,
    band_gains: np.ndarray,
    band_runs: np.ndarray,
    band_weights: np.ndarray,
    f0: np.ndarray,
    depth: float,
    bin_hz: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled; tested against the PyTorch path
    # written as contiguous loops over slices so that they vectorise (gathers and strided
    # real/imaginary pairs do not: 2x slower measured)
    frames, bins, _ = noise.shape
    flat_in = noise.reshape(frames, 2 * bins)
    flat_out = out.reshape(frames, 2 * bins)
    gains = np.empty(bins, dtype=np.float32)
    wide = np.empty(2 * bins, dtype=np.float32)
    w_low, w_high = band_weights[0], band_weights[1]
    for m in range(frames):
        row = band_gains[m]
        for r in range(band_runs.shape[0]):
            start, stop = band_runs[r, 0], band_runs[r, 1]
            low, high = row[band_runs[r, 2]], row[band_runs[r, 3]]
            g, u, v = gains[start:stop], w_low[start:stop], w_high[start:stop]
            for n in range(stop - start):
                g[n] = low * u[n] + high * v[n]
        if depth > 0.0:
            period = max(f0[m], bin_hz) / bin_hz  # bins per period
            d = depth * min(max((period - 2.0) / 2.0, 0.0), 1.0)
            step = 1.0 / period
            comb = wide[:bins]  # scratch until the gains are spread below
            total = 0.0
            for b in range(bins):
                comb[b] = 0.5 + 0.5 * cos_sin_turns(b * step)[0]
                total += comb[b]
            scale = np.float32(d / max(total / bins, 1e-3))
            floor = np.float32(1.0 - d)
            for b in range(bins):
                gains[b] *= floor + scale * comb[b]
        for b in range(bins):  # one gain per real and imaginary part
            wide[2 * b] = gains[b]
            wide[2 * b + 1] = gains[b]
        source, target = flat_in[m], flat_out[m]
        for n in range(2 * bins):
            target[n] = source[n] * wide[n]


def phases(freqs: Tensor, hop_seconds: float, initial: Tensor | None = None) -> Tensor:
    """Frame-centre phases ``[B, M, K]`` (radians in ``[0, 2π)``) of ``freqs [B, M, K]`` Hz held over
    ``hop_seconds``, trapezoid rule, accumulated in float64; ``initial [K]`` radians at frame 0."""
    return torch.from_numpy(phases_rows(_np(freqs), hop_seconds, initial))


def phases_rows(freqs: np.ndarray, hop_seconds: float, initial: Tensor | np.ndarray | None = None) -> np.ndarray:
    """:func:`phases` on NumPy: ``freqs: float32[..., M, K]`` -> ``float32[..., M, K]``; ``initial``: float64 when
    an array."""
    k = freqs.shape[-1]
    out = np.empty(freqs.shape, dtype=np.float32)
    if initial is None:
        start = np.zeros(k)
    elif isinstance(initial, np.ndarray):
        start = initial
    else:
        start = initial.detach().to(torch.float64).reshape(k).numpy()
    kernel: Any = _phases  # numba dispatcher
    kernel(freqs.reshape(-1, *freqs.shape[-2:]), hop_seconds, start, out.reshape(-1, *freqs.shape[-2:]))
    return out


@numba.njit(cache=True, nogil=True, fastmath={"contract"})
def _phases(
    freqs: np.ndarray, hop_seconds: float, start: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled; tested against the PyTorch path
    batch, frames, k = freqs.shape
    acc = np.empty(k)  # per partial, the sum of wrapped steps, as the PyTorch path adds them
    for b in range(batch):
        acc[:] = 0.0
        for m in range(frames):
            if m > 0:
                for j in range(k):
                    step = math.pi * hop_seconds * (np.float64(freqs[b, m, j]) + np.float64(freqs[b, m - 1, j]))
                    acc[j] += _wrap_turn(step)
            for j in range(k):
                out[b, m, j] = _wrap_turn(acc[j] + start[j])


@numba.njit(inline="always")
def _wrap_turn(x: float) -> float:  # pragma: no cover - compiled
    """``x mod 2π`` in ``[0, 2π)`` (Python's and ``torch.remainder``'s sign rule) without a libm ``fmod`` call."""
    two_pi = 2.0 * math.pi
    r = x - two_pi * math.floor(x * (1.0 / two_pi))
    return r if r < two_pi else 0.0
