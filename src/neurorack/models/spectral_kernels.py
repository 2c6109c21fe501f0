"""Compiled inference kernels for :mod:`neurorack.models.spectral_synth` (no gradient, CPU).

At inference the synthesis tensors are small (~90 frames × 32 partials for a 1 s hit), so the
PyTorch versions spend most of their time in per-operation overhead: ~20 broadcasts, a gather
and a scatter for the partials, a ``cos`` over every bin for the comb. These numba loops compute
the same values in one pass each and are what make the default generator several hundred times
faster than real time. :class:`~neurorack.models.spectral_synth.SpectralSynth` calls them only
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

#: LLVM fast-math flags for the kernels: reassociation (so sums vectorise), contraction, fast
#: reciprocals and functions, but not 'nnan'/'ninf': the kernels test for NaN and infinity.
FAST_MATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@numba.njit(cache=True, fastmath=FAST_MATH, inline="always")
def fast_exp(y: float) -> float:  # pragma: no cover - compiled
    """``exp(y)`` for ``|y| < 700`` from arithmetic alone, so loops around it vectorise (libm's ``exp``
    is a call): ``exp(y / 1024)`` by its Taylor series to degree 8, then squared ten times.
    Relative error < 1e-10 for ``|y| < 150`` (the shaping exponents stay below 150)."""
    r = y * (1.0 / 1024.0)
    p = 1.0 + r * (
        1.0
        + r
        * (
            0.5
            + r
            * (
                1.0 / 6.0
                + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0 + r * (1.0 / 40320.0)))))
            )
        )
    )
    for _ in range(10):
        p = p * p
    return p


def kernels_apply(*tensors: Tensor) -> bool:
    """Whether the compiled kernels may replace the PyTorch path: CPU float32, no gradient wanted."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def add_partials(
    out: Tensor,
    freqs: Tensor,
    amps: Tensor,
    phases: Tensor,
    rows: Tensor,
    lobe: Tensor,
    *,
    bins_per_hz: float,
    max_hz: float,
    half_width: int,
    oversample: int,
    image_partials: int,
) -> None:
    """Add windowed sinusoids to ``out: [B, M, bins, 2]`` in place (see ``SpectralSynth.partial_spectra``).

    ``freqs, amps, phases: [B, M, K]`` (Hz, peak amplitude, radians at the frame centre); ``rows`` and
    ``lobe`` are the synth's lobe tables.
    """
    if not out.is_contiguous():
        raise ValueError("out must be contiguous")
    batch, frames, k = freqs.shape
    if k == 0 or batch * frames == 0:
        return
    flat = out.detach().numpy().reshape(batch * frames, out.shape[2], 2)
    kernel: Any = _add_partials  # numba dispatcher
    kernel(
        flat,
        _np(freqs).reshape(-1, k),
        _np(amps).reshape(-1, k),
        _np(phases).reshape(-1, k),
        _np(rows),
        _np(lobe),
        bins_per_hz,
        max_hz,
        half_width,
        oversample,
        min(k, image_partials),
    )


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


@numba.njit(cache=True, fastmath=FAST_MATH, inline="always")
def cos_sin_turns(u: float) -> tuple[float, float]:  # pragma: no cover - compiled
    """``cos(2πu), sin(2πu)`` from arithmetic alone (no libm call, so loops around it vectorise):
    Taylor series of ``sin`` and ``cos`` at ``π v`` with ``v = u - round(u)``, then the double-angle
    formulas. Absolute error < 1e-8."""
    v = u - math.floor(u + 0.5)
    x = math.pi * v
    x2 = x * x
    s = x * (
        1.0
        + x2
        * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (1.0 / 362880.0 + x2 * (-1.0 / 39916800.0)))))
    )
    c = 1.0 + x2 * (
        -0.5
        + x2
        * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (-1.0 / 3628800.0 + x2 * (1.0 / 479001600.0)))))
    )
    return 1.0 - 2.0 * s * s, 2.0 * s * c


def comb_noise(noise: Tensor, gains: Tensor, f0: Tensor, depth: float, bin_hz: float) -> Tensor:
    """``noise [B, M, bins, 2] × gains [B, M, bins] × harmonic_comb(f0 [B, M], depth)`` as new spectra.

    The comb's cosine comes from an inline polynomial (:func:`cos_sin_turns`), not one libm call per bin.
    """
    batch, frames, bins, _ = noise.shape
    out = np.empty((batch * frames, bins, 2), dtype=np.float32)
    kernel: Any = _comb_noise  # numba dispatcher
    kernel(
        _np(noise).reshape(-1, bins, 2),
        _np(gains).reshape(-1, bins),
        _np(f0).reshape(-1).astype(np.float64),
        depth,
        bin_hz,
        out,
    )
    return torch.from_numpy(out).view(batch, frames, bins, 2)


@numba.njit(cache=True, fastmath=FAST_MATH, nogil=True)
def _comb_noise(
    noise: np.ndarray, gains: np.ndarray, f0: np.ndarray, depth: float, bin_hz: float, out: np.ndarray
) -> None:  # pragma: no cover - compiled; tested against the PyTorch path
    frames, bins = gains.shape
    h = np.empty(bins)
    for m in range(frames):
        period = max(f0[m], bin_hz) / bin_hz  # bins per period
        d = depth * min(max((period - 2.0) / 2.0, 0.0), 1.0)
        step = 1.0 / period
        total = 0.0
        for b in range(bins):
            h[b] = 0.5 + 0.5 * cos_sin_turns(b * step)[0]
            total += h[b]
        scale = d / max(total / bins, 1e-3)
        for b in range(bins):
            g = gains[m, b] * ((1.0 - d) + scale * h[b])
            out[m, b, 0] = noise[m, b, 0] * g
            out[m, b, 1] = noise[m, b, 1] * g


def phases(freqs: Tensor, hop_seconds: float, initial: Tensor | None = None) -> Tensor:
    """Frame-centre phases ``[B, M, K]`` (radians in ``[0, 2π)``) of ``freqs [B, M, K]`` Hz held over
    ``hop_seconds``, trapezoid rule, accumulated in float64; ``initial [K]`` radians at frame 0."""
    batch, frames, k = freqs.shape
    out = np.empty((batch, frames, k), dtype=np.float32)
    start = np.zeros(k) if initial is None else initial.detach().to(torch.float64).reshape(k).numpy()
    kernel: Any = _phases  # numba dispatcher
    kernel(_np(freqs), hop_seconds, start, out)
    return torch.from_numpy(out)


@numba.njit(cache=True, nogil=True)
def _phases(
    freqs: np.ndarray, hop_seconds: float, start: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled; tested against the PyTorch path
    batch, frames, k = freqs.shape
    two_pi = 2.0 * math.pi
    for b in range(batch):
        for j in range(k):
            acc = 0.0  # the sum of wrapped steps, as the PyTorch path adds them
            for m in range(frames):
                if m > 0:
                    step = math.pi * hop_seconds * (np.float64(freqs[b, m, j]) + np.float64(freqs[b, m - 1, j]))
                    acc += step % two_pi
                out[b, m, j] = (acc + start[j]) % two_pi
