"""Descriptors: exact values on synthetic signals, librosa agreement on real drums, robustness."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import torch

import neurorack as nr
from neurorack.audio_io import read_audio
from neurorack.descriptors import DESCRIPTOR_NAMES, DescriptorConfig, Descriptors, descriptor_index

SR = 44_100


def librosa_reference(y: np.ndarray, sr: int) -> np.ndarray:
    """The seven descriptors computed by librosa itself with its defaults (SPEC §2)."""
    mag = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))
    return np.stack(
        [
            librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0],
            librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)[0],
            librosa.feature.spectral_rolloff(S=mag, sr=sr, roll_percent=0.85)[0],
            librosa.feature.spectral_flatness(S=mag)[0],
            librosa.feature.spectral_bandwidth(S=mag, sr=sr)[0],
            librosa.feature.spectral_centroid(S=mag, sr=sr)[0],
            librosa.yin(y, fmin=50, fmax=5000, sr=sr, frame_length=2048, hop_length=512),
        ],
        axis=-1,
    )


def sine(freq: float, seconds: float = 1.0, amp: float = 1.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def interior(curves: np.ndarray, margin: int = 4) -> np.ndarray:
    """Frames away from the zero-padded edges."""
    return curves[margin:-margin]


def test_columns_and_shape() -> None:
    assert DESCRIPTOR_NAMES == ("rms", "zcr", "rolloff", "flatness", "bandwidth", "centroid", "f0")
    out = nr.describe(sine(440), SR)
    assert out.shape == (1 + SR // 512, 7)
    assert out.dtype == np.float32
    assert descriptor_index("brightness") == 5 and descriptor_index("f0") == 6
    with pytest.raises(ValueError, match="unknown descriptor"):
        descriptor_index("sparkle")


def test_sine_exact_values() -> None:
    freq = 1000.0
    d = interior(nr.describe(sine(freq), SR))
    rms, zcr, rolloff, flatness, bandwidth, centroid, f0 = d.T
    np.testing.assert_allclose(rms, 1 / np.sqrt(2), rtol=2e-3)
    np.testing.assert_allclose(zcr, 2 * freq / SR, atol=1.5 / 2048)
    np.testing.assert_allclose(centroid, freq, rtol=5e-3)
    np.testing.assert_allclose(f0, freq, rtol=2e-3)  # librosa's YIN reads 1000.8 Hz here too
    assert (rolloff <= freq + 2 * SR / 2048).all()
    assert (flatness < 1e-3).all()
    assert (bandwidth < 200).all()


@pytest.mark.parametrize("freq", [55.0, 110.0, 440.0, 2000.0])
def test_sine_pitch(freq: float) -> None:
    """YIN (as librosa implements it) reads sines within 1.5 % (55 Hz reads 55.80 Hz in librosa too)."""
    y = sine(freq, amp=0.3)
    f0 = interior(nr.describe(y, SR))[:, 6]
    np.testing.assert_allclose(np.median(f0), freq, rtol=1.5e-2)
    ref = librosa.yin(y, fmin=50, fmax=5000, sr=SR, frame_length=2048, hop_length=512)
    np.testing.assert_allclose(np.median(f0), np.median(ref), rtol=1e-3)


def test_white_noise_flatness_and_rolloff() -> None:
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(SR * 4).astype(np.float32) * 0.1
    d = interior(nr.describe(noise, SR))
    # power-spectrum bins of Gaussian noise are exponential: geometric/arithmetic mean = exp(-Euler gamma)
    assert np.median(d[:, 3]) == pytest.approx(np.exp(-np.euler_gamma), rel=0.03)
    # flat magnitude: 85 % of the magnitude lies below 0.85 * Nyquist; the centroid sits at Nyquist / 2
    assert np.median(d[:, 2]) == pytest.approx(0.85 * SR / 2, rel=0.01)
    assert np.median(d[:, 5]) == pytest.approx(SR / 4, rel=0.01)
    np.testing.assert_allclose(np.median(d[:, 0]), 0.1, rtol=0.01)


@pytest.mark.parametrize(
    "signal",
    [
        np.zeros(SR, np.float32),
        np.full(SR, 0.5, np.float32),
        np.clip(sine(300, amp=20.0), -1, 1),
        np.ones(1, np.float32),
        np.zeros(1, np.float32),
        sine(200, seconds=0.002),
    ],
    ids=["silence", "dc", "clipped", "one-sample", "one-zero", "short"],
)
def test_finite_on_edge_cases(signal: np.ndarray) -> None:
    d = nr.describe(signal, SR)
    assert np.isfinite(d).all()
    assert d.shape == (1 + signal.size // 512, 7)
    ref = librosa_reference(signal, SR) if signal.size >= 1024 else None
    if ref is not None:
        for col, name in enumerate(DESCRIPTOR_NAMES):
            scale = max(1.0, float(np.abs(ref[:, col]).max()))
            np.testing.assert_allclose(d[:, col], ref[:, col], rtol=2e-3, atol=1e-2 * scale, err_msg=name)


def test_silence_conventions() -> None:
    d = nr.describe(np.zeros(4096, np.float32), SR)
    np.testing.assert_array_equal(d[:, [0, 1, 2, 4, 5]], 0)
    np.testing.assert_allclose(d[:, 3], 1.0, rtol=1e-5)
    np.testing.assert_allclose(d[:, 6], SR / np.floor(SR / 5000))


def test_matches_librosa_on_real_drums(drum_files: list[Path]) -> None:
    """Every descriptor agrees with librosa on real one-shots (f0 frame by frame)."""
    checked = 0
    for path in drum_files[::20]:
        try:
            y, sr = read_audio(path, SR, max_seconds=1.5)
        except nr.AudioError:  # lmms-common ships two broken files (WAV data named .ogg)
            continue
        ours, ref = nr.describe(y, sr), librosa_reference(y, sr)
        assert ours.shape == ref.shape
        scale = np.abs(ref).max(0) + 1e-6
        err = np.abs(ours - ref) / scale
        assert err[:, [0, 1, 3, 4, 5]].max() < 2e-3, (path, err.max(0))
        # the roll-off is a bin: float rounding may move it by at most one bin
        assert np.abs(ours[:, 2] - ref[:, 2]).max() <= sr / 2048 + 1e-3, path
        # YIN is a discrete trough pick: identical on (nearly) every frame
        assert np.mean(np.abs(ours[:, 6] - ref[:, 6]) > 1e-2 * ref[:, 6]) <= 0.02, path
        checked += 1
    assert checked >= 20


def test_torch_batch_matches_describe() -> None:
    rng = np.random.default_rng(1)
    batch = np.stack([sine(220, amp=0.5) + 0.05 * rng.standard_normal(SR).astype(np.float32) for _ in range(3)])
    batch[1] *= np.exp(-np.linspace(0, 8, SR)).astype(np.float32)
    module = Descriptors(DescriptorConfig(SR))
    with torch.no_grad():
        out = module(torch.from_numpy(batch)).numpy()
    for i in range(3):
        np.testing.assert_allclose(out[i], nr.describe(batch[i], SR), rtol=1e-5, atol=1e-6)


def test_torch_descriptors_are_differentiable() -> None:
    module = Descriptors(DescriptorConfig(SR))
    audio = torch.from_numpy(sine(500, amp=0.5)).unsqueeze(0) + 0.01 * torch.randn(1, SR)
    audio.requires_grad_(True)
    out = module(audio)
    (out[..., 0].log().mean() + out[..., 5].log().mean() + out[..., 4].log().mean()).backward()
    assert audio.grad is not None and torch.isfinite(audio.grad).all() and audio.grad.abs().sum() > 0


def test_other_frame_settings() -> None:
    y = sine(440, amp=0.5, sr=22_050)
    d = nr.describe(y, 22_050, frame_length=1024, hop_length=256)
    assert d.shape == (1 + y.size // 256, 7)
    np.testing.assert_allclose(np.median(d[:, 6]), 440, rtol=5e-3)


@pytest.mark.parametrize(
    ("audio", "sr", "match"),
    [
        (np.array([], np.float32), SR, "empty"),
        (np.array([0.1, np.nan, 0.2], np.float32), SR, "NaN"),
        (np.array([0.1, np.inf], np.float32), SR, "NaN or infinite"),
        (np.zeros(100, np.float32), 0, "sample rate"),
        (np.zeros((2, 3, 4), np.float32), SR, "mono"),
    ],
)
def test_bad_input_raises_clear_error(audio: np.ndarray, sr: int, match: str) -> None:
    with pytest.raises(nr.AudioError, match=match):
        nr.describe(audio, sr)


@pytest.mark.parametrize(("frame", "hop"), [(2048, 512), (1024, 256), (2048, 500)])
def test_frame_rms_is_exact_down_the_tail(frame: int, hop: int) -> None:
    """Frame rms equals the direct float64 mean of each zero-padded frame, also 100 dB below the attack."""
    import torch

    from neurorack.descriptors import frame_rms

    rng = np.random.default_rng(0)
    n = 40 * hop + 123
    audio = rng.standard_normal(n) * np.exp(-np.arange(n) / n * np.log(1e5))  # -100 dB at the end
    got = frame_rms(torch.from_numpy(audio.astype(np.float32))[None], frame, hop)[0].double().numpy()
    padded = np.pad(audio.astype(np.float32).astype(np.float64), frame // 2)
    want = np.array([np.sqrt(np.mean(padded[f * hop : f * hop + frame] ** 2)) for f in range(1 + n // hop)])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=2e-6 if frame % hop == 0 else 1e-3)
