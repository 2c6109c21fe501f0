"""Live timbre transfer (issue 6): the processor by hand against the offline path, the engine on the null
backend (edits, model switches, stalls), and ``neurorack play --transfer`` against a real ``jackd -d dummy``
with a JACK client playing a known signal into ``in`` and another capturing ``out``.

The tiny fader-ae is untrained: its output does not follow the descriptor controls (measured: doubling
or halving the centroid moves the output's median centroid by ~0.1 %, in no set direction) and it is loud
even on silence. So the control tests check that the model is given the calibrated curves and that the
output changes, and "silent before the latency" means "unchanged from the model's response to silence".
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from engine_support import PlayProcess, prioritised_server
from neurorack.cli import main
from neurorack.descriptors import describe_with
from neurorack.engine import Engine
from neurorack.engine.jack_server import JackDummyServer, jackd_path
from neurorack.engine.live_transfer import LiveTransfer
from neurorack.errors import NeurorackError
from neurorack.model_file import LoadedModel, load_model
from neurorack.models.autoencoder.fader_ae import FaderAE
from neurorack.models.transfer import transfer_curves

SR = 44_100
#: Audio period of the by-hand and null-backend tests.
PERIOD = 128
#: Period of the JACK server here: at 128 the Python clients of this process lose cycles on a busy machine.
JACK_PERIOD = 1024


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """As the engine runs its models: tiny blocks on a shared 2-core machine are ~10x slower with a pool."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model_path(tiny_fader_path: Path) -> Path:
    return tiny_fader_path


@pytest.fixture(scope="module")
def loaded(model_path: Path) -> LoadedModel:
    return load_model(model_path)


def hits(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """Three decaying hits (a 220 Hz body and noise), starting and ending in silence: float32[T]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros(t.size)
    for onset in (0.05, 0.5, 0.9):
        on = t >= onset
        tt = t[on] - onset
        x[on] += (0.4 * np.sin(2 * np.pi * 220 * tt) + 0.25 * rng.standard_normal(tt.size)) * np.exp(-tt / 0.12)
    x[: int(0.02 * SR)] = 0.0
    return np.concatenate([x, np.zeros(4096)]).astype(np.float32)


def ae_of(model: LoadedModel) -> FaderAE:
    assert isinstance(model.model, FaderAE)
    return model.model


def run_by_hand(
    proc: LiveTransfer, signal: np.ndarray, periods: tuple[int, ...] = (PERIOD,), compute: bool = True
) -> np.ndarray:
    """Feed ``signal`` through the audio-thread API in periods of the given sizes (cycled), letting the
    worker's step catch up after every period (no thread): the output, as long as the signal."""
    out = np.zeros(signal.size, dtype=np.float32)
    pos, i = 0, 0
    while pos < signal.size:
        n = min(periods[i % len(periods)], signal.size - pos)
        proc.process(signal[pos : pos + n], out[pos : pos + n])
        pos, i = pos + n, i + 1
        while compute and proc.step():
            pass
    return out


# ----------------------------------------------------------------------------------------------
# the processor, by hand
# ----------------------------------------------------------------------------------------------
def test_processor_equals_the_offline_transfer(loaded: LoadedModel) -> None:
    """Ragged periods (ring wrap-arounds at odd places) through the audio-thread API: silence for exactly
    the latency, then the offline transfer of the same input (its own measured curves), sample for sample."""
    ae = ae_of(loaded)
    proc = LiveTransfer(ae, loaded.descriptor_config, period=PERIOD, max_period=256)
    assert proc.lookahead == loaded.descriptor_config.frame_length // 2 - ae.hop_length == 512
    assert proc.latency == 1024 + 512 + ae.pqmf.delay + 1024 + PERIOD
    x = hits()
    offline = transfer_curves(ae, x, describe_with(x, loaded.descriptor_config))
    live = run_by_hand(proc, np.concatenate([x, np.zeros(proc.latency + 2048, dtype=np.float32)]), (128, 100, 256, 7))
    lat = proc.latency
    assert proc.underruns == 0 and proc.skipped_blocks == 0
    assert not live[:lat].any(), "the output must be silent until the latency"
    usable = x.size - ae.hop_length  # the offline pass ends the signal with a repeated last frame
    np.testing.assert_allclose(live[lat : lat + usable], offline[:usable], rtol=0, atol=1e-5)
    assert np.abs(offline[:usable]).max() > 0.1
    # the live descriptors are the offline ones: the last block's frames
    assert proc.last_measured is not None and proc.last_measured.shape == (2, 7)


def test_processor_underruns_play_silence_then_recover(loaded: LoadedModel) -> None:
    """A worker that stops computing: the periods it misses are exact zeros (never stale ring contents),
    counted as underruns; when it resumes it skips the blocks already due and plays on time again."""
    ae = ae_of(loaded)
    proc = LiveTransfer(ae, loaded.descriptor_config, period=PERIOD, max_period=PERIOD)
    x = np.concatenate([hits(), hits(seed=1)])
    lat = proc.latency
    first = run_by_hand(proc, x[:20_000])
    assert proc.underruns == 0 and np.abs(first[lat:]).max() > 0.01  # the ring holds real audio now
    stalled = run_by_hand(proc, x[20_000:40_000], compute=False)
    shortfall = 20_000 - (proc._out_written - (20_000 - proc._shift))  # samples the ring did not have
    assert proc.underruns > 0 and proc.missing_samples == pytest.approx(shortfall, abs=PERIOD)
    assert not stalled[20_000 - shortfall :].any(), "a late worker must leave silence, not old samples"
    resumed = run_by_hand(proc, x[40_000:60_000])
    assert proc.skipped_blocks > 0
    missed = proc.underruns
    later = run_by_hand(proc, x[60_000:80_000])
    assert proc.underruns == missed, "back on time after one catch-up"
    assert np.isfinite(resumed).all() and np.abs(later).max() > 0.01


def test_processor_edits_reach_the_model(loaded: LoadedModel) -> None:
    """The requested curves are the measured ones edited; the output changes with them (an untrained
    model does not move its output centroid in a set direction: see the module docstring)."""
    ae = ae_of(loaded)
    x = hits()
    plain = LiveTransfer(ae, loaded.descriptor_config, period=PERIOD, max_period=PERIOD)
    brighter = LiveTransfer(
        ae, loaded.descriptor_config, period=PERIOD, max_period=PERIOD, edits=lambda: ({"centroid": 2.0}, {"rms": 0.01})
    )
    cut = 30_000  # mid-signal: the last block is one with sound
    a = run_by_hand(plain, x[:cut])
    b = run_by_hand(brighter, x[:cut])
    assert plain.last_measured is not None and brighter.last_measured is not None
    np.testing.assert_array_equal(plain.last_measured, brighter.last_measured)
    assert brighter.last_requested is not None and brighter.last_measured[:, 5].min() > 100
    np.testing.assert_allclose(brighter.last_requested[:, 5], 2.0 * brighter.last_measured[:, 5], rtol=1e-6)
    np.testing.assert_allclose(brighter.last_requested[:, 0], brighter.last_measured[:, 0] + 0.01, rtol=1e-6)
    np.testing.assert_array_equal(
        brighter.last_requested[:, [1, 2, 3, 4, 6]], brighter.last_measured[:, [1, 2, 3, 4, 6]]
    )
    assert np.abs(a - b).max() > 1e-3


# ----------------------------------------------------------------------------------------------
# the engine on the null backend
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine(model_path: Path) -> Iterator[Engine]:
    eng = Engine(model_path, audio="null", period=PERIOD, transfer=True)
    eng.set_parameter("volume_db", -20.0)
    eng.start()
    yield eng
    eng.stop()


def _wait(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_engine_cv_and_offsets_edit_the_live_descriptors(engine: Engine) -> None:
    """The impact instrument's calibration: CV 3 (brightness) +5 V doubles the centroid, CV 2 (loudness)
    −2.5 V is −12 dB, an OSC-style offset adds Hz; CV 1 (position) and CV 4 (inharmonicity) do nothing."""
    proc = engine.live_transfer
    assert proc is not None
    st = engine.status().extra
    assert st["transfer_latency"] == proc.latency and st["transfer_underruns"] == 0
    engine.set_cv(1, 4.0)
    engine.set_cv(2, -2.5)
    engine.set_cv(3, 5.0)
    engine.set_cv(4, 5.0)
    engine.set_offset("bandwidth", 300.0)
    engine.set_offset("inharmonicity", 1e-4)
    try:
        assert engine.transfer_edits() == (
            {"rms": pytest.approx(10 ** (-12 / 20)), "centroid": 2.0},
            {"bandwidth": 300.0},
        )
        engine.backend.feed(np.tile(hits(0.6), 4))  # type: ignore[attr-defined]
        _wait(lambda: proc.last_measured is not None and proc.last_measured[:, 5].min() > 100)
        measured, requested = proc.last_measured, proc.last_requested
        assert measured is not None and requested is not None
        np.testing.assert_allclose(requested[:, 5], 2.0 * measured[:, 5], rtol=1e-6)
        np.testing.assert_allclose(requested[:, 0], measured[:, 0] * 10 ** (-12 / 20), rtol=1e-5)
        np.testing.assert_allclose(requested[:, 4], measured[:, 4] + 300.0, rtol=1e-6)
        np.testing.assert_array_equal(requested[:, [1, 2, 3, 6]], measured[:, [1, 2, 3, 6]])
    finally:
        for cv in (1, 2, 3, 4):
            engine.set_cv(cv, 0.0)
        engine.set_offset("bandwidth", 0.0)
        engine.set_offset("inharmonicity", 0.0)


def test_engine_refuses_a_non_autoencoder(engine: Engine, model_path: Path) -> None:
    with pytest.raises(NeurorackError, match="cannot transfer audio") as info:
        Engine(None, audio="null", transfer=True)
    assert "\n" not in str(info.value)
    with pytest.raises(NeurorackError, match="multiple of the model's hop 512"):
        Engine(model_path, audio="null", transfer=True, transfer_block=1000)
    before = engine.live_transfer
    engine.select_model("default")  # a descriptor-only model: refused, the fader-ae keeps playing
    _wait(lambda: not engine.status().pending and "cannot switch model" in engine.status().message)
    assert "cannot transfer audio" in engine.status().message
    assert engine.current_model() == "fader" and engine.live_transfer is before and before.running


def test_engine_model_reload_rebuilds_the_processor(engine: Engine) -> None:
    before = engine.live_transfer
    engine.reload_model()
    _wait(lambda: engine.live_transfer is not before and engine.status().extra["transfer_blocks"] > 4)
    assert before is not None and not before.running
    after = engine.live_transfer
    assert after is not None and after.running and after.start_frame > before.start_frame


def test_engine_stalled_worker_outputs_zeros_and_counts_underruns(engine: Engine, tmp_path: Path) -> None:
    """The test hook stalls the worker: the output (recorded after volume and limiter) is exact zeros for
    the stall, the status counts underruns, and the transfer resumes by itself."""
    import soundfile as sf

    proc = engine.live_transfer
    assert proc is not None
    _wait(lambda: proc.blocks_done > 10)
    under0 = engine.status().extra["transfer_underruns"]
    engine.start_recording(tmp_path / "stall.wav")
    time.sleep(0.3)
    proc.stalled = True
    time.sleep(0.4)
    proc.stalled = False
    time.sleep(0.4)
    path = engine.stop_recording()
    assert path is not None
    st = engine.status().extra
    assert st["transfer_underruns"] > under0 and st["transfer_skipped_blocks"] > 0
    audio, _ = sf.read(path, dtype="float32")
    assert np.isfinite(audio).all()
    silent = np.abs(audio) == 0.0
    # the untrained model hums on silence, so a run of exact zeros can only be the stall
    longest, run = 0, 0
    for z in silent:
        run = run + 1 if z else 0
        longest = max(longest, run)
    assert longest >= 0.25 * SR, f"longest silent run {longest} samples"
    assert np.abs(audio[-int(0.1 * SR) :]).max() > 1e-3, "the transfer did not resume"


def test_cli_transfer_errors_are_one_line(model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["play", "--transfer", "--audio", "null", "--model", str(model_path)], "null backend has none"),
        (["play", "--transfer", "--audio", "jack", "--model", "default"], "cannot transfer audio"),
        (["play", "--connect-input", "system:capture_1", "--audio", "null"], "only makes sense with --transfer"),
        (["play", "--transfer", "--model", str(model_path), "--transfer-block", "700"], "multiple of"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (args, err)
        assert len(err.strip().splitlines()) <= 2, err


# ----------------------------------------------------------------------------------------------
# neurorack play --transfer on a real JACK server
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[JackDummyServer]:
    if jackd_path() is None:
        pytest.skip("jackd is not installed (apt-get install jackd2)")
    with prioritised_server(SR, JACK_PERIOD) as srv:
        yield srv


def _status_until(play: PlayProcess, cond: object, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = play.osc.status(timeout=0.5)
        if st is not None and cond(st):  # type: ignore[operator]
            return st
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for the engine: {play.log_text()[-600:]}")


def _zero_runs(x: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of every run of exact zeros in ``x``."""
    z = np.concatenate([[0], (x == 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(z))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _measure(
    play: PlayProcess,
    capture: object,
    player: object,
    server: JackDummyServer,
    name: str,
    loaded: LoadedModel,
    latency: int,
) -> dict[str, object]:
    """One measurement: reload (a fresh processor), play the hits into ``in``, line the captured output up
    with the offline transfer of the same input. Returns the figures and whether JACK ran clean."""
    ae = ae_of(loaded)
    cfg = loaded.descriptor_config
    vol = np.float32(10 ** (-20 / 20))
    st = play.osc.status()
    assert st is not None
    old_start = st["transfer_start_frame"]
    xruns0 = server.xrun_report(name)
    play.osc.send("/neurorack/reload")
    st = _status_until(play, lambda s: s["transfer_start_frame"] not in (old_start, -1) and s["pending"] == 0)
    start = int(st["transfer_start_frame"])  # type: ignore[call-overload]
    under0 = st["transfer_underruns"]
    time.sleep(0.3)
    signal = hits()
    onset = player.play(signal)  # type: ignore[attr-defined]
    while not player.done:  # type: ignore[attr-defined]
        time.sleep(0.05)
    time.sleep(latency / SR + 0.3)
    st = _status_until(play, lambda s: True)
    audio, stamps = capture.snapshot()  # type: ignore[attr-defined]
    xruns = {k: v - xruns0[k] for k, v in server.xrun_report(name).items()}
    flat = audio.reshape(-1)
    runs = [r for r in _zero_runs(flat) if r[1] >= latency // 2]
    first, run = runs[-1] if runs else (0, 0)
    tail = stamps[first // JACK_PERIOD :]
    irregular = int(np.count_nonzero(np.diff(tail) != JACK_PERIOD))
    out = flat[first:]
    length = out.size

    def expected_for(offset: int, n: int) -> np.ndarray:
        x = np.zeros(n, dtype=np.float32)
        piece = signal[: max(0, n - offset)]
        x[offset : offset + piece.size] = piece
        y = transfer_curves(ae, x, describe_with(x, cfg))
        e = np.zeros(n, dtype=np.float32)
        e[latency:] = y[: n - latency] * vol
        return e

    guess = onset - start
    window = min(length, guess + latency + SR // 2)
    scores = {}
    for k in range(-2, 3):
        d = guess + k * JACK_PERIOD
        if d > 0:
            scores[d] = float(np.abs(out[:window] - expected_for(d, window)).max())
    offset = min(scores, key=scores.__getitem__)
    expected = expected_for(offset, length)
    idle = expected_for(length, length)  # no signal: the model's response to silence
    moved = np.flatnonzero(np.abs(out - idle) > 1e-3)
    usable = length - 2048  # the offline pass ends with a repeated last frame
    return {
        "out": out,
        "expected": expected[:usable],
        "pre_roll": run,
        "runs": len(runs),
        "error": float(np.abs(out[:usable] - expected[:usable]).max()),
        "first_effect": int(moved[0]) - offset - int(np.flatnonzero(signal)[0]) if moved.size else -1,
        "correction": offset - guess,
        "underruns": float(st["transfer_underruns"]) - float(under0),  # type: ignore[arg-type]
        "block_ms": st["transfer_block_ms"],
        "clean": irregular == 0 and player.gaps() == 0 and sum(xruns.values()) == 0,  # type: ignore[attr-defined]
        "jack": f"capture stamps irregular {irregular}, player gaps {player.gaps()}, xruns {xruns}",  # type: ignore[attr-defined]
    }


def test_jack_live_transfer_matches_the_offline_path(
    server: JackDummyServer, model_path: Path, loaded: LoadedModel, tmp_path: Path
) -> None:
    """``neurorack play --transfer`` with a JACK client playing hits into ``in`` and another capturing
    ``out``.

    After a reload (a fresh processor) the output is exact zeros for exactly the reported latency, then
    exactly the offline transfer of what entered ``in`` from the processor's first sample on, delayed by
    the latency (after the −20 dB volume; the limiter idle): offline and live start from the same silent
    state at the same sample, so even the model's noise table lines up.

    Alignment: the captured blocks in order from the pre-roll's run of zeros; the signal's offset from the
    processor's start from the JACK frame times (player − engine), refined over ±2 periods by the best
    match (a client of this test process may read JACK's frame time a cycle late; the correction is
    printed). On a loaded machine the dummy driver and the Python clients of this process lose cycles
    (server xruns, repeated or skipped capture stamps, player gaps): then nothing can line up exactly,
    and the measurement is repeated (up to 3 times). Period 1024: Python clients keep up far better
    than at 128.
    """
    from neurorack.engine.probe import JackCapture, JackPlayer

    name = f"nt-{uuid.uuid4().hex[:6]}"
    args = ["--audio", "jack", "--no-connect", "--jack-name", name, "--transfer", "--model", str(model_path)]
    play = PlayProcess(args, env={"JACK_DEFAULT_SERVER": server.name}, log=tmp_path / "play.log")
    capture = player = None
    try:
        st = play.wait_ready()
        ae = ae_of(loaded)
        latency = 1024 + 512 + ae.pqmf.delay + 1024 + JACK_PERIOD
        assert st["transfer_latency"] == latency
        capture = JackCapture(server.name, f"{name}:out", seconds=30.0)
        player = JackPlayer(server.name, f"{name}:in")
        play.osc.send("/neurorack/param/volume_db", -20.0)
        time.sleep(2.5)  # the limiter caught the untrained model's 0 dB hum: let it release to unity
        for attempt in range(3):
            m = _measure(play, capture, player, server, name, loaded, latency)
            print(
                f"live transfer over JACK (attempt {attempt + 1}): latency {latency} samples "
                f"({1000 * latency / SR:.1f} ms), pre-roll {m['pre_roll']} zeros; the input's first sound moves the "
                f"output {m['first_effect']} samples after it entered; max |live − offline| {m['error']:.2e}; offset "
                f"correction {m['correction']:+d}; underruns {m['underruns']:.0f}; {m['block_ms']:.1f} ms per "
                f"block; {m['jack']}"
            )
            out = m["out"]
            assert isinstance(out, np.ndarray) and np.isfinite(out).all()
            assert m["underruns"] == 0, "the worker was late"
            if m["clean"] or m["error"] < 1e-4:
                break
        # the last long run of zeros is the fresh stream's pre-roll (an earlier one may be the old stream
        # starved while the new one was being compiled on the renderer thread: see LiveTransfer)
        assert m["runs"] >= 1 and m["pre_roll"] == latency, "the output of a fresh stream is silent for the latency"
        assert np.abs(out[latency:]).max() > 0.01
        # the input cannot move the output earlier than the latency minus the analysis lookahead (centred
        # descriptor frames, the PQMF synthesis delay)
        assert latency - 2048 <= m["first_effect"] <= latency + JACK_PERIOD  # type: ignore[operator]
        expected = m["expected"]
        assert isinstance(expected, np.ndarray)
        np.testing.assert_allclose(out[: expected.size], expected, rtol=0, atol=1e-4)
    finally:
        for client in (player, capture):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        play.terminate()
        assert "Traceback" not in play.log_text()
