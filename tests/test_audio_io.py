"""Audio I/O: formats, channels, resampling, atomic writes and clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neurorack.audio_io import probe, read_audio, resample, to_mono, write_audio
from neurorack.errors import AudioError


def hit(sr: int, seconds: float = 0.3, channels: int = 1) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    mono = 0.5 * np.sin(2 * np.pi * 180 * t) * np.exp(-t * 12)
    return np.repeat(mono[:, None], channels, axis=1).astype(np.float32) if channels > 1 else mono.astype(np.float32)


@pytest.mark.parametrize(("ext", "subtype"), [("wav", "PCM_16"), ("flac", "PCM_24"), ("aiff", "PCM_16"), ("ogg", None)])
def test_read_formats(tmp_path: Path, ext: str, subtype: str | None) -> None:
    path = tmp_path / f"hit.{ext}"
    sf.write(path, hit(44_100), 44_100, subtype=subtype)
    audio, sr = read_audio(path)
    assert sr == 44_100 and audio.dtype == np.float32 and audio.ndim == 1
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.03)


def test_eight_channels_and_192k_are_mixed_and_resampled(tmp_path: Path) -> None:
    path = tmp_path / "surround.wav"
    sf.write(path, hit(192_000, channels=8), 192_000, subtype="FLOAT")
    info = probe(path)
    assert (info.channels, info.sample_rate) == (8, 192_000)
    audio, sr = read_audio(path, 44_100)
    assert sr == 44_100
    assert audio.shape == (int(0.3 * 44_100),)
    assert np.abs(audio).max() == pytest.approx(0.5, abs=0.02)  # levels kept


def test_resample_keeps_a_sine() -> None:
    t = np.arange(48_000) / 48_000
    y = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    out = resample(y, 48_000, 22_050)
    assert out.size == 22_050
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    assert np.argmax(spectrum) == pytest.approx(1000, abs=1)


def test_to_mono_averages_channels() -> None:
    stereo = np.stack([np.ones(4), -np.ones(4) * 0.5], axis=1)
    np.testing.assert_allclose(to_mono(stereo), 0.25)


def test_write_is_atomic_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "out" / "x.wav"
    y = hit(44_100) * 3  # above full scale: float WAV keeps it
    write_audio(path, y, 44_100)
    back, _ = read_audio(path)
    np.testing.assert_allclose(back, y, atol=1e-7)
    assert [p.name for p in path.parent.iterdir()] == ["x.wav"]  # no temp file left behind
    with pytest.raises(AudioError, match="NaN"):
        write_audio(tmp_path / "nan.wav", np.array([np.nan], np.float32), 44_100)
    assert not (tmp_path / "nan.wav").exists()


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("corrupt.wav", b"RIFF\x00\x01garbage" * 50, "not a readable audio file"),
        ("empty.wav", b"", "empty file"),
        ("notes.txt", b"hello", "unsupported extension"),
        ("text.flac", b"this is text, not flac" * 20, "not a readable audio file"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, name: str, content: bytes, match: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioError, match=match) as info:
        read_audio(path)
    assert "\n" not in str(info.value)


def test_nan_samples_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "nan.wav"
    y = hit(44_100)
    y[100] = np.nan
    sf.write(path, y, 44_100, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        read_audio(path)
    with pytest.raises(AudioError, match="no such file"):
        read_audio(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="directory"):
        read_audio(tmp_path)
