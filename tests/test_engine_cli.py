"""``neurorack play`` as a user runs it: bad input is one line and a non-zero exit; SIGTERM saves the recording."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine_support import PlayProcess, neurorack_cmd


def _play(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.pop("NEURORACK_DEBUG", None)
    full_env.update(env or {})
    return subprocess.run(
        [*neurorack_cmd(), "play", *args], capture_output=True, text=True, timeout=120, env=full_env, check=False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--audio", "null", "--voices", "0"], "--voices"),
        (["--audio", "null", "--period", "3"], "--period"),
        (["--audio", "cassette"], "--audio"),
        (["--audio", "portaudio", "--osc", "0"], "portaudio"),
        (["--audio", "null", "--osc", "70000"], "--osc"),
        (["--audio", "null", "--record", "take.mp3"], "cannot record"),
        (["--audio", "null", "--midi-map", "missing.toml"], "no such MIDI map"),
        (["--audio", "null", "--model", "no-such-model"], "no-such-model"),
        (["--audio", "null", "--osc-host", "203.0.113.1"], "cannot listen for OSC"),
        (["--audio", "jack", "--osc", "0"], "JACK"),
        pytest.param(
            ["--audio", "null", "--osc", "0", "--midi"],
            "MIDI",
            marks=pytest.mark.skipif(Path("/dev/snd/seq").exists(), reason="this machine has ALSA MIDI"),
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args: list[str], message: str, tmp_path: Path) -> None:
    env = {"JACK_DEFAULT_SERVER": f"nr-none-{os.getpid()}"}  # no such server
    res = _play(args, env)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert message in lines[0]


def test_bad_midi_map_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "map.toml"
    bad.write_text("[cc]\n1 = 9\n")
    res = _play(["--audio", "null", "--osc", "0", "--midi-map", str(bad)])
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "cc.1" in res.stderr


def test_sigterm_saves_the_recording(tmp_path: Path) -> None:
    out = tmp_path / "live.wav"
    play = PlayProcess(["--audio", "null", "--record", str(out)], log=tmp_path / "play.log")
    try:
        play.wait_ready()
        for _ in range(4):
            play.osc.send("/neurorack/gate/1", 1)
            time.sleep(0.05)
            play.osc.send("/neurorack/gate/1", 0)
            time.sleep(0.1)
        time.sleep(0.3)
        assert not out.exists()  # in a temporary file beside it until the end
    finally:
        code = play.terminate()
    assert code == 0, play.log_text()
    audio, sr = sf.read(out, dtype="float32")
    assert sr == 44100 and audio.ndim == 1 and audio.shape[0] > 0.5 * sr
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".live.wav")]  # no temporary left
    assert f"recorded {out}" in play.log_text()
