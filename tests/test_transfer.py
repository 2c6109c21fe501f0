"""``neurorack transfer`` and :mod:`neurorack.models.transfer`: round trips with a tiny fader-ae, clean failures."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from neurorack.cli import main
from neurorack.descriptors import describe_with
from neurorack.errors import NeurorackError
from neurorack.model_file import load_model
from neurorack.models.autoencoder.fader_ae import FaderAE
from neurorack.models.transfer import BLOCK_FRAMES, transfer

SR = 44_100


@pytest.fixture(scope="module")
def model_path(tiny_fader_path: Path) -> Path:
    return tiny_fader_path


@pytest.fixture(scope="module")
def hit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A decaying noisy hit with a pitched body, 0.8 s at 44.1 kHz (stereo: transfer mixes to mono)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(0.8 * SR)) / SR
    mono = (0.5 * np.sin(2 * np.pi * 180 * t) + 0.3 * rng.standard_normal(t.size)) * np.exp(-t / 0.15)
    path = tmp_path_factory.mktemp("in") / "hit.wav"
    sf.write(path, np.stack([mono, 0.9 * mono], axis=1).astype(np.float32), SR)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_transfer_equals_the_offline_pass(model_path: Path, hit: Path) -> None:
    """The blockwise streaming path of :func:`transfer` gives the model's one-pass transfer, aligned."""
    model = load_model(model_path)
    ae = model.model
    assert isinstance(ae, FaderAE)
    audio, _ = sf.read(hit, dtype="float32")
    mono = audio.mean(axis=1)
    mono = np.concatenate([mono, mono, mono])  # longer than one block of BLOCK_FRAMES frames
    assert mono.size > BLOCK_FRAMES * ae.hop_length
    result = transfer(model, mono, scale={"centroid": 1.5})
    assert result.audio.shape == mono.shape and result.audio.dtype == np.float32
    np.testing.assert_allclose(result.requested[:, 5], 1.5 * result.measured[:, 5], rtol=1e-5)
    frames = result.requested.shape[0]
    padded = np.zeros(frames * ae.hop_length, dtype=np.float32)
    padded[: mono.size] = mono
    with torch.inference_mode():
        offline = ae.transfer(torch.from_numpy(padded)[None], torch.from_numpy(result.requested)[None])[0]
    np.testing.assert_allclose(result.audio, offline[: mono.size].numpy(), rtol=1e-4, atol=1e-5)


def test_transfer_cli_round_trip(
    model_path: Path, hit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(hit)
    out, png = tmp_path / "out.flac", tmp_path / "out.png"
    args = ["transfer", str(hit), "-m", str(model_path), "-o", str(out), "--set", "brightness=+30%", "--plot", str(png)]
    assert main([*args, "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out}") and "1 edit" in line and "\n" not in line
    audio, sr = sf.read(out, dtype="float32")
    source, _ = sf.read(hit, dtype="float32")
    assert sr == SR and audio.shape == (source.shape[0],) and np.isfinite(audio).all()
    assert png.stat().st_size > 10_000
    assert digest(hit) == before  # the input is never touched
    curves = describe_with(audio, load_model(model_path).descriptor_config)
    assert curves.shape[1] == 7


def test_transfer_cli_bad_input(
    model_path: Path, hit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.wav"
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....WAVEfmt not really audio")
    cases = [
        (["transfer", str(tmp_path / "missing.wav"), "-m", str(model_path), "-o", str(out)], "no such audio file"),
        (["transfer", str(hit), "-m", "default", "-o", str(out)], "cannot transfer audio"),
        (["transfer", str(hit), "-m", str(model_path), "-o", str(tmp_path / "x.mp3")], "cannot write '.mp3'"),
        (["transfer", str(hit), "-m", str(model_path), "-o", str(out), "--set", "shininess=+3%"], "shininess"),
        (["transfer", str(hit), "-m", str(model_path), "-o", str(hit)], "is the input file"),
        (["transfer", str(junk), "-m", str(model_path), "-o", str(out)], "junk.wav"),
        (["transfer", str(hit), "-m", str(tmp_path / "nope.safetensors"), "-o", str(out)], "nope.safetensors"),
    ]
    before = digest(hit)
    for args, message in cases:
        assert main([*args, "--no-progress"]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) <= 2, err  # one message (rich may wrap a long path)
    assert not out.exists()
    assert digest(hit) == before


def test_transfer_rejects_bad_arrays(model_path: Path) -> None:
    model = load_model(model_path)
    with pytest.raises(NeurorackError, match="mono audio"):
        transfer(model, np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(NeurorackError, match="NaN"):
        transfer(model, np.full(1000, np.nan, dtype=np.float32))
    with pytest.raises(NeurorackError, match="cannot transfer"):
        transfer(load_model(None), np.zeros(1000, dtype=np.float32))


def test_bundled_autoencoder_is_the_default_for_transfer(
    hit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`neurorack transfer` and `play --transfer` need no model: the bundled drums autoencoder is used."""
    from neurorack.cli.play_cmd import model_to_play
    from neurorack.model_file import TRANSFER_MODEL, bundled_models

    assert TRANSFER_MODEL in bundled_models()
    model = load_model(TRANSFER_MODEL)
    assert isinstance(model.model, FaderAE) and model.model.latency == model.hop_length + model.model.pqmf.delay
    assert model_to_play(None, transfer=True) == TRANSFER_MODEL
    assert model_to_play(None, transfer=False) is None and model_to_play("mine", transfer=True) == "mine"
    out = tmp_path / "out.wav"
    assert main(["transfer", str(hit), "-o", str(out), "--set", "rms=-6dB", "--no-progress"]) == 0
    assert "through fader-ae" in capsys.readouterr().out
    audio, _ = sf.read(out, dtype="float32")
    source, _ = sf.read(hit, dtype="float32")
    assert audio.shape == (source.shape[0],) and np.isfinite(audio).all()
    # the trained model follows the loudness knob: -6 dB asked, about half the input's rms over the loud part
    loud = slice(0, int(0.3 * SR))
    ratio = np.sqrt(np.mean(audio[loud] ** 2) / np.mean(source[loud].mean(axis=1) ** 2))
    assert 0.35 < ratio < 0.7, ratio
