"""CLI round trips for ``neurorack describe`` and ``demo``: output, plots and clean failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from neurorack.cli import main


@pytest.fixture()
def hit_file(tmp_path: Path) -> Path:
    t = np.arange(22_050) / 44_100
    y = (0.5 * np.sin(2 * np.pi * 440 * t) * np.exp(-t * 8)).astype(np.float32)
    path = tmp_path / "hit.wav"
    sf.write(path, y, 44_100)
    return path


def test_describe_json_round_trip(hit_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", str(hit_file), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["columns"] == ["rms", "zcr", "rolloff", "flatness", "bandwidth", "centroid", "f0"]
    frames = np.array(data["frames"])
    assert frames.shape == (1 + 22_050 // 512, 7)
    assert data["summary"]["f0"] == pytest.approx(440, rel=0.01)


def test_describe_table_and_plot(hit_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "curves.png"
    assert main(["describe", str(hit_file), str(hit_file), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "centroid" in out and out.count("hit.wav") == 2
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("name", "content"),
    [("corrupt.wav", b"RIFF" + bytes(range(256)) * 4), ("zero.wav", b""), ("wrong.txt", b"text")],
)
def test_describe_bad_file_is_listed_not_a_traceback(
    hit_file: Path, tmp_path: Path, name: str, content: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    assert main(["describe", str(hit_file), str(bad)]) == 2
    captured = capsys.readouterr()
    assert "hit.wav" in captured.out  # the good file is still described
    assert name in captured.err and "Traceback" not in captured.err + captured.out


def test_describe_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", str(tmp_path)]) == 2  # a directory of nothing
    assert main(["describe", "--sample-rate", "-5", "x.wav"]) == 2
    assert main(["describe", "--bogus"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_demo_renders_and_describes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--preset", "kick", "--preset", "hat", "--baseline", "dsp"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["hat.png", "hat.wav", "kick.png", "kick.wav"]
    y, sr = sf.read(out / "kick.wav")
    assert sr == 44_100 and np.isfinite(y).all() and np.abs(y).max() > 0.01
    assert "requested" in capsys.readouterr().out
    assert main(["demo", "--out", str(out), "--preset", "cowbell"]) == 2
    assert main(["demo", "--out", str(out), "--model", str(tmp_path / "missing.safetensors")]) == 2
