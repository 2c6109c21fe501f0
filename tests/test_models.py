"""Impact models (SPEC §3): every registered model from its tiny config, plus sinc-nsf DSP checks."""

from __future__ import annotations

from typing import cast

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from neurorack.descriptors import N_DESCRIPTORS
from neurorack.errors import NeurorackError
from neurorack.models import TINY_CONFIGS, GeneratorKind, ImpactModel, ModelGenerator, build_model, model_names
from neurorack.models.impact import sinc_nsf
from neurorack.models.impact.sinc_nsf import (
    CondModuleHnSincNSF,
    NeuralFilterBlock,
    SincNSF,
    SmoothUpsampler,
    SourceModuleHnNSF,
    moving_average,
    sinc_filter_coefficients,
    time_varying_fir,
)

MODEL_NAMES = model_names()


def random_descriptors(
    batch: int, frames: int, sample_rate: int, seed: int = 0, voiced: bool | None = None
) -> torch.Tensor:
    """Plausible descriptor curves ``[batch, frames, 7]`` in physical units.

    ``voiced``: force tone-like (flatness 0.01) or noise-like (0.5) frames; ``None`` mixes both.
    """
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(batch, frames, N_DESCRIPTORS, generator=gen)
    nyquist = sample_rate / 2
    rms = 0.3 * u[..., 0]
    zcr = 0.5 * u[..., 1]
    rolloff = nyquist * (0.1 + 0.8 * u[..., 2])
    flatness = 10 ** (-4 + 4 * u[..., 3]) if voiced is None else torch.full_like(rms, 0.01 if voiced else 0.5)
    bandwidth = nyquist * (0.05 + 0.4 * u[..., 4])
    centroid = nyquist * (0.05 + 0.5 * u[..., 5])
    f0 = 50 * (min(5000.0, nyquist / 2) / 50) ** u[..., 6]
    return torch.stack([rms, zcr, rolloff, flatness, bandwidth, centroid, f0], dim=-1)


def tiny(name: str) -> ImpactModel:
    torch.manual_seed(0)
    return build_model(name, **TINY_CONFIGS[name])


def tiny_nsf() -> SincNSF:
    torch.manual_seed(0)
    return SincNSF(**TINY_CONFIGS["sinc-nsf"])


# ------------------------------------------------------------------------------------------------
# Every registered model
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shape_and_finite(name: str) -> None:
    model = tiny(name)
    curves = random_descriptors(2, 6, model.sample_rate)
    audio = model(curves)
    assert audio.shape == (2, 6 * model.hop_length)
    assert audio.dtype == torch.float32
    assert torch.isfinite(audio).all()
    assert model.name == name
    assert model.config["hop_length"] == model.hop_length


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_rebuilds_same_architecture(name: str) -> None:
    model = tiny(name)
    clone = build_model(name, **model.config)
    assert clone.config == model.config
    clone.load_state_dict(model.state_dict())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_backward_gives_finite_gradients(name: str) -> None:
    model = tiny(name).train()
    curves = random_descriptors(2, 5, model.sample_rate, seed=1)
    if model.kind is GeneratorKind.TRANSFER:  # trained through its encoder: audio -> latent -> audio
        source = 0.1 * torch.randn(2, 5 * model.hop_length, generator=torch.Generator().manual_seed(1))
        audio = model.autoencode(source, curves)["audio"]  # type: ignore[operator]
    else:
        audio = model(curves, model.make_noise(2, 5))
    audio.square().mean().backward()
    for pname, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, f"{pname} got no gradient"
            assert torch.isfinite(param.grad).all(), f"{pname} has a non-finite gradient"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_deterministic_for_fixed_noise(name: str) -> None:
    model = tiny(name).eval()
    curves = random_descriptors(1, 5, model.sample_rate, seed=2)
    noise = model.make_noise(1, 5)
    with torch.no_grad():
        first = model(curves, noise)
        second = model(curves, noise.clone())
    torch.testing.assert_close(first, second, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_inference_matches_training_path(name: str) -> None:
    """Models may take a faster path without autograd; it must compute the same function (to float32
    precision: the differentiable spectral synth loses ~1e-4 of full scale in π·bin phases at high bins)."""
    model = tiny(name).eval()
    curves = random_descriptors(2, 7, model.sample_rate, seed=3)
    noise = model.make_noise(2, 7)
    with torch.enable_grad():
        reference = model(curves, noise).detach()
    with torch.inference_mode():
        fast = model(curves, noise)
    torch.testing.assert_close(fast, reference, rtol=1e-4, atol=1e-4 * float(reference.abs().max()))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_generator_round_trip(name: str) -> None:
    model = tiny(name)
    gen = ModelGenerator(model)
    assert gen.name == name
    assert gen.sample_rate == model.sample_rate and gen.hop_length == model.hop_length
    assert gen.latency == model.latency
    curves = random_descriptors(1, 4, model.sample_rate, seed=4)[0].numpy()
    audio = gen.generate(curves, seed=7)
    assert audio.shape == (4 * model.hop_length,)
    assert audio.dtype == np.float32
    assert np.isfinite(audio).all()
    np.testing.assert_array_equal(audio, gen.generate(curves, seed=7))
    assert not np.array_equal(audio, gen.generate(curves, seed=8))


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("shape", [(5, 6), (5, 8), (2, 5, 7), (0, 7)])
def test_generator_rejects_bad_shapes(name: str, shape: tuple[int, ...]) -> None:
    gen = ModelGenerator(tiny(name))
    with pytest.raises(NeurorackError):
        gen.generate(np.ones(shape, dtype=np.float32))


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("shape", [(1, 5, 6), (5, 7), (1, 1, 5, 7)])
def test_model_rejects_bad_shapes(name: str, shape: tuple[int, ...]) -> None:
    model = tiny(name)
    with pytest.raises(ValueError):
        model(torch.ones(shape))


# ------------------------------------------------------------------------------------------------
# sinc-nsf
# ------------------------------------------------------------------------------------------------
def test_sinc_nsf_default_parameter_count() -> None:
    model = SincNSF()
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert abs(count - 0.71e6) / 0.71e6 < 0.15, count
    assert count == 708_594  # the original's trainable parameters, layer for layer


def test_sinc_nsf_rejects_bad_noise() -> None:
    model = tiny_nsf()
    curves = random_descriptors(1, 4, model.sample_rate)
    with pytest.raises(ValueError):
        model(curves, torch.randn(1, 4 * model.hop_length - 1))


def _band_power_db(signal: np.ndarray, low: float, high: float) -> float:
    """Mean power (dB) of ``signal``'s spectrum between normalised frequencies ``low`` and ``high`` (x Nyquist)."""
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal)))) ** 2
    freqs = np.linspace(0, 1, len(spectrum))
    return float(10 * np.log10(spectrum[(freqs >= low) & (freqs <= high)].mean()))


@pytest.mark.parametrize("cut", [0.3, 0.6])
def test_sinc_lowpass_and_highpass_filter_white_noise(cut: float) -> None:
    n = 1 << 15
    noise = torch.randn(1, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lowpass, highpass = sinc_filter_coefficients(torch.full((1, n), cut, dtype=torch.float64), 31)
    low = time_varying_fir(noise, lowpass)[0, 64:].numpy()
    high = time_varying_fir(noise, highpass)[0, 64:].numpy()
    white = noise[0, 64:].numpy()
    below, above = (0.0, cut - 0.1), (cut + 0.2, 1.0)
    # low-pass: unit gain below the cut-off, >= 40 dB down above it; high-pass: the reverse
    assert abs(_band_power_db(low, *below) - _band_power_db(white, *below)) < 0.5
    assert _band_power_db(low, *above) - _band_power_db(white, *above) < -40
    above_hp, below_hp = (cut + 0.1, 1.0), (0.0, cut - 0.2)
    assert abs(_band_power_db(high, *above_hp) - _band_power_db(white, *above_hp)) < 0.5
    assert _band_power_db(high, *below_hp) - _band_power_db(white, *below_hp) < -40


def test_sinc_coefficients_are_normalised_and_half_gain_at_cutoff() -> None:
    cut = torch.tensor([0.25, 0.5, 0.8], dtype=torch.float64)
    lowpass, highpass = sinc_filter_coefficients(cut, 31)
    assert lowpass.shape == highpass.shape == (3, 31)
    torch.testing.assert_close(lowpass.sum(-1), torch.ones(3, dtype=torch.float64))
    alternating = torch.tensor([(-1.0) ** abs(k) for k in range(-15, 16)], dtype=torch.float64)
    torch.testing.assert_close((highpass * alternating).sum(-1), torch.ones(3, dtype=torch.float64))
    for row, c in zip(lowpass.numpy(), cut.tolist(), strict=True):
        taps = np.arange(-15, 16)
        gain = abs(np.sum(row * np.exp(-1j * np.pi * c * taps)))
        assert 20 * np.log10(gain) == pytest.approx(-6.0, abs=0.5)


def test_time_varying_fir_matches_direct_sum() -> None:
    gen = torch.Generator().manual_seed(0)
    signal = torch.randn(2, 50, generator=gen, dtype=torch.float64)
    coef = torch.randn(2, 50, 5, generator=gen, dtype=torch.float64)
    expected = torch.zeros_like(signal)
    for n in range(50):
        for k in range(5):
            if n - k >= 0:
                expected[:, n] += signal[:, n - k] * coef[:, n, k]
    torch.testing.assert_close(time_varying_fir(signal, coef), expected)


def _moving_average_reference(x: torch.Tensor, window: int) -> torch.Tensor:
    """NII MovingAverage: centred box filter, replicate padding; ``x: [B, C, N]``."""
    pad_le = (window - 1) // 2
    padded = F.pad(x, (pad_le, window - 1 - pad_le), mode="replicate")
    kernel = torch.full((x.shape[1], 1, window), 1.0 / window, dtype=x.dtype)
    return F.conv1d(padded, kernel, groups=x.shape[1])


@pytest.mark.parametrize("hop", [7, 8, 16])
@pytest.mark.parametrize("windows", [(), (1.0,), (4.0,), (1.0, 1.0), (0.5, 1.0)])
def test_smooth_upsampler_equals_nearest_then_moving_averages(hop: int, windows: tuple[float, ...]) -> None:
    sizes = tuple(max(1, int(w * hop)) for w in windows)
    x = torch.randn(2, 3, 9, generator=torch.Generator().manual_seed(hop), dtype=torch.float64)
    expected = x.repeat_interleave(hop, dim=-1)
    for window in sizes:
        expected = _moving_average_reference(expected, window)
    up = SmoothUpsampler(hop, sizes).double()
    torch.testing.assert_close(up(x), expected)


@pytest.mark.parametrize("windows", [(8, 8, 8), (32, 8), (8, 9)])
def test_smooth_upsampler_refuses_inexact_chains(windows: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        SmoothUpsampler(8, windows)


@pytest.mark.parametrize("window", [1, 4, 5, 64])
def test_moving_average_matches_replicate_padded_convolution(window: int) -> None:
    x = torch.randn(2, 50, generator=torch.Generator().manual_seed(window))
    expected = _moving_average_reference(x.unsqueeze(1), window).squeeze(1)
    torch.testing.assert_close(moving_average(x, window), expected)


@pytest.mark.parametrize("hop", [8, 9])
def test_condition_module_matches_original_upsampling(hop: int) -> None:
    """Context and cut-off equal NII's sample-level pipeline (nearest, MA(hop) x 2, MA(4 hop) on the cut-off)."""
    torch.manual_seed(hop)
    cond = CondModuleHnSincNSF(7, hidden=6, hop=hop).double()
    features = torch.randn(2, 10, 7, dtype=torch.float64)
    uv = (torch.rand(2, 10) > 0.5).double()
    context, cut_f = cond(features, uv)
    x = features.transpose(1, 2)
    for conv in cond.l_conv1ds:
        x = torch.tanh(conv(F.pad(x, (1, 1))))

    def up(frames: torch.Tensor, smooth: bool) -> torch.Tensor:
        out = frames.repeat_interleave(hop, dim=-1)
        return _moving_average_reference(_moving_average_reference(out, hop), hop) if smooth else out

    hidden = up(x, True)
    expected_context = torch.cat([hidden[:, :5], up(features[:, :, 6:].transpose(1, 2), True)], 1)
    torch.testing.assert_close(context, expected_context.transpose(1, 2))
    raw_cut = hidden[:, 5:6] * 0.2 + up(uv.unsqueeze(1), False) * 0.4 + 0.3
    torch.testing.assert_close(cut_f, _moving_average_reference(raw_cut, 4 * hop).squeeze(1))


def _reference_sinc_nsf(model: SincNSF, curves: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Direct, slow transcription of the NII / Neurorack forward pass (sample-level moving averages,
    per-harmonic phase accumulation, Conv1d filter blocks, roll-and-add time-varying FIR), sharing the
    model's weights and its documented noise mapping."""
    hop, sr = model.hop_length, model.sample_rate
    src, filt = model.m_source, model.m_filter
    feat, uv_f = model.normalize(curves), model.voicing(curves)
    x = feat.transpose(1, 2)
    for conv in model.m_cond.l_conv1ds:
        x = torch.tanh(conv(F.pad(x, (1, 1))))
    c = x.shape[1]

    def smooth_up(frames: torch.Tensor) -> torch.Tensor:
        up = frames.repeat_interleave(hop, dim=-1)
        return _moving_average_reference(_moving_average_reference(up, hop), hop)

    hidden = smooth_up(x)
    context = torch.cat([hidden[:, : c - 1], smooth_up(feat[..., 6:].transpose(1, 2))], 1)
    uv = uv_f.repeat_interleave(hop, dim=-1)
    f0 = (curves[..., 6] * uv_f).repeat_interleave(hop, dim=-1)
    cut = _moving_average_reference(0.2 * hidden[:, c - 1 :] + 0.4 * uv.unsqueeze(1) + 0.3, 4 * hop)[:, 0]
    n_sines = src.harmonic_num + 1
    initial = F.pad(torch.special.ndtr(noise[:, 1:n_sines]), (1, 0)).double()
    sines = []
    for k in range(n_sines):
        rad = (f0.double() * (k + 1) / sr) % 1
        rad[:, 0] += initial[:, k]
        sines.append(torch.sin(2 * np.pi * torch.cumsum(rad, -1)).float() * src.sine_amp * uv)
    weight = src.l_linear.weight[0]
    noise_amp = uv * src.noise_std + (1 - uv) * src.sine_amp / 3
    harmonic = torch.tanh(
        torch.stack(sines, -1) @ weight + src.l_linear.bias + noise_amp * weight.norm() * noise.flip(-1)
    )

    def block(b: NeuralFilterBlock, signal: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(b.l_ff_1.weight[:, 0][None, :, None] * signal[:, None, :])
        for d, conv in zip(b.dilations, b.l_convs, strict=True):
            w = cast(nn.Conv1d, conv).weight
            h = h + torch.tanh(F.conv1d(F.pad(h, (2 * d, 0)), w, dilation=d)) + context
        h = torch.tanh(torch.einsum("oc,bcn->bon", b.l_ff_2.weight, h * b.scale))
        return torch.tanh(torch.einsum("oc,bcn->bon", b.l_ff_3.weight, h))[:, 0] + signal

    for b in filt.l_har_blocks:
        harmonic = block(cast(NeuralFilterBlock, b), harmonic)
    noisy = noise * src.sine_amp / 3
    for b in filt.l_noi_blocks:
        noisy = block(cast(NeuralFilterBlock, b), noisy)
    half = (filt.sinc_order - 1) // 2
    taps = torch.arange(-half, half + 1, dtype=cut.dtype)
    hamming = 0.54 + 0.46 * torch.cos(2 * np.pi * taps / (2 * half + 1))
    cutoff = cut.unsqueeze(-1)
    lowpass = cutoff * torch.sinc(cutoff * taps) * hamming
    highpass = (torch.sinc(taps) - cutoff * torch.sinc(cutoff * taps)) * hamming
    lowpass = lowpass / lowpass.sum(-1, keepdim=True)
    highpass = highpass / (highpass * (-1.0) ** taps.abs()).sum(-1, keepdim=True)

    def tv_filter(signal: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        length, order = signal.shape[1], coef.shape[-1]
        padded = F.pad(signal, (0, order - 1))
        out = torch.zeros_like(signal)
        for k in range(order):
            out = out + torch.roll(padded, k, dims=1)[:, :length] * coef[:, :, k]
        return out

    return tv_filter(harmonic, lowpass) + tv_filter(noisy, highpass)


@pytest.mark.parametrize("hop", [64, 75])
def test_sinc_nsf_matches_direct_transcription_of_the_original(hop: int) -> None:
    torch.manual_seed(hop)
    config = {**TINY_CONFIGS["sinc-nsf"], "hop_length": hop, "convs_per_block": 4, "n_blocks": 2}
    model = SincNSF(**config)
    model.set_statistics(torch.randn(7), torch.rand(7) + 0.5)
    curves = random_descriptors(2, 9, model.sample_rate, seed=hop)
    noise = torch.randn(2, 9 * hop)
    with torch.no_grad():
        expected = _reference_sinc_nsf(model, curves, noise)
        fast = model(curves, noise)
    slow = model(curves, noise).detach()
    torch.testing.assert_close(fast, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(slow, expected, rtol=1e-4, atol=1e-5)


def test_neural_filter_block_inplace_path_matches_autograd_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sinc_nsf, "INFERENCE_CHUNK", 37)  # many chunks, none aligned with a dilation
    torch.manual_seed(0)
    block = NeuralFilterBlock(hidden=8, kernel_size=3, n_convs=6)
    signal, context = torch.randn(2, 300), 0.1 * torch.randn(2, 300, 8)
    with torch.enable_grad():
        reference = block(signal, context).detach()
    with torch.no_grad():
        fast = block(signal, context)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-6)


def test_neural_filter_block_is_causal() -> None:
    torch.manual_seed(0)
    block = NeuralFilterBlock(hidden=8, n_convs=4)
    signal, context = torch.randn(1, 200), torch.zeros(1, 200, 8)
    changed = signal.clone()
    changed[0, 120:] += 1.0
    with torch.no_grad():
        torch.testing.assert_close(block(changed, context)[0, :120], block(signal, context)[0, :120])


def test_harmonic_source_peaks_at_f0() -> None:
    sr, f0 = 44_100, 440.0
    source = SourceModuleHnNSF(sr, harmonic_num=16)
    n = sr  # 1 s: 1 Hz bins
    initial = torch.rand(1, 17, generator=torch.Generator().manual_seed(0))
    initial[:, 0] = 0
    sines = source.sines(torch.full((1, n), f0), torch.ones(1, n), initial)
    assert sines.shape == (1, n, 17)
    assert sines[0, :, 0].abs().max().item() == pytest.approx(0.1, abs=1e-3)
    for k in (1, 2, 5, 17):
        spectrum = np.abs(np.fft.rfft(sines[0, :, k - 1].numpy()))
        assert np.argmax(spectrum) == pytest.approx(k * f0, abs=1)
    # the fundamental starts at phase 0, as in NII's SineGen: sin(2 pi f0 / sr) at sample 0
    assert sines[0, 0, 0].item() == pytest.approx(0.1 * np.sin(2 * np.pi * f0 / sr), abs=1e-6)


def test_model_source_follows_descriptor_f0() -> None:
    """End to end through the model's own upsampling: the fundamental is the descriptor f0."""
    model = SincNSF(sample_rate=16_000, hop_length=160, hidden_dim=8, n_blocks=1, convs_per_block=2, noise_convs=1)
    curves = random_descriptors(1, 100, 16_000, voiced=True)
    curves[..., 6] = 440.0
    uv = model.voicing(curves)
    assert bool((uv == 1).all())
    f0, uv_samples = model.l_upsamp_nearest(torch.stack([curves[..., 6] * uv, uv], 1)).unbind(1)
    sines = model.m_source.sines(f0, uv_samples, torch.zeros(1, 17))
    spectrum = np.abs(np.fft.rfft(sines[0, :, 0].numpy()))
    assert np.argmax(spectrum) * 16_000 / f0.shape[-1] == pytest.approx(440.0, abs=1)


def test_unvoiced_frames_have_no_sine() -> None:
    model = tiny_nsf()
    curves = random_descriptors(1, 8, model.sample_rate, voiced=True)
    curves[0, 4:, 3] = 0.5  # noise-like frames
    curves[0, 2, 6] = model.sample_rate / 2  # f0 outside the YIN range (what YIN reports for silence)
    uv = model.voicing(curves)
    assert uv[0].tolist() == [1, 1, 0, 1, 0, 0, 0, 0]
    f0, uv_samples = model.l_upsamp_nearest(torch.stack([curves[..., 6] * uv, uv], 1)).unbind(1)
    sines = model.m_source.sines(f0, uv_samples, torch.rand(1, 5))
    hop = model.hop_length
    per_frame = sines.abs().amax(-1).reshape(8, hop).amax(-1)
    assert (per_frame[uv[0] == 0] == 0).all()
    assert (per_frame[uv[0] == 1] > 0.05).all()
    # without noise the excitation of unvoiced frames is the constant tanh(bias)
    excitation = model.m_source(f0, uv_samples, torch.zeros_like(f0))
    unvoiced = excitation[0].reshape(8, hop)[uv[0] == 0]
    torch.testing.assert_close(unvoiced, torch.tanh(model.m_source.l_linear.bias).expand_as(unvoiced))


def test_cutoff_ranges_follow_voicing() -> None:
    """Voiced frames: cut-off in (0.5, 0.9) x Nyquist; unvoiced: (0.1, 0.5) (NII get_cut_f)."""
    model = tiny_nsf()
    frames = 24
    curves = random_descriptors(1, frames, model.sample_rate, voiced=True)
    curves[0, frames // 2 :, 3] = 0.5
    uv = model.voicing(curves)
    _, cut_f = model.m_cond(model.normalize(curves), uv)
    hop = model.hop_length
    cut = cut_f[0].reshape(frames, hop)
    # away from the switch the 4-frame smoothing has settled
    assert ((cut[: frames // 2 - 3] > 0.5) & (cut[: frames // 2 - 3] < 0.9)).all()
    assert ((cut[frames // 2 + 3 :] > 0.1) & (cut[frames // 2 + 3 :] < 0.5)).all()
