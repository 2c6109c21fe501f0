"""Frequency-domain (FFT⁻¹) additive + filtered-noise synthesis with overlap-add.

Sinusoids are written straight into short-time spectra as the main lobe of the
synthesis window's transform (Rodet & Depalle, "Spectral envelopes and inverse
FFT synthesis", AES 1992), noise as a filtered complex spectrum, and one
inverse FFT per synthesis frame renders both. Compared with time-domain
oscillators (one ``sin`` per partial per sample) the cost no longer grows with
the number of partials, which is what makes the default generator hundreds of
times faster than real time on one CPU thread.

Conventions: synthesis frame ``m`` is centred on sample ``m * hop``; the
window is a periodic Hann of ``n_fft`` samples and ``hop = n_fft / overlap``
(overlap 2 or 4), so windows overlap-add to the constant ``overlap / 2``. Amplitudes are peak amplitudes of the
sinusoids (``A cos(...)``), frequencies in Hz.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from neurorack.models.impact.spectral_kernels import (
    add_partials_rows,
    band_noise_rows,
    band_pairs,
    hann_convolve_rows,
    kernels_apply,
)
from neurorack.models.impact.spectral_kernels import phases as phase_kernel


def hann_lobe_table(n_fft: int, half_width: int, oversample: int) -> np.ndarray:
    """Complex DTFT ``W(δ) = Σ_n w[n] exp(-2iπ δ n / N)`` of the periodic Hann window.

    Sampled for ``δ`` (in bins) on ``[-half_width - 1, half_width + 1]`` with ``oversample``
    points per bin. Returns ``complex128[points]``.
    """
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)
    deltas = np.arange(-(half_width + 1) * oversample, (half_width + 1) * oversample + 1) / oversample
    return (window[None, :] * np.exp(-2j * np.pi * deltas[:, None] * n[None, :] / n_fft)).sum(axis=1)


def log_band_matrix(n_bands: int, n_bins: int, sample_rate: int, fmin: float = 40.0) -> np.ndarray:
    """``float32[n_bands, n_bins]``: linear interpolation from log-spaced band gains to FFT bins."""
    nyquist = sample_rate / 2
    centres = np.geomspace(fmin, nyquist, n_bands)
    freqs = np.linspace(0, nyquist, n_bins)
    log_f = np.log(np.maximum(freqs, fmin))
    log_c = np.log(centres)
    matrix = np.zeros((n_bands, n_bins))
    for b in range(n_bands):
        unit = np.zeros(n_bands)
        unit[b] = 1
        matrix[b] = np.interp(log_f, log_c, unit)
    return matrix.astype(np.float32)


class SpectralSynth(nn.Module):
    """Render partials and noise from frame-rate parameters.

    Spectra are carried as real tensors ``[B, M, bins, 2]`` (real, imaginary interleaved), so one
    ``scatter_add`` writes every partial and ``view_as_complex`` hands them to the inverse FFT
    without a copy.

    Args:
        sample_rate: Hz.
        n_fft: synthesis frame (power of two); ``hop = n_fft // overlap``.
        overlap: frames overlapping each sample, 2 or 4 (Hann windows overlap-add to a constant for both).
        half_width: main-lobe half width in bins written per partial (3 keeps errors near -45 dB).
        oversample: lobe table points per bin.
        n_bands: log-spaced noise bands.
        window_after_filter: draw the noise unwindowed, filter it, then apply the Hann window as a
            3-tap convolution over the bins: every noise frame then fades to zero at its edges. Windowing
            before filtering (False, files written before the option) lets a steep filter's response wrap
            round the frame, and the steps at the frame edges add a broadband floor that pulls a dark
            request's centroid up (``docs/design-notes.md``).
    """

    lobe: Tensor
    rows: Tensor
    bands: Tensor
    band_runs: Tensor
    band_weights: Tensor

    def __init__(
        self,
        *,
        sample_rate: int = 44_100,
        n_fft: int = 1024,
        half_width: int = 3,
        oversample: int = 1024,
        n_bands: int = 64,
        overlap: int = 4,
        window_after_filter: bool = False,
    ) -> None:
        super().__init__()
        self.window_after_filter = window_after_filter
        if n_fft < 16 or n_fft & (n_fft - 1):
            raise ValueError(f"n_fft must be a power of two >= 16, got {n_fft}")
        if overlap not in (2, 4):
            raise ValueError(f"overlap must be 2 or 4, got {overlap}")
        self.overlap = overlap
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop = n_fft // overlap
        self.half_width = half_width
        self.oversample = oversample
        self.n_bins = n_fft // 2 + 1
        # partials whose lobe can reach bin 0 (f < (half_width + 1) bins), assuming f0 >= 20 Hz
        self.image_partials = max(1, math.ceil((half_width + 1) * sample_rate / n_fft / 20.0))
        table = hann_lobe_table(n_fft, half_width, oversample)
        lobe = np.stack([table.real, table.imag], axis=-1)  # [points, 2]
        self.register_buffer("lobe", torch.tensor(lobe, dtype=torch.float32), persistent=False)
        # lobe rows: W(o - frac) for the 2*half_width offsets o, per quantised fractional bin position
        frac = np.arange(oversample) / oversample
        offsets = np.arange(-half_width + 1, half_width + 1)
        centre_idx = np.round((offsets[None, :] - frac[:, None] + half_width + 1) * oversample).astype(int)
        rows = lobe[centre_idx].reshape(oversample, 2 * half_width * 2)
        self.register_buffer("rows", torch.tensor(rows, dtype=torch.float32), persistent=False)
        matrix = log_band_matrix(n_bands, self.n_bins, sample_rate)
        self.register_buffer("bands", torch.from_numpy(matrix), persistent=False)
        # the same interpolation as the two neighbouring bands each bin reads (for the compiled kernels)
        runs, weights = band_pairs(matrix)
        self.register_buffer("band_runs", torch.from_numpy(runs), persistent=False)
        self.register_buffer("band_weights", torch.from_numpy(weights), persistent=False)

    @property
    def max_partial_hz(self) -> float:
        """Partials above this frequency are muted (their lobe would fold over Nyquist)."""
        return (self.n_bins - 1 - self.half_width - 1) * self.sample_rate / self.n_fft

    def partial_spectra(self, freqs: Tensor, amps: Tensor, phases: Tensor, out: Tensor | None = None) -> Tensor:
        """Short-time spectra of windowed sinusoids ``A cos(ω (n - N/2) + φ)``.

        Args:
            freqs: ``[B, M, K]`` Hz. amps: ``[B, M, K]`` peak amplitude.
            phases: ``[B, M, K]`` radians at the frame centre.
            out: ``[B, M, n_fft // 2 + 1, 2]`` spectra to add the partials to (in place), or None for zeros.

        Returns:
            ``[B, M, n_fft // 2 + 1, 2]`` (real, imaginary): ``out`` itself when given.
        """
        if out is None:
            out = freqs.new_zeros(freqs.shape[0], freqs.shape[1], self.n_bins, 2)
        k = freqs.shape[-1]
        if k == 0:
            return out
        if kernels_apply(out, freqs, amps, phases) and out.is_contiguous():
            rows = [t.detach().contiguous().numpy().reshape(-1, k) for t in (freqs, amps, phases)]
            self.add_partial_rows(out.detach().numpy().reshape(-1, self.n_bins, 2), *rows)
            return out
        batch, frames, n_partials = freqs.shape
        hw = self.half_width
        keep = (freqs > 0) & (freqs < self.max_partial_hz)
        amps = torch.where(keep, amps, torch.zeros_like(amps)) * 0.5
        centre = freqs.clamp(0, self.max_partial_hz) * (self.n_fft / self.sample_rate)  # bins
        theta = phases - math.pi * centre
        cr = (amps * torch.cos(theta)).unsqueeze(-1)  # a e^{iθ}, [B, M, K, 1]
        ci = (amps * torch.sin(theta)).unsqueeze(-1)
        base = centre.floor()
        row = ((centre - base) * self.oversample).long().clamp_(max=self.oversample - 1)
        w = nn.functional.embedding(row, self.rows).view(batch, frames, n_partials, 2 * hw, 2)
        wr, wi = w[..., 0], w[..., 1]
        vr = cr * wr - ci * wi  # [B, M, K, 2hw]
        vi = ci * wr + cr * wi
        # bins floor(c) - hw + 1 ... floor(c) + hw; partials stay below Nyquist - hw - 1 bins, so only
        # the low edge can fall outside: bins < 0 belong to the negative-frequency image (added below)
        bins = base.long().unsqueeze(-1) + torch.arange(-hw + 1, hw + 1, device=freqs.device)
        inside = bins >= 0
        vr, vi = vr * inside, vi * inside
        slot = bins.clamp(min=0) * 2
        flat = out.view(batch, frames, self.n_bins * 2)
        flat.scatter_add_(2, torch.cat([slot, slot + 1], dim=-1).flatten(2), torch.cat([vr, vi], dim=-1).flatten(2))
        # negative-frequency image of the lowest partials: bins 0 ... hw get conj-phase * W(j + c)
        low_k = min(n_partials, self.image_partials)
        delta = torch.arange(0, hw + 1, device=freqs.device, dtype=centre.dtype) + centre[:, :, :low_k, None]
        idx = ((delta + (hw + 1)) * self.oversample).round_().long().clamp_(max=self.lobe.shape[0] - 1)
        lw = nn.functional.embedding(idx, self.lobe) * (delta < hw + 1).unsqueeze(-1)  # [B, M, k, hw+1, 2]
        lr, li = cr[:, :, :low_k], ci[:, :, :low_k]
        image_r = (lr * lw[..., 0] + li * lw[..., 1]).sum(2)
        image_i = (lr * lw[..., 1] - li * lw[..., 0]).sum(2)
        out[:, :, : hw + 1] += torch.stack([image_r, image_i], dim=-1)
        return out

    def white_noise_spectra(
        self, batch: int, frames: int, generator: torch.Generator | None = None, device: torch.device | None = None
    ) -> Tensor:
        """Spectra of unit white noise frames: ``float32[B, frames, bins, 2]`` (real, imag).

        Hann-windowed unless :attr:`window_after_filter` (then :meth:`noise_spectra` windows them).
        """
        noise = torch.randn(batch, frames, self.n_fft, generator=generator, device=device)
        if not self.window_after_filter:
            noise = noise * torch.hann_window(self.n_fft, periodic=True, device=device)
        return torch.view_as_real(torch.fft.rfft(noise, dim=-1)).contiguous()

    def noise_spectra(
        self, noise: Tensor, band_gains: Tensor, comb_f0: Tensor | None = None, comb_depth: float = 0.0
    ) -> Tensor:
        """Filtered windowed-noise spectra.

        Args:
            noise: ``[B, M, bins, 2]`` from :meth:`white_noise_spectra`.
            band_gains: ``[B, M, n_bands]`` linear magnitude per log-spaced band.
            comb_f0, comb_depth: optional ``[B, M]`` Hz and depth 0..1 of a magnitude comb
                (:meth:`harmonic_comb`) applied on top.

        Returns:
            ``[B, M, bins, 2]``. Filtering after windowing equals windowing after filtering up to the
            gains' variation over 3 bins (they are smooth).
        """
        comb_f0 = comb_f0 if comb_depth > 0 else None
        if kernels_apply(noise, band_gains) and (comb_f0 is None or kernels_apply(comb_f0)):
            batch, frames, bins, _ = noise.shape
            rows = batch * frames
            f0 = np.zeros(rows) if comb_f0 is None else comb_f0.detach().reshape(-1).to(torch.float64).numpy()
            out = self.noise_rows(
                noise.detach().contiguous().numpy().reshape(rows, bins, 2),
                band_gains.detach().contiguous().numpy().reshape(rows, -1),
                f0,
                comb_depth if comb_f0 is not None else 0.0,
            )
            return torch.from_numpy(out).view(batch, frames, bins, 2)
        gains = band_gains @ self.bands
        if comb_f0 is not None:
            gains = gains * self.harmonic_comb(comb_f0, comb_depth)
        # complex x real: 4x faster than broadcasting
        filtered = torch.view_as_real(torch.view_as_complex(noise) * gains)
        return hann_convolve(filtered) if self.window_after_filter else filtered

    def noise_rows(self, noise: np.ndarray, band_gains: np.ndarray, f0: np.ndarray, depth: float) -> np.ndarray:
        """:meth:`noise_spectra` on one item's NumPy frames (compiled): ``noise: float32[M, bins, 2]``,
        ``band_gains: float32[M, n_bands]``, ``f0: float64[M]`` Hz (comb off when ``depth`` is 0)."""
        out = band_noise_rows(
            noise, band_gains, self.band_runs.numpy(), self.band_weights.numpy(), f0, depth,
            self.sample_rate / self.n_fft,
        )  # fmt: skip
        return hann_convolve_rows(out) if self.window_after_filter else out

    def add_partial_rows(self, spectra: np.ndarray, freqs: np.ndarray, amps: np.ndarray, phases: np.ndarray) -> None:
        """:meth:`partial_spectra` added in place to one item's NumPy spectra ``float32[M, bins, 2]`` (compiled);
        ``freqs, amps, phases: float32[M, K]``."""
        add_partials_rows(
            spectra, freqs, amps, phases, self.rows.numpy(), self.lobe.numpy(),
            bins_per_hz=self.n_fft / self.sample_rate, max_hz=self.max_partial_hz, half_width=self.half_width,
            oversample=self.oversample, image_partials=self.image_partials,
        )  # fmt: skip

    def harmonic_comb(self, f0: Tensor, depth: float) -> Tensor:
        """Magnitude comb ``[B, M, bins]`` with peaks at the multiples of ``f0: [B, M]`` Hz.

        ``(1 - d) + d · h / mean(h)`` with the raised cosine ``h = (1 + cos(2π f / f0)) / 2``, so the
        mean magnitude over the bins stays 1: noise shaped by it is periodic at ``f0`` (it has a
        pitch) and keeps its band levels. A comb needs a few bins per period, so the depth fades
        out from 4 bins (172 Hz at 1024 / 44.1 kHz) down to 2 bins per ``f0``.
        """
        bin_hz = self.sample_rate / self.n_fft
        freqs = torch.arange(self.n_bins, device=f0.device, dtype=f0.dtype) * bin_hz
        f0 = f0.clamp_min(bin_hz).unsqueeze(-1)
        h = 0.5 + 0.5 * torch.cos(2 * math.pi * freqs / f0)
        d = depth * ((f0 / bin_hz - 2.0) / 2.0).clamp(0.0, 1.0)
        return (1.0 - d) + d * h / h.mean(-1, keepdim=True).clamp_min(1e-3)

    def render(self, spectra: Tensor) -> Tensor:
        """Inverse FFT and overlap-add: ``[B, M, bins, 2]`` -> audio ``[B, (M + overlap - 1) * hop]``.

        Frame ``m`` is centred on output sample ``m * hop + n_fft / 2``.
        """
        frames = torch.fft.irfft(torch.view_as_complex(spectra.contiguous()), n=self.n_fft, dim=-1)
        batch, count, _ = frames.shape
        ov = self.overlap
        chunks = frames.reshape(batch, count, ov, self.hop)
        # chunk j of the output = sum over r of chunk r of frame j - r
        out = nn.functional.pad(chunks[:, :, 0], (0, 0, 0, ov - 1))
        for r in range(1, ov):
            out = out + nn.functional.pad(chunks[:, :, r], (0, 0, r, ov - 1 - r))
        return out.reshape(batch, (count + ov - 1) * self.hop) * (2.0 / ov)  # periodic Hann sums to ov / 2

    def forward(
        self,
        freqs: Tensor,
        amps: Tensor,
        phases: Tensor,
        band_gains: Tensor,
        noise: Tensor,
        comb_f0: Tensor | None = None,
        comb_depth: float = 0.0,
    ) -> Tensor:
        """Partials ``[B, M, K]`` + noise bands ``[B, M, n_bands]`` -> audio ``[B, (M + overlap - 1) * hop]``.

        ``noise``: ``[B, M, bins, 2]`` windowed white-noise spectra (:meth:`white_noise_spectra`);
        ``comb_f0 [B, M]`` Hz, ``comb_depth``: optional magnitude comb on the noise (:meth:`harmonic_comb`).
        Without gradients on the CPU the work is done by :mod:`neurorack.models.impact.spectral_kernels`.
        """
        spectra = self.noise_spectra(noise, band_gains, comb_f0, comb_depth)
        return self.render(self.partial_spectra(freqs, amps, phases, out=spectra))


def hann_convolve(spectra: Tensor) -> Tensor:
    """Half spectra ``[..., bins, 2]`` of frames of ``n_fft = 2 (bins - 1)`` samples, times a periodic Hann window.

    The window ``0.5 - 0.5 cos(2π n / N)`` multiplies the frame in time, which convolves its spectrum with
    ``(-1/4, 1/2, -1/4)``; the neighbours of bin 0 and of the Nyquist bin are their mirror images (conjugates).
    """
    z = torch.view_as_complex(spectra.contiguous())
    below = torch.cat([z[..., 1:2].conj(), z[..., :-1]], dim=-1)
    above = torch.cat([z[..., 1:], z[..., -2:-1].conj()], dim=-1)
    return torch.view_as_real(0.5 * z - 0.25 * (below + above))


def accumulate_phase(freqs: Tensor, hop: int, sample_rate: int, initial: Tensor | None = None) -> Tensor:
    """Phase at each frame centre for frequencies ``[B, M, K]`` Hz held over ``hop`` samples (trapezoid rule).

    Accumulated in float64 and wrapped to ``[0, 2π)``; no gradient. Without gradients on the CPU a
    compiled loop does it (:func:`~neurorack.models.impact.spectral_kernels.phases`).
    """
    if kernels_apply(freqs) and (initial is None or kernels_apply(initial)):
        return phase_kernel(freqs, hop / sample_rate, initial)
    f64 = freqs.detach().to(torch.float64)
    step = torch.remainder(math.pi * hop / sample_rate * (f64[:, 1:] + f64[:, :-1]), 2 * math.pi)
    phase = torch.cat([torch.zeros_like(f64[:, :1]), step.cumsum(1)], dim=1)
    if initial is not None:
        phase = phase + initial.to(torch.float64)
    return torch.remainder(phase, 2 * math.pi).to(freqs.dtype)
