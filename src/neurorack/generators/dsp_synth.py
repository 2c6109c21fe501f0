"""The classical DSP baseline (SPEC §6): a frame-wise spectral-modelling descriptor synth.

A harmonic-plus-noise model (Serra & Smith 1990, "Spectral Modeling Synthesis"; the same
split as DDSP, Engel et al. 2020) whose parameters are set per descriptor frame from the
seven curves (SPEC §2) instead of being learnt:

**Spectral envelope** (centroid, bandwidth, roll-off). Each frame gets a smooth magnitude
envelope over frequency, a generalised-gamma bump ``M(f) ∝ f^(a−1) · exp(−(f/θ)^p)``.
Its magnitude-weighted mean, spread and 85 % quantile are closed-form in ``(a, p, θ)``, which
are the quantities librosa's centroid, bandwidth and roll-off measure on ``|STFT|``:
``a`` (for each candidate ``p``) is read from a table so that bandwidth / centroid matches,
``p`` is chosen so that roll-off / centroid matches best, and ``θ`` is refined so that the
envelope's centroid *on the STFT bins* (truncated at Nyquist) equals the requested centroid.

**Noise**: per frame, a complex Gaussian spectrum with the frame's power spectrum (the band
``M²`` plus the floor below), inverse FFT, Hann window, overlap-add at the descriptor hop (75 %
overlap with librosa's 2048 / 512), normalised by the summed squared window so its variance is
exactly the spectrum's mean; consecutive spectra cross-fade over the window, so no clicks.

**Harmonics** at ``f0``: a bank of sines (phase accumulated from the sample-wise,
linearly interpolated ``f0``; Schroeder phases for a low crest factor) whose amplitudes sample
the same envelope shape at ``h · f0``, its scale refitted so the comb's own centroid is the
requested one. A comb cannot be darker than its fundamental nor brighter than its highest
partial (at most :data:`MAX_HARMONICS`, below 0.95 × Nyquist), so its power is scaled by
``ρ = min(1, centroid / f0)`` times the share of the envelope's power below that partial: a
spurious ``f0`` (YIN on noise) above a dark request, or far below a bright one, stays quiet
instead of moving the brightness.

**Mix** (flatness). The noise band gets the power fraction ``q = clip(flatness / 0.25, 0, 1)``
(:data:`NOISE_FLATNESS`: noisy hits measure 0.1–0.5 at their onset), the comb ``(1 − q) · ρ``.
Spectral flatness is a geometric mean, so it is set by whatever lies *between* and *beyond*
the partials and the band: there a broadband noise floor (the band's power spectrum to the
power :data:`FLOOR_TILT`, i.e. the envelope widened, following its brightness) is added at the
level whose expected geometric mean gives the requested flatness — Gaussian noise's log power
is its mean log minus Euler's ``γ``, so the floor's geometric mean is ``e^γ · flatness`` times the
signal power. The floor is capped at the band's power (``q``): a louder floor would make tonal
frames flat but also much brighter, since librosa's centroid weights magnitudes, not powers.

**Brightness of the mixture.** The floor and the comb move the measured centroid away from the
envelope's, so the centroid the envelopes are centred on is corrected twice with a prediction of
what :func:`neurorack.describe` will measure (the noise's Rayleigh-mean magnitudes plus each
partial's Hann main lobe).

**Level** (rms). A sample-wise gain, linearly interpolated between frame centres, is refined
three times so that the rms of the output, framed exactly as :func:`neurorack.describe` frames
it (centred, zero-padded, rectangular), matches the requested rms curve.

Not rendered independently: **zcr** (for noise it follows from the spectral shape, by Rice's
formula) — it is ignored. Deterministic for a given seed (the noise is the only randomness).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.special import gammaincinv, gammaln

from neurorack.descriptors import DescriptorConfig, descriptor_index
from neurorack.generators.base import Generator

#: Most harmonics rendered per frame (the envelope usually makes most of them negligible).
MAX_HARMONICS = 200

#: Flatness at and above which the output is all noise; below it the noise power fraction is
#: ``flatness / NOISE_FLATNESS``. White noise measures ``e^−γ`` ≈ 0.56; recorded noisy hits
#: (snares, hats, cymbals) 0.1–0.5 at their onset; pitched and decaying tones 1e-3 and below.
NOISE_FLATNESS = 0.25

#: Envelope floor relative to its peak (−100 dB in power, librosa's flatness ``amin`` scale).
_ENV_FLOOR = 1e-5
#: Exponent widening the envelope into the noise floor (0 white, 1 the band itself). On 20 held-out
#: drums, 0.25 / 0.5 / 0.75 give MR-STFT 1.84 / 1.89 / 1.96, centroid slope 0.66 / 1.00 / 0.99 and
#: flatness slope 0.42 / 0.21 / 0.18 (no floor: 2.02, 0.95, 0.03).
FLOOR_TILT = 0.5
_EULER_GAMMA = 0.5772156649015329
_ROLL = 0.85
_GAIN_ITERATIONS = 3
_CENTROID_PASSES = 2

_RMS, _FLAT, _ROLLOFF, _BW, _CENTROID, _F0 = (
    descriptor_index(n) for n in ("rms", "flatness", "rolloff", "bandwidth", "centroid", "f0")
)


@functools.cache
def _shape_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generalised-gamma shapes: ``(a_grid[A], p_grid[P], cv[P, A], r[P, A], g1[P, A])``.

    For ``M(f) ∝ f^(a−1) exp(−(f/θ)^p)``: mean ``θ·g1``, coefficient of variation ``cv`` (std / mean)
    and ``r`` = 85 % quantile / mean. ``cv`` decreases strictly with ``a`` for every ``p``.
    """
    a_grid = np.geomspace(0.05, 400.0, 200)
    p_grid = np.geomspace(0.35, 6.0, 24)
    a, p = a_grid[None, :], p_grid[:, None]
    s = a / p
    g1 = np.exp(gammaln((a + 1) / p) - gammaln(s))
    g2 = np.exp(gammaln((a + 2) / p) - gammaln(s))
    cv = np.sqrt(np.maximum(g2 / g1**2 - 1.0, 0.0))
    r = gammaincinv(s, _ROLL) ** (1.0 / p) / g1
    return a_grid, p_grid, cv, r, g1


def _fit_shapes(cv: np.ndarray, ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame ``(a, p, g1)`` whose spread matches ``cv`` and whose roll-off/centroid is nearest ``ratio``."""
    a_grid, p_grid, cv_tab, r_tab, _ = _shape_table()
    log_a = np.log(a_grid)
    n_p = p_grid.size
    a_fit = np.empty((n_p, cv.size))
    r_fit = np.empty((n_p, cv.size))
    for i in range(n_p):
        # cv decreases with a: interpolate log a against log cv on reversed (increasing) arrays
        la = np.interp(np.log(cv), np.log(cv_tab[i, ::-1]), log_a[::-1])
        a_fit[i] = np.exp(la)
        r_fit[i] = np.exp(np.interp(la, log_a, np.log(r_tab[i])))
    best = np.abs(np.log(r_fit) - np.log(ratio)[None, :]).argmin(axis=0)
    cols = np.arange(cv.size)
    a = a_fit[best, cols]
    p = p_grid[best]
    g1 = np.exp(gammaln((a + 1) / p) - gammaln(a / p))
    return a, p, g1


def _log_envelope(freqs: np.ndarray, a: np.ndarray, p: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """``log M`` at ``freqs[..., K]`` for per-frame parameters ``[F]`` -> ``[F, K]`` (unnormalised)."""
    x = freqs / theta[:, None]
    return (a[:, None] - 1.0) * np.log(x) - x ** p[:, None]


def _refine_theta(
    freqs: np.ndarray,
    a: np.ndarray,
    p: np.ndarray,
    theta: np.ndarray,
    centroid: np.ndarray,
    mask: np.ndarray | None = None,
    iterations: int = 3,
) -> np.ndarray:
    """Rescale ``theta[F]`` so the magnitude-weighted mean of ``M`` over ``freqs[F, K]`` is ``centroid[F]``.

    Corrects the truncation at Nyquist and the sampling on STFT bins or harmonics (fixed point,
    each step clipped to ×[0.25, 4]); ``mask[F, K]`` excludes frequencies (e.g. above Nyquist).
    """
    for _ in range(iterations):
        log_m = _log_envelope(freqs, a, p, theta)
        if mask is not None:
            log_m = np.where(mask, log_m, -np.inf)
        mag = np.exp(log_m - log_m.max(axis=1, keepdims=True))
        measured = (mag * freqs).sum(axis=1) / mag.sum(axis=1)
        theta = theta * np.clip(centroid / np.maximum(measured, 1e-3), 0.25, 4.0)
    return theta


class DSPSynth(Generator):
    """Harmonic-plus-noise spectral-modelling synth driven by the descriptor curves.

    ``generate(curves: float[frames, 7], seed) -> float32[frames * hop]`` at
    ``descriptor_config.sample_rate``. See the module docstring for the model; uses rms,
    roll-off, flatness, bandwidth, centroid and f0 (zcr is implied by the spectrum).
    """

    name = "dsp"

    def __init__(self, descriptor_config: DescriptorConfig | None = None) -> None:
        super().__init__(descriptor_config or DescriptorConfig())
        cfg = self.descriptor_config
        self._n_fft = cfg.frame_length
        self._bins = np.arange(self._n_fft // 2 + 1) * (cfg.sample_rate / self._n_fft)
        # frequency of bin 0 taken half a bin up, so that f^(a-1) stays finite for a < 1
        self._bins_eval = self._bins.copy()
        self._bins_eval[0] = self._bins[1] / 2
        self._window = np.hanning(self._n_fft + 1)[:-1]  # periodic Hann, as the analysis
        self._window_sum = float(self._window.sum())
        self._window_energy = float((self._window**2).sum())

    # -- parameters ----------------------------------------------------------------------------
    def _shapes(self, curves: np.ndarray, centroid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Envelope shape ``(a, p, theta)`` per frame of ``curves[F, 7]``, centred on ``centroid[F]`` Hz on the bins."""
        nyq = self.sample_rate / 2
        df = self._bins[1]
        bandwidth = np.clip(curves[:, _BW], df / 2, nyq)
        rolloff = np.clip(curves[:, _ROLLOFF], df, nyq)
        cv = np.clip(bandwidth / centroid, 0.02, 10.0)
        ratio = np.clip(rolloff / centroid, 0.05, 10.0)
        a, p, g1 = _fit_shapes(cv, ratio)
        theta = _refine_theta(
            np.broadcast_to(self._bins_eval, (curves.shape[0], self._bins.size)), a, p, centroid / g1, centroid
        )
        return a, p, theta

    def _parameters(
        self, curves: np.ndarray, target: np.ndarray, aim: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Synthesis parameters for ``curves[F, 7]`` with envelopes centred on ``aim[F]`` Hz.

        Returns ``(psd[F, bins], amp[F, K], f0[F], predicted_centroid[F])``: the noise power spectrum
        (sample variance per bin), the harmonic amplitudes, the fundamental, and the centroid a
        describe() of the result is expected to measure (Rayleigh mean of the noise magnitudes plus
        each partial's Hann main lobe, ``A · Σw``).
        """
        nyq = self.sample_rate / 2
        a, p, theta = self._shapes(curves, aim)
        log_env = _log_envelope(self._bins_eval[None, :], a, p, theta)
        env = np.exp(np.maximum(log_env - log_env.max(axis=1, keepdims=True), math.log(_ENV_FLOOR)))  # [F, bins]
        power = env**2
        flatness = np.clip(curves[:, _FLAT], 0.0, 1.0)
        q = np.clip(flatness / NOISE_FLATNESS, 0.0, 1.0)

        # harmonic comb: the same envelope shape, its scale refitted so the comb's centroid is the aim
        f0 = np.clip(curves[:, _F0], 20.0, 0.9 * nyq)  # the fundamental itself is always below the mute
        n_harm = int(min(MAX_HARMONICS, max(1, math.floor(0.95 * nyq / float(f0.min())))))
        harm_freqs = f0[:, None] * np.arange(1, n_harm + 1)[None, :]  # [F, K]
        audible = harm_freqs < 0.95 * nyq
        theta_h = _refine_theta(harm_freqs, a, p, theta, aim, audible)
        log_h = np.where(audible, _log_envelope(harm_freqs, a, p, theta_h), -np.inf)
        harm_env = np.exp(log_h - log_h.max(axis=1, keepdims=True))
        harm_energy = (harm_env**2).sum(axis=1)
        # a comb cannot be darker than its fundamental nor brighter than its top partial: scale it by the
        # centroid / f0 ratio and by the share of the envelope's power below its highest harmonic
        top = np.minimum(n_harm * f0, 0.95 * nyq)
        below = (power * (self._bins[None, :] <= top[:, None])).sum(axis=1) / power.sum(axis=1)
        harm_power = (1.0 - q) * np.clip(target / f0, 0.0, 1.0) * below
        amp = harm_env * np.sqrt(2.0 * harm_power / harm_energy)[:, None]

        # noise: the envelope band at power q, plus a broadband floor under the partials whose level sets
        # the flatness of tonal frames (the geometric mean of their power spectrum is the floor's × e^-γ)
        band = power / power.mean(axis=1, keepdims=True)
        tilt = band**FLOOR_TILT
        tilt /= np.exp(np.log(tilt).mean(axis=1, keepdims=True))  # geometric mean 1
        signal = q + harm_power
        floor = tilt * (math.exp(_EULER_GAMMA) * flatness * signal)[:, None]
        # at most the band's own power: a floor louder than that would brighten tonal frames (magnitude-weighted
        # centroid) far more than the flatness asks for
        floor *= np.minimum(1.0, q * signal / np.maximum(floor.mean(axis=1), 1e-30))[:, None]
        psd = q[:, None] * band + floor

        noise_mag = np.sqrt(np.pi / 4 * psd * self._window_energy)
        harm_mag = amp * self._window_sum
        num = (noise_mag * self._bins).sum(axis=1) + (harm_mag * harm_freqs).sum(axis=1)
        den = noise_mag.sum(axis=1) + harm_mag.sum(axis=1)
        predicted = num / np.maximum(den, 1e-30)
        return psd, amp, f0, predicted

    # -- synthesis -----------------------------------------------------------------------------
    def _generate(self, descriptors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        curves = descriptors.astype(np.float64)
        n_frames = curves.shape[0]
        df, nyq = self._bins[1], self.sample_rate / 2
        target = np.clip(curves[:, _CENTROID], df, 0.9 * nyq)
        aim = target
        for _ in range(_CENTROID_PASSES):  # aim the envelopes so the predicted mixture centroid is the target
            *_, predicted = self._parameters(curves, target, aim)
            aim = np.clip(aim * np.clip(target / np.maximum(predicted, df), 0.5, 2.0), df, 0.9 * nyq)
        psd, amp, f0, _ = self._parameters(curves, target, aim)
        unit = self._noise(psd, n_frames, rng) + self._harmonics(amp, f0, n_frames * self.hop_length)
        return self._match_rms(unit, curves[:, _RMS]).astype(np.float32)

    def _noise(self, psd: np.ndarray, n_frames: int, rng: np.random.Generator) -> np.ndarray:
        """Overlap-added Gaussian noise ``float64[frames * hop]`` with the per-frame power spectrum ``psd[F, bins]``.

        ``psd`` is in units of sample variance per bin: the noise's variance is its mean over the bins.
        Frames are interpolated linearly (in power) onto the synthesis frames.
        """
        hop, n_fft = self.hop_length, self._n_fft
        syn_hop = max(1, min(hop, n_fft // 4))
        n_out = n_frames * hop
        # synthesis frames centred every syn_hop samples, from before 0 to after the end
        centres = np.arange(-n_fft // 2 - syn_hop, n_out + n_fft // 2 + syn_hop, syn_hop)
        pos = np.clip(centres / hop, 0, n_frames - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, n_frames - 1)
        frac = (pos - lo)[:, None]
        power = psd[lo] * (1 - frac) + psd[hi] * frac  # [S, bins]
        # irfft of X_k with E|X_k|^2 = n_fft * P_k has variance ~ (2 / n_fft) * sum_k P_k = mean_k P_k
        spectrum = rng.standard_normal((centres.size, power.shape[1], 2)).view(np.complex128)[..., 0]
        spectrum *= np.sqrt(power * (n_fft / 2.0))
        frames = np.fft.irfft(spectrum, n=n_fft, axis=1) * self._window
        offset = n_fft // 2 - int(centres[0])  # buffer index of sample 0 is offset
        length = int(centres[-1]) + n_fft // 2 + offset
        out = np.zeros(length)
        norm = np.zeros(length)
        w2 = self._window**2
        for i, c in enumerate(centres):
            start = int(c) - n_fft // 2 + offset
            out[start : start + n_fft] += frames[i]
            norm[start : start + n_fft] += w2
        out = out[offset : offset + n_out]
        return out / np.sqrt(np.maximum(norm[offset : offset + n_out], 1e-3))

    def _harmonics(self, amp: np.ndarray, f0: np.ndarray, n_out: int) -> np.ndarray:
        """Sum of sines ``float64[n_out]``; ``amp[F, K]`` and ``f0[F]`` are interpolated between frame centres.

        Harmonic ``h`` is ``Im(e^{i s_h} z^h)`` with ``z = e^{iφ}``, computed by repeated complex
        multiplication (one pass over the signal per harmonic, no ``[T, K]`` array).
        """
        limit = 0.95 * self.sample_rate / 2
        peak = amp.max(axis=0)
        keep = np.flatnonzero(peak > 1e-4 * max(float(peak.max(initial=0.0)), 1e-12))
        if keep.size == 0:
            return np.zeros(n_out)
        frames = np.arange(f0.size) * self.hop_length
        samples = np.arange(n_out)
        f0_s = np.interp(samples, frames, f0)
        phase = 2 * np.pi * np.cumsum(f0_s) / self.sample_rate
        # single precision: 200 recursive products drift by < 1e-4 rad, far below audibility
        z = np.exp(1j * (phase - phase[0])).astype(np.complex64)
        zh = np.ones(n_out, dtype=np.complex64)
        out = np.zeros(n_out, dtype=np.float32)
        frac = np.tile(np.arange(self.hop_length, dtype=np.float32) / self.hop_length, f0.size)  # n_out = F * hop
        amp = amp.astype(np.float32)
        steps = np.diff(amp, axis=0, append=amp[-1:])  # hold the last frame
        n_harm = int(keep[-1]) + 1
        for h in range(1, n_harm + 1):
            zh *= z
            if peak[h - 1] <= 1e-4 * peak.max():
                continue
            # Schroeder (1970) phases keep the crest factor of a bright comb low (no in-phase pulse train)
            start = -np.pi * h * (h - 1) / n_harm
            a = (np.repeat(amp[:, h - 1], self.hop_length) + np.repeat(steps[:, h - 1], self.hop_length) * frac) * (
                f0_s < limit / h
            )
            out += a * (zh.imag * np.float32(math.cos(start)) + zh.real * np.float32(math.sin(start)))
        return out.astype(np.float64)

    def _match_rms(self, unit: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Apply a gain, linear between frame centres, so the framed rms of the output follows ``target``."""
        n_frames = target.size
        centres = np.arange(n_frames) * self.hop_length
        samples = np.arange(unit.size)
        gain = np.ones(n_frames)
        for it in range(_GAIN_ITERATIONS + 1):
            out = unit * np.interp(samples, centres, gain)
            measured = self._frame_rms(out, n_frames)
            ratio = np.where(measured > 1e-12, target / np.maximum(measured, 1e-12), 0.0)
            gain *= ratio if it == 0 else np.clip(ratio, 0.25, 4.0)
            gain[target <= 0] = 0.0
        return unit * np.interp(samples, centres, gain)

    def _frame_rms(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        """rms of the centred, zero-padded rectangular frames :func:`neurorack.describe` uses, ``[n_frames]``."""
        n = self._n_fft
        padded = np.pad(audio, (n // 2, n // 2))
        cums = np.concatenate([[0.0], np.cumsum(padded**2)])
        starts = np.arange(n_frames) * self.hop_length
        return np.sqrt(np.maximum(cums[starts + n] - cums[starts], 0.0) / n)
