"""The engine against a real JACK server (``jackd -d dummy``, 128 frames at 44.1 kHz, started here).

One ``neurorack play --audio jack`` process serves the whole module; this process talks to it the
way a musician's rig would: OSC over real UDP loopback, a JACK client with a MIDI output port
wired to the engine's ``midi_in``, and a JACK capture client on the engine's ``out`` that stamps
every block with JACK's frame time. Gate-to-sound latency = frame of the first non-silent output
sample − JACK frame time when the gate was sent.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine_support import PlayProcess, prioritised_server, wait_onset
from neurorack.engine.jack_server import JackDummyServer, jackd_path

PERIOD = 128
RATE = 44100

pytestmark = pytest.mark.skipif(jackd_path() is None, reason="jackd is not installed (apt-get install jackd2)")


@pytest.fixture(scope="module")
def server() -> Iterator[JackDummyServer]:
    with prioritised_server(RATE, PERIOD) as srv:
        yield srv


@pytest.fixture(scope="module")
def engine(server: JackDummyServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlayProcess, str]]:
    name = f"nr-{uuid.uuid4().hex[:6]}"
    log = tmp_path_factory.mktemp("play") / "play.log"
    play = PlayProcess(
        ["--audio", "jack", "--no-connect", "--jack-name", name], env={"JACK_DEFAULT_SERVER": server.name}, log=log
    )
    try:
        play.wait_ready()
        yield play, name
    finally:
        play.terminate()


@pytest.fixture(scope="module")
def capture(server: JackDummyServer, engine: tuple[PlayProcess, str]) -> Iterator[object]:
    from neurorack.engine.probe import JackCapture

    cap = JackCapture(server.name, f"{engine[1]}:out", seconds=70.0)
    yield cap
    cap.close()


@pytest.fixture()
def midi(server: JackDummyServer, engine: tuple[PlayProcess, str]) -> Iterator[object]:
    from neurorack.engine.probe import JackMidiSender

    sender = JackMidiSender(server.name, f"{engine[1]}:midi_in")
    yield sender
    sender.close()


def _short_hits(play: PlayProcess) -> None:
    """0.15 s impacts, so the output is silent again before the next measured hit."""
    play.osc.send("/neurorack/param/duration", 0.15)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st = play.osc.status()
        if st is not None and st["pending"] == 0 and st["renders"] >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.4)


def _onset_frame(play: PlayProcess, previous: int, timeout: float = 2.0) -> int | None:
    """The engine's frame time of the newest hit's first output sample, once it differs from ``previous``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = play.osc.status(timeout=0.5)
        if st is not None and st["last_onset_frame"] != previous:
            return int(st["last_onset_frame"])
        time.sleep(0.005)
    return None


def test_osc_gate_sounds_within_two_periods(engine: tuple[PlayProcess, str], capture: object) -> None:
    """Gates over real UDP loopback: the hit's first sample is on the output port within 2 periods of
    the JACK frame time at which the gate was sent (JACK's frame-time estimate, but never earlier than
    the newest block the capture client has seen: that estimate drifts when the dummy driver runs late).

    The onset frame is the engine's own stamp (its period's ``last_frame_time`` + the voice's offset):
    the measuring clients in this process are not what is under test, and on a loaded machine their
    own stamps drift by whole periods. The capture client checks that the sound is really on the port
    there. A negative figure means the gate made it into a period JACK had begun before the send,
    its clients running behind the wall clock.
    """
    play, _ = engine
    _short_hits(play)
    st = play.osc.status()
    assert st is not None
    previous = int(st["last_onset_frame"])
    latencies = []
    seen = []
    for _ in range(12):
        sent = capture.send_frame()  # type: ignore[attr-defined]
        play.osc.send("/neurorack/gate/1", 1)
        onset = _onset_frame(play, previous)
        play.osc.send("/neurorack/gate/1", 0)
        assert onset is not None, "the gate did not start a hit"
        previous = onset
        latencies.append(onset - sent)
        heard = wait_onset(capture, onset - 2 * PERIOD)
        assert heard is not None, "no onset on the output port"
        seen.append(heard - onset)
        time.sleep(0.3)  # the 0.15 s impact has ended
    periods = [lat / PERIOD for lat in latencies]
    print(f"OSC gate-to-sound latency, periods: {[f'{p:.2f}' for p in periods]}; capture − engine stamp: {seen}")
    assert max(periods) <= 2.0, f"OSC latencies (periods) {periods}"
    assert sum(1 for d in seen if d == 0) >= len(seen) // 2, f"the capture does not see the onsets: {seen}"


def _server_xruns(server: JackDummyServer) -> int:
    return sum(server.xrun_report("-").values())


def test_jack_midi_gate_sounds_within_two_periods(
    engine: tuple[PlayProcess, str], capture: object, midi: object, server: JackDummyServer
) -> None:
    """JACK MIDI is sample-accurate: the note sounds at its own frame. JACK drops a cycle's MIDI when
    the server reports an xrun in it (the dummy driver on a loaded VM does, with any client); such a
    note is resent, and only then."""
    play, _ = engine
    _short_hits(play)
    latencies = []
    lost = 0
    while len(latencies) < 12:
        xruns_before = _server_xruns(server)
        sent = midi.send(bytes([0x90, 36 + len(latencies), 100]))  # type: ignore[attr-defined]
        onset = wait_onset(capture, sent - 2 * PERIOD)
        midi.send(bytes([0x80, 36 + len(latencies), 0]))  # type: ignore[attr-defined]
        time.sleep(0.3)
        if onset is None:
            assert _server_xruns(server) > xruns_before, "a JACK MIDI note-on was lost without any xrun"
            lost += 1
            assert lost <= 3, "too many notes lost to xruns"
            continue
        latencies.append(onset - sent)
    periods = [lat / PERIOD for lat in latencies]
    print(f"JACK MIDI gate-to-sound latency, periods: {[f'{p:.2f}' for p in periods]} ({lost} lost to xruns)")
    assert min(latencies) >= 0
    assert max(periods) <= 2.0, f"MIDI latencies (periods) {periods}"


def test_audio_rate_gate_and_cv_inputs(
    engine: tuple[PlayProcess, str], capture: object, server: JackDummyServer
) -> None:
    """A DC-coupled interface's gate into ``gate_1`` sounds at the very sample the gate rises, at any
    offset inside the period (10 V full scale: 0.5 = 5 V); a level on ``cv_2`` shows up as volts."""
    from neurorack.engine.probe import JackGateSender

    play, name = engine
    _short_hits(play)
    gate = JackGateSender(server.name, f"{name}:gate_1")
    cv = JackGateSender(server.name, f"{name}:cv_2")
    try:
        delays = []
        for offset in (0, 17, 64, 127, 5):
            xruns_before = _server_xruns(server)
            rise = gate.step(0.5, offset)
            onset = wait_onset(capture, rise - 2 * PERIOD)
            gate.step(0.0)
            time.sleep(0.3)
            if onset is None and _server_xruns(server) > xruns_before:
                continue  # the cycle was lost to a server xrun
            assert onset is not None, "no onset after a gate on the gate_1 input"
            delays.append((offset, onset - rise))
        print(f"audio-rate gate: (offset, onset − gate edge in frames): {delays}")
        # the onset sits on the edge's own sample (0), unless the sending client (in this process, sharing
        # the GIL with the capture) wrote the edge's block after the engine had read that period: the engine
        # then sees the gate high from the start of a later period, whose blocks are high from sample 0,
        # so the onset lands exactly on that period's first sample (the edge's block start + 1 or 2 periods)
        assert len(delays) >= 3
        assert all(d == 0 or (offset + d) in (PERIOD, 2 * PERIOD) for offset, d in delays), delays
        assert any(d == 0 for _, d in delays)
        cv.step(0.25)  # 2.5 V
        time.sleep(0.2)
        st = play.osc.status()
        assert st is not None and abs(st["cv_2"] - 2.5) < 1e-3
        cv.step(0.0)
    finally:
        gate.close()
        cv.close()


def test_malformed_osc_and_midi_are_ignored(engine: tuple[PlayProcess, str], capture: object, midi: object) -> None:
    play, _ = engine
    _short_hits(play)
    before = play.osc.status()
    assert before is not None
    osc = play.osc
    osc.raw(b"")  # empty datagram
    osc.raw(b"\x00\x01garbage that is not OSC")
    osc.raw(b"/neurorack/gate/1\x00\x00\x00,i\x00\x00")  # truncated argument
    osc.raw(b"#bundle\x00" + b"\xff" * 12)  # broken bundle
    osc.send("/neurorack/gate/1", "high")  # wrong type
    osc.send("/neurorack/gate/1")  # wrong arity
    osc.send("/neurorack/gate/1", 1, 2, 3)
    osc.send("/neurorack/gate/3", 1)  # unknown gate
    osc.send("/neurorack/cv/1", float("nan"))
    osc.send("/neurorack/cv/2", float("inf"))
    osc.send("/neurorack/cv/3", 1e300)  # huge
    osc.send("/neurorack/cv/4", 2**40)
    osc.send("/neurorack/cv/5", 1.0)
    osc.send("/neurorack/descriptor/nonsense", 1.0)
    osc.send("/neurorack/descriptor/centroid", float("-inf"))
    osc.send("/neurorack/model", 3)
    osc.send("/neurorack/model", "no-such-model")
    osc.send("/neurorack/param/volume_db", 1e9)
    osc.send("/neurorack/param/nope", 1.0)
    osc.send("/neurorack/assign", 1, "nonsense")
    osc.send("/elsewhere", 1)
    for bad in (
        [0x90, 60],  # truncated note-on
        [0x90, 0x80, 0x10],  # data byte >= 128
        [0x40, 0x40],  # running status / stray data
        [0xF0, 0x01, 0x02],  # SysEx without its end
        [0xF0, 0x90, 0xF7],  # SysEx with a status byte inside
        [0xB0, 74],  # truncated CC
        [0xF4],  # undefined system common
        [0xFE, 0x00],  # real-time with a tail
    ):
        midi.send(bytes(bad))  # type: ignore[attr-defined]
    time.sleep(0.5)
    after = osc.status()
    assert after is not None, "the engine stopped answering"
    assert after["running"] == 1
    assert after["malformed_midi"] - before["malformed_midi"] >= 8
    assert all(math.isfinite(after[f"cv_{i}"]) and abs(after[f"cv_{i}"]) <= 12 for i in (1, 2, 3, 4))
    assert play.proc.poll() is None
    # and it still plays
    sent = capture.now  # type: ignore[attr-defined]
    osc.send("/neurorack/gate/1", 1)
    assert wait_onset(capture, sent) is not None
    osc.send("/neurorack/gate/1", 0)
    log = play.log_text()
    assert "ignored OSC" in log and "malformed MIDI" in log
    assert "Traceback" not in log


@pytest.mark.slow
def test_soak_60s_cvs_10hz_gates_8hz(
    engine: tuple[PlayProcess, str], capture: object, server: JackDummyServer, tmp_path: Path
) -> None:
    """60 s: four CVs swept at 10 Hz and gate 1 at 8 Hz over OSC, gate 2 every second.

    Zero xruns caused by the engine, and no NaN / inf in the captured output. The JACK server's
    log names the client behind each xrun; the engine's own are those where its callback was still
    running at the deadline of a cycle that had started on time. The dummy driver's timer xruns on
    a loaded virtual machine (its thread woke late — they happen with an empty client too), and the
    engine being flagged in the cycle the driver restarts right after them, are reported, not asserted.
    """
    play, name = engine
    osc = play.osc
    osc.send("/neurorack/param/duration", 0.0)
    time.sleep(0.3)
    start_report = server.xrun_report(name)
    st0 = osc.status()
    assert st0 is not None
    seconds = 60.0
    t0 = time.monotonic()
    first_block = capture.blocks()  # type: ignore[attr-defined]
    next_gate = t0
    gate_n = 0
    while (t := time.monotonic() - t0) < seconds:
        for i in range(4):
            osc.send(f"/neurorack/cv/{i + 1}", 3.0 * math.sin(2 * math.pi * 10.0 * t + i))
        now = time.monotonic()
        if now >= next_gate:
            osc.send("/neurorack/gate/1", 1)
            osc.send("/neurorack/gate/1", 0)
            if gate_n % 8 == 0:
                osc.send("/neurorack/gate/2", 1)
                osc.send("/neurorack/gate/2", 0)
            gate_n += 1
            next_gate += 1.0 / 8.0
        time.sleep(0.01)
    time.sleep(0.3)
    st1 = osc.status()
    assert st1 is not None and st1["running"] == 1
    blocks = capture.blocks() - first_block  # type: ignore[attr-defined]
    audio, _ = capture.snapshot()  # type: ignore[attr-defined]
    audio = audio[-blocks:]
    end_report = server.xrun_report(name)
    delta = {k: end_report[k] - start_report[k] for k in end_report}
    hits = st1["hits"] - st0["hits"]
    renders = st1["renders"] - st0["renders"]
    print(
        f"soak: {blocks * PERIOD / RATE:.1f} s captured, {hits:.0f} hits, {renders:.0f} renders, "
        f"callback load {st1['callback_load'] * 100:.1f} %, render {st1['render_ms']:.1f} ms, "
        f"late callbacks {st1['late_callbacks'] - st0['late_callbacks']:.0f}, jackd xruns {delta}"
    )
    # the capture client counts the cycles the server ran; on a loaded VM the dummy driver's timer falls
    # behind wall-clock time (CI measured 52.6 s of cycles in 60 s, all its xruns driver-side)
    assert blocks * PERIOD >= 0.75 * seconds * RATE, "the output stopped flowing during the soak"
    assert np.isfinite(audio).all(), "NaN or inf reached the output port"
    assert np.abs(audio).max() <= 1.0
    assert np.abs(audio).max() > 0.01, "the soak played nothing"
    assert hits >= 0.9 * seconds * 8
    assert renders >= seconds * 5, "render-ahead did not follow the CVs"
    assert delta["client_late"] == 0, f"the engine's callback missed JACK deadlines: {delta}"
