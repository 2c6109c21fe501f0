"""The bundled default model (issue 3 item 5): it ships, loads without training code, and plays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import neurorack as nr
from neurorack.cli import main
from neurorack.model_file import bundled_model_path


def test_bundled_default_ships_and_plays() -> None:
    path = bundled_model_path("default")
    assert path.is_file() and path.stat().st_size <= 10 * 1024 * 1024
    m = nr.load_model()
    assert (m.sample_rate, m.hop_length) == (44_100, 512)
    assert len(m.anchor_names) >= 4
    curves = m.anchors[m.anchor_names[0]]
    audio = m.generate(curves, seed=0)
    assert audio.shape == (curves.shape[0] * m.hop_length,) and audio.dtype == np.float32
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3
    np.testing.assert_array_equal(audio, m.generate(curves, seed=0))


def test_bundled_default_follows_loudness_and_brightness() -> None:
    """Scaling the requested rms / centroid moves the measured rms / centroid the same way."""
    m = nr.load_model()
    curves = m.anchors[m.anchor_names[len(m.anchor_names) // 2]]
    active = curves[:, 0] > curves[:, 0].max() * 0.1

    def measured(col: int, scale: float) -> float:
        edited = curves.copy()
        edited[:, col] *= scale
        got = nr.describe(m.generate(edited, seed=1), m.sample_rate)[: len(curves)]
        return float(np.median(got[active, col]))

    assert measured(0, 2.0) / measured(0, 1.0) == pytest.approx(2.0, rel=0.05)
    assert measured(5, 0.5) < measured(5, 1.0) < measured(5, 1.41)


def test_generate_and_demo_work_on_a_fresh_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "hit.wav"
    assert main(["generate", "--out", str(out), "--seed", "3", "--set", "brightness=+30%"]) == 0
    audio, sr = sf.read(out)
    assert sr == 44_100 and np.isfinite(audio).all()
    assert main(["demo", "--out", str(tmp_path / "demo"), "--preset", "snare"]) == 0
    assert (tmp_path / "demo" / "snare.wav").is_file()
    assert "Traceback" not in capsys.readouterr().err
