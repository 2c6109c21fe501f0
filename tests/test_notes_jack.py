"""Notes over a real JACK server (``jackd -d dummy``, 128 frames at 44.1 kHz): ``neurorack play --notes MODEL``
plays JACK MIDI keys with a note model of the cpu configuration's size (untrained weights: the cost of a note
does not depend on them), from the head cache and streamed. Note-on-to-sound latency = frame of the first
non-silent output sample − JACK frame time when the note-on was sent, measured as the impact's gate-to-sound
is (tests/test_engine_jack.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine_support import PlayProcess, prioritised_server, wait_onset
from neurorack.engine.jack_server import JackDummyServer, jackd_path
from neurorack.models.registry import build_note_model, note_config
from neurorack.note_model_file import InstrumentInfo, export_note_model

PERIOD = 128
RATE = 44100

pytestmark = pytest.mark.skipif(jackd_path() is None, reason="jackd is not installed (apt-get install jackd2)")


@pytest.fixture(scope="module")
def note_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_note_model("sing", n_instruments=2, **note_config("sing", "cpu")).eval()
    infos = [InstrumentInfo("a", "keyboard", "acoustic", 21, 108), InstrumentInfo("b", "bass", "synthetic", 28, 60)]
    return export_note_model(model, tmp_path_factory.mktemp("notes") / "notes.safetensors", infos)


@pytest.fixture(scope="module")
def rig(
    note_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[JackDummyServer, object, object, PlayProcess]]:
    from neurorack.engine.probe import JackCapture, JackMidiSender

    with prioritised_server(RATE, PERIOD) as server:
        name = f"nr-{uuid.uuid4().hex[:6]}"
        log = tmp_path_factory.mktemp("play") / "play.log"
        args = ["--audio", "jack", "--no-connect", "--jack-name", name, "--notes", str(note_model)]
        play = PlayProcess(args, env={"JACK_DEFAULT_SERVER": server.name}, log=log)
        try:
            play.wait_ready()
            capture = JackCapture(server.name, f"{name}:out", seconds=30.0)
            midi = JackMidiSender(server.name, f"{name}:midi_in")
            try:
                yield server, capture, midi, play
            finally:
                midi.close()
                capture.close()
        finally:
            play.terminate()


def _heads_ready(play: PlayProcess, count: int, timeout: float = 120.0) -> None:
    """Wait until the engine's head cache holds ``count`` entries (keys × velocities) of the instrument."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = play.osc.status(timeout=0.5)
        if st is not None and st.get("notes_heads", 0) >= count:
            return
        time.sleep(0.2)
    raise AssertionError("the head cache did not fill in time")


def _latencies(rig: tuple[JackDummyServer, object, object, PlayProcess], velocity: int) -> list[float]:
    """Periods from 12 JACK MIDI note-ons to their first sound (a note lost in an xrun is sent again)."""
    server, capture, midi, _ = rig
    latencies: list[int] = []
    lost = 0
    while len(latencies) < 12:
        quiet_until = time.monotonic() + 2.0  # the previous note's release is over: the last 100 ms are silent
        while time.monotonic() < quiet_until and capture.onset_after(capture.now - 4410) is not None:  # type: ignore[attr-defined]
            time.sleep(0.02)
        xruns_before = sum(server.xrun_report("-").values())
        pitch = 40 + len(latencies)  # within both instruments' ranges (a morph plays 28-60)
        sent = midi.send(bytes([0x90, pitch, velocity]))  # type: ignore[attr-defined]
        onset = wait_onset(capture, sent - 2 * PERIOD, timeout=2.0)
        midi.send(bytes([0x80, pitch, 0]))  # type: ignore[attr-defined]
        time.sleep(0.4)  # the release (60 ms) is over before the next note
        if onset is None:
            assert sum(server.xrun_report("-").values()) > xruns_before, "a note-on was lost without any xrun"
            lost += 1
            assert lost <= 3, "too many notes lost to xruns"
            continue
        latencies.append(onset - sent)
    assert min(latencies) >= 0
    return sorted(lat / PERIOD for lat in latencies)


def test_cached_note_ons_sound_within_two_periods(rig: tuple[JackDummyServer, object, object, PlayProcess]) -> None:
    """Keys whose start is in the head cache (the instrument's 88 keys × 5 velocities, rendered while idle)."""
    _heads_ready(rig[3], 88 * 5)
    periods = _latencies(rig, 100)
    print(f"JACK MIDI note-on-to-sound latency, cached heads, periods: {periods}")
    assert periods[len(periods) // 2] <= 2.0, f"median note-on latency over 2 periods: {periods}"


def test_streamed_note_ons_all_sound_promptly(rig: tuple[JackDummyServer, object, object, PlayProcess]) -> None:
    """Notes the cache cannot hold (a morph between two instruments) stream from the note-on: the first 14 model
    frames are computed first. Measured on the 2-core VM: 3-5 periods idle, 6-10 with a training run and the
    test suite beside it; the bound (16 periods, 46 ms) guards against a regression such as soxr HQ's ~250 ms
    hold-back, not the 2-period target, which the cached path meets."""
    play = rig[3]
    play.osc.send("/neurorack/notes/morph", 0, 1)
    time.sleep(0.3)
    try:
        periods = _latencies(rig, 100)
    finally:
        play.osc.send("/neurorack/notes/program", 0)  # end the morph
    print(f"JACK MIDI note-on-to-sound latency, streamed (morph), periods: {periods}")
    assert periods[len(periods) // 2] <= 16.0, f"median note-on latency over 16 periods: {periods}"
