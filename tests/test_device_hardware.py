"""Hardware adapters of the device mode, with simulated devices: display, encoder, LED, ADC CV and gate inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from neurorack.device.controls import GpioControls, QueueControls, keys_to_events, open_controls
from neurorack.device.cv import CvCalibration, CvInputs, GateDetector, InputMap, Mcp3008, SimulatedAdc, open_adc
from neurorack.device.display import open_display
from neurorack.device.led import COLOURS, GpioLed, SimulatedLed, led_colour, led_state
from neurorack.device.menu import Event, EventKind
from neurorack.errors import NeurorackError
from test_device_double import RecordingInstrument

HAVE_GPIOZERO = importlib.util.find_spec("gpiozero") is not None
HAVE_SPIDEV = importlib.util.find_spec("spidev") is not None


def test_calibration_bipolar_10_bit() -> None:
    cal = CvCalibration.for_range("bipolar", bits=10)
    assert cal.lsb == pytest.approx(10.0 / 1024)
    assert abs(cal.volts(512) - 0.0) <= cal.lsb  # mid-scale is 0 V within 1 LSB (here: exactly)
    assert cal.volts(512) == 0.0
    assert cal.volts(0) == -5.0
    assert cal.volts(1023) == pytest.approx(5.0 - 10.0 / 1024)
    assert cal.volts(256) == -2.5 and cal.volts(768) == 2.5
    assert cal.volts(-7) == -5.0 and cal.volts(5000) == cal.volts(1023)  # clamped to the codes
    assert all(cal.count(cal.volts(c)) == c for c in range(1024))  # count() inverts volts()
    assert cal.count(0.0) == 512 and cal.count(99.0) == 1023 and cal.count(float("nan")) == 0


def test_calibration_unipolar_and_measured() -> None:
    uni = CvCalibration.for_range("unipolar", bits=10)
    assert uni.volts(0) == 0.0 and uni.volts(512) == 5.0 and uni.volts(1023) == pytest.approx(10 - 10 / 1024)
    assert CvCalibration.for_range("bipolar", bits=12).volts(2048) == 0.0
    # a measured, inverting front end: +4 V reads 110, -4 V reads 910
    cal = CvCalibration.two_point(110, 4.0, 910, -4.0)
    assert cal.volts(110) == pytest.approx(4.0) and cal.volts(910) == pytest.approx(-4.0)
    assert cal.volts(510) == pytest.approx(0.0) and cal.lsb == pytest.approx(-0.01)
    with pytest.raises(NeurorackError, match="unknown CV range"):
        CvCalibration.for_range("15V")
    with pytest.raises(NeurorackError, match="two different"):
        CvCalibration.two_point(5, 1.0, 5, 2.0)


def test_gate_detector_hysteresis() -> None:
    gate = GateDetector()
    assert [gate.update(v) for v in (0.0, 0.9, 1.0, 3.0, 0.7, 0.49, 0.8, 1.2)] == [
        None, None, True, None, None, False, None, True,
    ]  # fmt: skip


def test_cv_inputs_report_changes_and_gate_edges() -> None:
    adc = SimulatedAdc(bits=10, channels=8)
    cal = CvCalibration.for_range("bipolar")
    inputs = CvInputs(adc, cal, InputMap(cv_channels=(0, 1, -1, 3), gate_channels=(4, 5)))
    cvs, gates = inputs.poll()
    assert cvs == {1: 0.0, 2: 0.0, 4: 0.0} and gates == {}  # first poll reports every wired CV
    assert inputs.poll() == ({}, {})
    adc.set_count(0, 513)  # 1 LSB of noise: below the 2-LSB dead band
    adc.set_volts(1, 2.5, cal)
    adc.set_volts(4, 5.0, cal)
    cvs, gates = inputs.poll()
    assert cvs == {2: 2.5} and gates == {1: True}
    adc.set_count(0, 514)  # 2 LSB from the last report
    adc.set_volts(4, 0.0, cal)
    cvs, gates = inputs.poll()
    assert cvs == {1: pytest.approx(2 * cal.lsb)} and gates == {1: False}
    with pytest.raises(NeurorackError, match="channel 9"):
        CvInputs(adc, cal, InputMap(cv_channels=(9,)))


def test_mcp3008_unavailable_is_one_clear_line() -> None:
    if HAVE_SPIDEV and Path("/dev/spidev0.0").exists():
        pytest.skip("a real SPI bus is present")
    with pytest.raises(NeurorackError, match="MCP3008") as err:
        Mcp3008(0, 0)
    assert "\n" not in str(err.value) and ("spidev" in str(err.value) or "SPI" in str(err.value))
    with pytest.raises(NeurorackError, match="MCP3008"):
        open_adc("mcp3008")
    assert open_adc("none") is None and isinstance(open_adc("sim"), SimulatedAdc)
    with pytest.raises(NeurorackError, match="unknown ADC"):
        open_adc("ads1115")


def test_keyboard_and_queue_controls() -> None:
    assert keys_to_events("dd\x1b[Da \r\x7f") == [
        Event.rotate(1), Event.rotate(1), Event.rotate(-1), Event.rotate(-1), Event.press(), Event.press(),
        Event.long_press(),
    ]  # fmt: skip
    assert keys_to_events("\x1b") == [Event.long_press()] and keys_to_events("xyz") == []
    controls = open_controls("sim")
    assert isinstance(controls, QueueControls)
    controls.feed_keys("ddd")
    controls.rotate(-1)
    controls.press()
    controls.rotate(2)
    # consecutive detents merge into one rotation; order is kept
    assert controls.poll() == [Event.rotate(2), Event.press(), Event.rotate(2)]
    assert controls.poll() == []
    controls.long_press()
    assert [e.kind for e in controls.poll()] == [EventKind.LONG_PRESS]


@pytest.mark.skipif(HAVE_GPIOZERO, reason="gpiozero is installed here")
def test_gpio_adapters_without_gpiozero() -> None:
    for make in (GpioControls, GpioLed, lambda: open_controls("gpio")):
        with pytest.raises(NeurorackError, match="gpiozero") as err:
            make()
        assert "\n" not in str(err.value) and "simulated" in str(err.value)
    with pytest.raises(NeurorackError, match="unknown controls"):
        open_controls("joystick")


def test_led_colours() -> None:
    status = RecordingInstrument().status()
    assert led_state(None) == "off" and led_colour(None) == (0, 0, 0)
    assert led_state(status) == "idle" and led_colour(status) == COLOURS["idle"]
    assert led_state(status.__class__(**{**status.__dict__, "voices": 2})) == "playing"
    assert led_state(status.__class__(**{**status.__dict__, "voices": 2, "pending": True})) == "rendering"
    assert led_colour(status.__class__(**{**status.__dict__, "running": False})) == (255, 0, 0)
    # the engine's own colour wins when it sets one
    assert led_colour(status.__class__(**{**status.__dict__, "led": (10, 20, 300)})) == (10, 20, 255)
    led = SimulatedLed()
    for colour in [(1, 2, 3), (1, 2, 3), (0, 255, 0)]:
        led.set(colour)
    assert led.colour == (0, 255, 0) and led.history == [(1, 2, 3), (0, 255, 0)]
    led.close()
    assert led.colour == (0, 0, 0)


def test_dummy_display_and_missing_hardware() -> None:
    device = open_display("dummy")
    assert device.size == (128, 64) and device.mode == "1" and device.image is None
    assert open_display("dummy", rotate=2).size == (128, 64)
    with pytest.raises(NeurorackError, match="unknown device kind 'ssd1351'"):
        open_display("ssd1351")
    if Path("/dev/i2c-1").exists():
        pytest.skip("an I2C bus is present")
    for kind in ("ssd1306", "sh1106"):
        with pytest.raises(NeurorackError) as err:
            open_display(kind)
        message = str(err.value)
        assert "\n" not in message and kind in message and "/dev/i2c-1" in message and "dummy" in message
    with pytest.raises(NeurorackError, match="sh1106 display") as err:
        open_display("sh1106", interface="spi")
    assert "spidev0.0" in str(err.value)


def test_terminal_keyboard_controls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keyboard adapter reads a real terminal (a pseudo-terminal here) in cbreak mode and restores it."""
    import os
    import pty
    import termios
    import time

    from neurorack.device.controls import TerminalControls

    master, slave = pty.openpty()
    with os.fdopen(slave, "r") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        before = termios.tcgetattr(slave)
        controls = open_controls("keyboard")
        assert isinstance(controls, TerminalControls)
        assert termios.tcgetattr(slave)[3] & termios.ICANON == 0  # cbreak: keys arrive one by one
        os.write(master, b"dd\x1b[D\r")
        events: list[Event] = []
        deadline = time.monotonic() + 5
        while Event.press() not in events and time.monotonic() < deadline:
            events += controls.poll()
            time.sleep(0.01)
        controls.close()
        controls.close()
        assert events[-1] == Event.press()  # Enter, after +1 +1 -1
        assert sum(e.steps for e in events) == 1 and all(e.kind is EventKind.ROTATE for e in events[:-1])
        assert termios.tcgetattr(slave) == before
    os.close(master)
    with open(os.devnull) as devnull:
        monkeypatch.setattr("sys.stdin", devnull)
        with pytest.raises(NeurorackError, match="interactive terminal"):
            TerminalControls()
