"""Inverse-FFT synthesis: partials equal time-domain cosines, noise follows its band gains."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurorack.models.impact.spectral_synth import SpectralSynth, accumulate_phase, hann_lobe_table, log_band_matrix

SR = 44_100


@pytest.mark.parametrize("f0", [25.0, 55.0, 440.0, 5000.0, 19_000.0])
def test_partials_match_time_domain_cosines(f0: float) -> None:
    synth = SpectralSynth(sample_rate=SR)
    frames, hop, n_fft = 120, synth.hop, synth.n_fft
    ratios = torch.tensor([1.0, 2.0, 3.0])
    freqs = torch.full((1, frames, 3), f0) * ratios
    amps = torch.full((1, frames, 3), 0.2)
    phases = accumulate_phase(freqs, hop, SR)
    out = synth(freqs, amps, phases, torch.zeros(1, frames, 64), torch.zeros(1, frames, synth.n_bins, 2))
    y = out[0, n_fft // 2 :].numpy()
    n = np.arange(y.size)
    ref = sum(0.2 * np.cos(2 * np.pi * r * f0 * n / SR) for r in (1, 2, 3) if r * f0 < synth.max_partial_hz)
    middle = slice(n_fft, (frames - 4) * hop)
    # main lobe of +-3 bins: the truncated side lobes leave errors below -34 dB of one partial's amplitude
    assert np.abs(y[middle] - ref[middle]).max() < 0.2 * 10 ** (-34 / 20)


def test_gliding_partial_follows_frequency() -> None:
    synth = SpectralSynth(sample_rate=SR)
    frames = 160
    freqs = torch.linspace(200, 800, frames).reshape(1, frames, 1)
    amps = torch.full((1, frames, 1), 0.5)
    out = synth(
        freqs,
        amps,
        accumulate_phase(freqs, synth.hop, SR),
        torch.zeros(1, frames, 64),
        torch.zeros(1, frames, synth.n_bins, 2),
    )[0].numpy()
    half = synth.n_fft // 2
    for m in (20, 80, 140):
        seg = out[half + m * synth.hop - 1024 : half + m * synth.hop + 1024]
        spectrum = np.abs(np.fft.rfft(seg * np.hanning(seg.size), 16 * seg.size))
        peak_hz = np.argmax(spectrum) * SR / (16 * seg.size)
        assert peak_hz == pytest.approx(float(freqs[0, m, 0]), rel=0.02)


def test_noise_follows_band_gains() -> None:
    synth = SpectralSynth(sample_rate=SR, n_bands=16)
    frames = 200
    gen = torch.Generator().manual_seed(0)
    noise = synth.white_noise_spectra(1, frames, gen)
    gains = torch.zeros(1, frames, 16)
    gains[..., 10] = 1.0  # one band only
    out = synth(torch.zeros(1, frames, 1), torch.zeros(1, frames, 1), torch.zeros(1, frames, 1), gains, noise)[0]
    spectrum = np.abs(np.fft.rfft(out.numpy())) ** 2
    freqs = np.fft.rfftfreq(out.numel(), 1 / SR)
    centre = np.geomspace(40, SR / 2, 16)[10]
    near = (freqs > centre / 1.5) & (freqs < centre * 1.5)
    far = (freqs < centre / 4) | (freqs > centre * 4)
    assert spectrum[near].mean() > 1000 * spectrum[far].mean()


def test_lobe_table_and_bands_are_exact() -> None:
    table = hann_lobe_table(64, 3, 4)
    centre = table[table.size // 2]
    assert centre.real == pytest.approx(32.0)  # DC gain of a 64-point periodic Hann = N / 2
    matrix = log_band_matrix(8, 33, SR)
    np.testing.assert_allclose(matrix.sum(0), 1.0, atol=1e-6)  # a flat gain stays flat


def test_bad_fft_size() -> None:
    with pytest.raises(ValueError, match="power of two"):
        SpectralSynth(n_fft=1000)


def test_harmonic_comb_peaks_mean_and_low_pitch_fade() -> None:
    synth = SpectralSynth(sample_rate=SR, n_fft=1024)
    bin_hz = SR / 1024
    f0 = torch.tensor([[16 * bin_hz, 1.0 * bin_hz]])  # 16 bins per period, and one bin (too low)
    comb = synth.harmonic_comb(f0, depth=1.0)
    assert comb.shape == (1, 2, 513)
    full = comb[0, 0]
    assert full.mean().item() == pytest.approx(1.0, abs=1e-5)
    # raised cosine normalised by its mean: 2 at multiples of f0 (bins 0, 16, 32 ...), 0 half way between
    assert full[::16].tolist() == pytest.approx([2.0] * len(full[::16]), abs=2e-2)
    assert full[8::16].tolist() == pytest.approx([0.0] * len(full[8::16]), abs=2e-2)
    # below 2 bins per period the comb cannot be drawn: it fades to a flat 1
    assert torch.allclose(comb[0, 1], torch.ones(513))
    half = synth.harmonic_comb(torch.tensor([[16 * bin_hz]]), depth=0.5)[0, 0]
    assert torch.allclose(half, 0.5 + 0.5 * full, atol=1e-5)


def test_comb_filtered_noise_has_the_pitch_of_f0() -> None:
    """Noise through the comb is periodic at f0: YIN (the f0 descriptor) reads f0 back."""
    from neurorack.descriptors import describe

    synth = SpectralSynth(sample_rate=SR, n_fft=1024, overlap=2)
    frames = 200
    gen = torch.Generator().manual_seed(0)
    noise = synth.white_noise_spectra(1, frames, gen)
    flat = torch.zeros(1, frames, 0)
    audio = synth(flat, flat, flat, torch.ones(1, frames, 64), noise, torch.full((1, frames), 440.0), 1.0)[0].numpy()
    f0 = describe(audio, SR)[10:-10, 6]
    assert np.median(f0) == pytest.approx(440.0, rel=0.02)


@pytest.mark.parametrize("overlap", [2, 4])
def test_compiled_kernels_equal_the_differentiable_path(overlap: int) -> None:
    """Without gradients the synth runs numba kernels; they give the PyTorch path's audio (computed in
    float64 here: the float32 PyTorch path itself is off by ~1e-3 near 20 kHz, where π·bin loses digits)."""
    synth = SpectralSynth(sample_rate=SR, n_fft=1024, overlap=overlap)
    frames, k = 40, 24
    gen = torch.Generator().manual_seed(3)
    # partials from 12 Hz (images at bin 0) to past the muting limit, amplitudes and phases at random
    jitter = 1 + 0.05 * torch.rand(2, frames, k, generator=gen)
    freqs = torch.linspace(12.0, 23_000.0, k) * jitter
    amps = torch.rand(2, frames, k, generator=gen)
    phases = 2 * np.pi * torch.rand(2, frames, k, generator=gen)
    gains = torch.rand(2, frames, 64, generator=gen)
    noise = synth.white_noise_spectra(2, frames, gen)
    f0 = torch.tensor([[30.0], [440.0]]) * torch.linspace(1.0, 3.0, frames)
    inputs = (freqs, amps, phases, gains, noise, f0)
    with torch.no_grad():
        fast = synth(*inputs, 0.8)
    reference = synth.double()(*(t.double().requires_grad_() for t in inputs), 0.8)
    assert reference.requires_grad and not fast.requires_grad  # the reference took the PyTorch path
    scale = reference.detach().abs().max()
    assert (fast.double() - reference.detach()).abs().max() <= 1e-5 * scale


def test_phase_kernel_equals_the_pytorch_path() -> None:
    gen = torch.Generator().manual_seed(5)
    freqs = 20.0 + 20_000.0 * torch.rand(2, 90, 16, generator=gen)
    initial = 2 * np.pi * torch.rand(16, generator=gen)
    with torch.no_grad():
        fast = accumulate_phase(freqs, 512, SR, initial)
    slow = accumulate_phase(freqs.double(), 512, SR, initial)  # float64 input takes the PyTorch path
    assert fast.dtype == torch.float32 and slow.dtype == torch.float64
    # equal modulo 2π (both wrap to [0, 2π); a value at the seam may land on either side)
    diff = torch.remainder(fast.double() - slow + np.pi, 2 * np.pi) - np.pi
    assert diff.abs().max() < 1e-5
