"""DeviceApp: the device mode end to end with luma's dummy display and simulated controls, LED and ADC."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from neurorack.device import DeviceApp, Event, render
from neurorack.device.controls import QueueControls
from neurorack.device.cv import CvCalibration, SimulatedAdc
from neurorack.device.led import COLOURS, SimulatedLed
from neurorack.errors import NeurorackError
from test_device_double import RecordingInstrument

P, L, R = Event.press(), Event.long_press(), Event.rotate


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_threads_draw_into_the_dummy_device_and_stop(tmp_path: Path) -> None:
    inst = RecordingInstrument()
    app = DeviceApp(inst, "dummy")
    assert isinstance(app.controls, QueueControls) and isinstance(app.led, SimulatedLed)
    app.start()
    try:
        assert wait_until(lambda: app.display.image is not None)
        first: Image.Image = app.display.image
        assert first.size == (128, 64) and first.mode == "1"
        assert first.tobytes() == render(app.screen()).tobytes()
        # Models > Select > the second model, through the encoder queue
        app.controls.push(P, R(1), P, R(1), P)  # type: ignore[attr-defined]
        assert wait_until(lambda: inst.named_calls("select_model") == [("808-kit",)])
        assert wait_until(lambda: app.display.image.tobytes() == render(app.screen()).tobytes())
        assert app.display.image.tobytes() != first.tobytes()
        assert wait_until(lambda: app.led.colour == COLOURS["idle"])  # type: ignore[attr-defined]
        app.display.image.save(tmp_path / "device-select.png")
    finally:
        app.stop()
    assert not app.running and not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("neurorack-d"))
    assert app.led.colour == (0, 0, 0)  # type: ignore[attr-defined]
    assert app.display.image is not None and app.last_error == ""
    app.stop()  # idempotent
    with pytest.raises(NeurorackError, match="stopped"):
        app.start()


def test_redraws_only_when_the_screen_changes() -> None:
    inst = RecordingInstrument()
    app = DeviceApp(inst, "dummy", max_fps=30)
    assert app.poll_once(now=0.0) and app.frames == 1
    assert not app.poll_once(now=1.0) and app.frames == 1  # nothing changed: no redraw
    app.post(R(1))
    assert not app.poll_once(now=1.01)  # changed, but the next frame is due only after 1/30 s
    assert app.poll_once(now=1.04) and app.frames == 2
    app.post(R(1), R(-1))
    assert not app.poll_once(now=2.0) and app.frames == 2  # moved and back: same screen
    inst.status_value = inst.status_value.__class__(**{**inst.status_value.__dict__, "voices": 3})
    assert app.poll_once(now=3.0) and app.frames == 3  # the header shows the new voice count
    app.stop()


def test_adc_inputs_drive_cvs_and_gates_and_add_the_encoder_knob() -> None:
    inst = RecordingInstrument()
    adc = SimulatedAdc(bits=10, channels=8)
    cal = CvCalibration.for_range("bipolar")
    for channel in range(8):
        adc.set_volts(channel, 0.0, cal)
    app = DeviceApp(inst, "dummy", adc=adc, calibration=cal)
    app.poll_once(now=0.0)
    assert sorted(inst.named_calls("set_cv")) == [(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0)]
    inst.calls.clear()
    adc.set_volts(0, 2.0, cal)  # CV 1 at +2 V (nearest code: 2.0017 V)
    adc.set_volts(4, 5.0, cal)  # gate 1 up
    app.poll_once(now=0.1)
    assert inst.named_calls("set_cv") == [(1, pytest.approx(2.0, abs=cal.lsb))]
    assert inst.named_calls("gate") == [(1, True)]
    adc.set_volts(4, 0.2, cal)
    app.poll_once(now=0.2)
    assert inst.named_calls("gate") == [(1, True), (1, False)]
    inst.calls.clear()
    # on the Play screen the encoder turns CV 1's knob, added to the ADC's volts
    app.post(P, P, R(5))
    app.poll_once(now=0.3)
    assert inst.named_calls("set_cv") == [(1, pytest.approx(2.5, abs=cal.lsb))]
    # a press plays: a pulse on gate 1
    app.post(P)
    app.poll_once(now=0.4)
    assert inst.named_calls("gate")[-2:] == [(1, True), (1, False)]
    app.stop()


def test_refusals_shutdown_hook_and_message_timeout() -> None:
    inst = RecordingInstrument()
    requested: list[str] = []
    app = DeviceApp(inst, "dummy", adc="none", system_hook=requested.append, message_s=1.0)
    assert app.cv_inputs is None
    app.post(R(3), P, R(1), P, R(1), P)  # Admin > Shutdown > Shut down now
    app.poll_once(now=0.0)
    assert requested == ["shutdown"] and app.state.message == "shutdown requested"
    assert app.screen().message == "shutdown requested"
    app.poll_once(now=1.5)
    assert app.state.message == ""  # the notice went away
    # the engine refuses a value: the refusal shows on the screen, nothing crashes
    inst.set_parameter("volume_db", 0.0)
    inst.calls.clear()
    inst.ranges["volume_db"] = (-60.0, 0.0)  # this engine allows no gain
    app.post(L, R(-2), P, P, R(6), P)  # Parameters > volume, +6 dB, confirm
    app.poll_once(now=2.0)
    assert inst.named_calls("set_parameter") == [("volume_db", 6.0)]
    assert app.state.message == "volume_db must be within -60..0"
    assert inst.parameters()["volume_db"] == 0.0
    app.stop()


def test_a_failing_instrument_does_not_stop_the_loop() -> None:
    inst = RecordingInstrument()
    calls = {"n": 0}
    real = inst.status

    def flaky() -> object:
        calls["n"] += 1
        if calls["n"] < 4:
            raise RuntimeError("engine busy")
        return real()

    inst.status = flaky  # type: ignore[method-assign]
    with DeviceApp(inst, "dummy", poll_hz=200) as app:
        assert wait_until(lambda: app.display.image is not None)
    assert app.last_error == "RuntimeError: engine busy"


def test_hardware_kinds_without_hardware() -> None:
    if Path("/dev/i2c-1").exists():
        pytest.skip("an I2C bus is present")
    for kind in ("ssd1306", "sh1106"):
        with pytest.raises(NeurorackError) as err:
            DeviceApp(RecordingInstrument(), kind)
        assert "\n" not in str(err.value) and kind in str(err.value)
    with pytest.raises(NeurorackError, match="unknown device kind 'oled'"):
        DeviceApp(RecordingInstrument(), "oled")
    with pytest.raises(NeurorackError, match="unknown controls"):
        DeviceApp(RecordingInstrument(), "dummy", controls="mouse")


def test_screenshot_for_the_docs(tmp_path: Path) -> None:
    """Four screens side by side at 2×, the picture in the README (written to tmp_path; the docs copy
    is refreshed only when NEURORACK_UPDATE_DOCS=1)."""
    import os

    inst = RecordingInstrument()
    app = DeviceApp(inst, "dummy", adc="none")
    shots = []
    for events in ([], [P, P, R(3)], [L, L, R(1), P, P, R(-3)], [L, L, R(1), P]):
        app.post(*events)
        app.poll_once(now=float(len(shots)))
        shots.append(app.display.image.copy())
    app.stop()
    gap = 4
    sheet = Image.new("1", (2 * 128 + gap, 2 * 64 + gap), 0)
    for i, shot in enumerate(shots):
        sheet.paste(shot, ((i % 2) * (128 + gap), (i // 2) * (64 + gap)))
    sheet = sheet.resize((sheet.width * 2, sheet.height * 2), Image.Resampling.NEAREST)
    out = tmp_path / "device-screen.png"
    sheet.save(out)
    with Image.open(out) as saved:
        assert saved.size == (520, 264)
    if os.environ.get("NEURORACK_UPDATE_DOCS") == "1":
        docs = Path(__file__).resolve().parents[1] / "docs" / "device-screen.png"
        shutil.copyfile(out, docs)
