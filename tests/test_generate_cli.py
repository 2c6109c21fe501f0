"""``neurorack generate``: round trips with a tiny exported model, and clean one-line failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from neurorack.cli import main
from neurorack.curves.anchors import edit_curves, edit_ratios, position_curves
from neurorack.model_file import export_model, load_model
from neurorack.models import TINY_CONFIGS, build_model, model_names
from neurorack.models.impact.presets import PRESETS, impact_curves


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_names()  # fills the registry (and TINY_CONFIGS)
    model = build_model("ddsp-impact", **TINY_CONFIGS["ddsp-impact"])
    model.set_statistics(torch.tensor([-3.0, -2.0, 8.0, -3.0, 7.5, 7.5, 5.0]), torch.full((7,), 1.5))
    anchors = {name: impact_curves(PRESETS[name], model.descriptor_config) for name in ("kick", "snare", "hat")}
    return export_model(model, tmp_path_factory.mktemp("m") / "model.safetensors", anchors=anchors)


def read(path: Path) -> tuple[np.ndarray, int]:
    audio, sr = sf.read(path, dtype="float32")
    return audio, sr


def test_generate_default_anchor(model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hit.wav"
    assert main(["generate", "--model", str(model_path), "--out", str(out), "--seed", "3"]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.startswith(f"wrote {out}") and "anchor 'kick'" in line and "seed 3" in line
    audio, sr = read(out)
    model = load_model(model_path)
    curves = model.anchor("kick")
    assert sr == model.sample_rate and audio.shape == (len(curves) * model.hop_length,)
    np.testing.assert_array_equal(audio, model.generate(curves, seed=3))


def test_generate_position_edits_and_plot(model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, png = tmp_path / "morph.wav", tmp_path / "morph.png"
    args = [
        "generate",
        "-m",
        str(model_path),
        "-o",
        str(out),
        "--position",
        "0.25",
        "--seed",
        "1",
        "--set",
        "brightness=+30%",
        "--set",
        "rms=x0.5",
        "--set",
        "f0=80",
        "--plot",
        str(png),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "position 0.25 across 3 anchors, 3 edits" in captured.out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = load_model(model_path)
    curves = position_curves([model.anchor(n) for n in ("kick", "snare", "hat")], 0.25)
    edited = edit_curves(curves, scale={"centroid": 1.3, "rms": 0.5}, absolute={"f0": 80})
    with model.focus(edit_ratios(curves, edited)):  # the CLI names the edited descriptors
        np.testing.assert_array_equal(read(out)[0], model.generate(edited, seed=1))
    assert not np.array_equal(read(out)[0], model.generate(edited, seed=1))  # and that changes the hit


def test_generate_anchor_pair_preset_and_duration(model_path: Path, tmp_path: Path) -> None:
    model = load_model(model_path)
    pair = tmp_path / "pair.wav"
    args = [
        "generate",
        "-m",
        str(model_path),
        "-o",
        str(pair),
        "-a",
        "hat",
        "-a",
        "kick",
        "--position",
        "1",
        "--seed",
        "2",
    ]
    assert main(args) == 0
    np.testing.assert_array_equal(read(pair)[0], model.generate(model.anchor("kick"), seed=2))
    preset = tmp_path / "snare.flac"
    assert main(["generate", "-m", str(model_path), "-o", str(preset), "--preset", "snare", "--duration", "0.25"]) == 0
    audio, sr = read(preset)
    assert audio.shape == (round(0.25 * sr / 512) * 512,)
    seeded = [tmp_path / f"s{i}.wav" for i in range(2)]
    for path in seeded:
        assert main(["generate", "-m", str(model_path), "-o", str(path), "-a", "snare", "--seed", "9"]) == 0
    np.testing.assert_array_equal(read(seeded[0])[0], read(seeded[1])[0])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "brightness"], "bad --set 'brightness': expected NAME=VALUE"),
        (["--set", "brightness=lots"], "bad --set value 'lots' for centroid"),
        (["--set", "sparkle=2"], "unknown descriptor 'sparkle'; valid: rms (loudness)"),
        (["--anchor", "tom"], "unknown anchor 'tom'; anchors: kick, snare, hat"),
        (["--position", "1.5"], "--position must lie in 0..1, got 1.5"),
        (["-a", "kick", "-a", "hat"], "several --anchor given"),
        (["-a", "kick", "--position", "0.5"], "--position needs two or more --anchor"),
        (["--preset", "kick", "-a", "kick"], "--preset cannot be combined"),
        (["--preset", "cowbell"], "unknown preset 'cowbell'"),
        (["--duration", "0"], "--duration must lie in (0, 60]"),
        (["--plot", "x.pdf"], "use a .png file"),
    ],
)
def test_generate_errors_are_one_line(
    model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "never.wav"
    assert main(["generate", "--model", str(model_path), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and message in err
    assert not out.exists()


def test_generate_file_errors(model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        (["--model", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "a.wav")], "no such model file"),
        (["--model", str(blocker), "--out", str(tmp_path / "a.wav")], "not a neurorack model file"),
        (["--model", str(model_path), "--out", str(tmp_path / "a.mp3")], "use .wav, .flac, .aiff or .ogg"),
        (["--model", str(model_path), "--out", str(blocker / "a.wav")], "cannot write"),
    ]
    for args, message in cases:
        assert main(["generate", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert "Traceback" not in err and len(err.splitlines()) == 1 and message in err, err
