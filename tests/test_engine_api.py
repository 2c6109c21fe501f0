"""The engine from Python on the null backend (real threads, real clock), and OSC over real UDP loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine_support import OscClient
from neurorack.engine import Engine, InstrumentControl
from neurorack.engine.osc import OscServer


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    eng = Engine(audio="null", period=128)
    eng.start()
    yield eng
    eng.stop()


def _settle(engine: Engine, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while engine.status().pending and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not engine.status().pending


def test_engine_implements_the_protocol(engine: Engine) -> None:
    assert isinstance(engine, InstrumentControl)
    st = engine.status()
    assert st.running and st.backend == "null" and st.sample_rate == 44100 and st.period == 128
    assert st.model == engine.current_model() == "default"
    assert engine.assignments() == {1: "position", 2: "rms", 3: "centroid", 4: "inharmonicity"}
    assert "default" in engine.models()
    impact = engine.current_impact()
    curves = engine.current_curves()
    assert impact is not None and impact.dtype == np.float32 and np.isfinite(impact).all()
    assert curves is not None and curves.shape[1] == 7


def test_cv_change_renders_ahead(engine: Engine) -> None:
    _settle(engine)
    before = engine.current_curves()
    renders = engine.status().extra["renders"]
    engine.set_cv(3, 5.0)  # brightness +1 octave
    _settle(engine)
    after = engine.current_curves()
    assert before is not None and after is not None
    assert engine.status().extra["renders"] > renders
    assert np.allclose(after[:, 5], np.maximum(before[:, 5] * 2.0, 0.0), rtol=1e-4, atol=1e-3)
    engine.set_cv(1, -5.0)  # position 0: the first anchor
    _settle(engine)
    first = engine.model.anchors[engine.model.anchor_names[0]]
    assert engine.current_curves().shape[0] == first.shape[0]  # type: ignore[union-attr]
    engine.set_cv(3, 0.0)
    engine.set_cv(1, 0.0)
    _settle(engine)


def test_assignment_and_offsets_change_the_curves(engine: Engine) -> None:
    engine.assign(4, "brightness")
    assert engine.assignments()[4] == "centroid"
    engine.set_cv(4, -5.0)
    _settle(engine)
    low = engine.current_curves()
    engine.set_cv(4, 0.0)
    engine.set_offset("f0", 50.0)
    _settle(engine)
    shifted = engine.current_curves()
    engine.set_offset("f0", 0.0)
    engine.assign(4, "inharmonicity")
    _settle(engine)
    base = engine.current_curves()
    assert low is not None and shifted is not None and base is not None
    assert np.median(low[:, 5]) < np.median(base[:, 5])
    assert np.allclose(shifted[:, 6], base[:, 6] + 50.0, atol=1e-2)


def test_moved_knobs_are_named_to_the_model(engine: Engine) -> None:
    """The renderer tells the model which descriptors the CVs and offsets moved (Generator.focus)."""
    engine.assign(3, "brightness")
    engine.set_cv(3, 0.0)
    engine.set_offset("rolloff", 0.0)
    _settle(engine)
    _, _, moved = engine.renderer.curves()
    assert "centroid" not in moved and "rolloff" not in moved
    engine.set_cv(3, 2.5)
    engine.set_offset("rolloff", 1000.0)
    _settle(engine)
    _, _, moved = engine.renderer.curves()
    assert moved["centroid"] > 1.0 and moved["rolloff"] > 1.0
    engine.set_cv(3, 0.0)
    engine.set_offset("rolloff", 0.0)
    _settle(engine)
    assert engine.model.model.lock_emphasis is None  # the hint lasts one render


def test_gates_play_and_gate_two_rerenders(engine: Engine) -> None:
    _settle(engine)
    hits = engine.status().extra["hits"]
    engine.gate(1, True, velocity=0.5)
    engine.gate(1, False)
    seed = engine.renderer.seed
    engine.gate(2, True)
    engine.gate(2, False)
    time.sleep(0.1)
    _settle(engine)
    assert engine.status().extra["hits"] == hits + 1
    assert engine.renderer.seed == seed + 1


def test_bad_values_raise_value_error(engine: Engine) -> None:
    for call in (
        lambda: engine.gate(3, True),
        lambda: engine.gate(1, True, velocity=2.0),
        lambda: engine.set_cv(0, 1.0),
        lambda: engine.set_cv(1, float("nan")),
        lambda: engine.set_cv(1, 50.0),
        lambda: engine.assign(1, "nonsense"),
        lambda: engine.set_offset("nonsense", 1.0),
        lambda: engine.set_offset("rms", float("inf")),
        lambda: engine.set_parameter("nope", 1.0),
        lambda: engine.set_parameter("cv_range", 7.0),
        lambda: engine.set_parameter("max_voices", 0),
        lambda: engine.set_parameter("volume_db", float("nan")),
    ):
        with pytest.raises(ValueError):
            call()


def test_parameters(engine: Engine) -> None:
    params = engine.parameters()
    assert params["max_voices"] == 8 and params["cv_range"] == 5.0
    engine.set_parameter("max_voices", 3)
    assert engine.status().max_voices == 3
    engine.set_parameter("max_voices", 8)


def test_follow_cvs_off_waits_for_gate_two(engine: Engine) -> None:
    """As on the original module: with ``follow_cvs`` 0 the CVs only take effect on gate 2."""
    engine.set_parameter("follow_cvs", 0)
    try:
        _settle(engine)
        before = engine.current_curves()
        renders = engine.status().extra["renders"]
        engine.set_cv(3, 5.0)
        time.sleep(0.2)
        assert engine.status().extra["renders"] == renders
        assert np.array_equal(engine.current_curves(), before)  # type: ignore[arg-type]
        engine.gate(2, True)
        engine.gate(2, False)
        deadline = time.monotonic() + 5
        while engine.status().extra["renders"] == renders and time.monotonic() < deadline:
            time.sleep(0.01)
        after = engine.current_curves()
        assert before is not None and after is not None
        assert np.median(after[:, 5]) > 1.5 * np.median(before[:, 5])
    finally:
        engine.set_parameter("follow_cvs", 1)
        engine.set_cv(3, 0.0)
        _settle(engine)


def test_duration_stretches_the_impact(engine: Engine) -> None:
    engine.set_parameter("duration", 0.5)
    _settle(engine)
    impact = engine.current_impact()
    engine.set_parameter("duration", 0.0)
    _settle(engine)
    assert impact is not None and abs(impact.shape[0] / engine.sample_rate - 0.5) < 0.02


def test_model_switch_keeps_playing(engine: Engine) -> None:
    engine.select_model("no-such-model")
    deadline = time.monotonic() + 5
    while "cannot switch model" not in engine.status().message and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "cannot switch model" in engine.status().message
    assert engine.current_model() == "default" and engine.current_impact() is not None
    engine.reload_model()
    _settle(engine)
    assert engine.current_model() == "default"


def test_osc_over_udp_controls_the_engine_and_survives_garbage(engine: Engine) -> None:
    server = OscServer(engine, port=0).start()
    client = OscClient(server.port)
    try:
        hits = engine.status().extra["hits"]
        client.send("/neurorack/cv/2", -2.5)
        client.send("/neurorack/descriptor/brightness", 100.0)
        client.send("/neurorack/assign", 3, "f0")
        client.send("/neurorack/param/volume_db", -6.0)
        client.send("/neurorack/gate/1", 1)
        client.send("/neurorack/gate/1", 0.0)
        for junk in (b"", b"\xff" * 7, b"/neurorack/cv/1\x00,f\x00\x00\x01"):
            client.raw(junk)
        client.send("/neurorack/cv/1", "five")
        client.send("/neurorack/cv/1", float("nan"))
        client.send("/neurorack/gate/1", True, 5.0)
        client.send("/nope")
        time.sleep(0.1)  # the audio thread takes the gate at its next period
        st = client.status()
        assert st is not None and st["running"] == 1 and st["backend"] == "null"
        assert st["cv_2"] == -2.5 and st["hits"] >= hits + 1
        assert engine.assignments()[3] == "f0" and engine.offsets()["centroid"] == 100.0
        assert engine.parameters()["volume_db"] == -6.0
        assert server.ignored >= 6
    finally:
        client.close()
        server.stop()
        engine.assign(3, "centroid")
        engine.set_offset("centroid", 0.0)
        engine.set_cv(2, 0.0)
        engine.set_parameter("volume_db", 0.0)


def test_recording_from_python(tmp_path: Path) -> None:
    out = tmp_path / "take.flac"
    with Engine(audio="null") as eng:
        eng.start_recording(out)
        for _ in range(3):
            eng.gate(1, True)
            time.sleep(0.05)
            eng.gate(1, False)
            time.sleep(0.1)
        assert not out.exists()  # written beside it until the end
    audio, sr = sf.read(out, dtype="float32")
    assert sr == 44100 and audio.shape[0] > 0.3 * sr
    assert np.isfinite(audio).all() and np.abs(audio).max() > 0.01
