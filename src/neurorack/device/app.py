"""The headless device mode: the module's screen, encoder, LED and CV/gate inputs driving an instrument.

``DeviceApp(instrument, kind)`` ties the pieces together: an input thread polls the encoder and the
ADC at ~100 Hz, runs the menu (:mod:`~neurorack.device.menu`) and carries out its actions through the
instrument's :class:`~neurorack.engine.protocol.InstrumentControl`; a display thread draws the screen
(:mod:`~neurorack.device.screen`) at most ``max_fps`` times a second and only when it changed, so a
slow I²C display never delays the gates. Everything is simulated for ``kind="dummy"``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from PIL import Image

from neurorack.device.actions import Action, Knob, SystemHook, execute, log_system_hook
from neurorack.device.controls import EventSource, QueueControls, open_controls
from neurorack.device.cv import DEFAULT_INPUTS, Adc, CvCalibration, CvInputs, InputMap, SimulatedAdc, open_adc
from neurorack.device.display import KINDS, open_display
from neurorack.device.gpio import DEFAULT_PINS, GpioPins
from neurorack.device.led import Led, led_colour, open_led
from neurorack.device.menu import Event, MenuState, Screen, Snapshot, handle, view
from neurorack.device.screen import render
from neurorack.engine.protocol import InstrumentControl
from neurorack.errors import NeurorackError

log = logging.getLogger(__name__)


class DeviceApp:
    """The device mode for one instrument.

    Args:
        instrument: the engine (or anything implementing :class:`InstrumentControl`).
        kind: display kind: ``"dummy"`` (luma's dummy device, everything simulated), ``"ssd1306"``
            or ``"sh1106"`` (hardware; see :func:`neurorack.device.display.open_display`).
        interface, port, address, spi_device, rotate: where the hardware display is (I²C bus 1 at
            0x3C by default; SPI bus 0 when ``interface="spi"``), and its rotation in quarter turns.
        controls: the encoder: ``"sim"`` (a queue: ``app.controls.push(...)``), ``"keyboard"`` (the
            terminal), ``"gpio"``, or an :class:`EventSource`. Default: ``"sim"`` for the dummy kind,
            ``"gpio"`` for hardware kinds.
        led: ``"sim"``, ``"gpio"`` or a :class:`Led`; same defaults as ``controls``.
        adc: CV/gate inputs: ``"none"``, ``"sim"`` (a :class:`SimulatedAdc` at 0 V), ``"mcp3008"``
            (on SPI ``adc_spi`` = (bus, chip select)) or an :class:`Adc`. Default: ``"sim"`` for the
            dummy kind, ``"mcp3008"`` for hardware kinds.
        cv_range: ``"bipolar"`` (−5…+5 V) or ``"unipolar"`` (0…10 V) front end, when no
            ``calibration`` is given; ``calibration``: one for every channel, or one per channel.
        inputs: which ADC channel carries which CV and gate.
        pins: GPIO pins (BCM) of the encoder, button and LED.
        system_hook: called with ``"shutdown"``/``"reboot"`` after confirmation on the Admin menu;
            the default only logs (use :func:`~neurorack.device.actions.systemctl_hook` on a dedicated board).
        display: a luma device to draw on instead of opening ``kind`` (its size must be 128×64).
        poll_hz: input polls per second; max_fps: screen redraws per second at most;
            message_s: seconds a notice stays on screen.

    Attributes:
        display: the luma device (``display.image`` holds the last frame on the dummy device).
        controls, led, cv_inputs: the adapters (``cv_inputs`` is None without an ADC).
        state: the menu state; frames: screens drawn so far; image: the last one (128×64, mode "1").
        last_error: the last exception the threads survived, as one line (empty when none).

    Raises:
        NeurorackError: unknown kind, or a requested hardware part is missing (one line saying which).
    """

    def __init__(
        self,
        instrument: InstrumentControl,
        kind: str = "dummy",
        *,
        interface: str = "i2c",
        port: int | None = None,
        address: int = 0x3C,
        spi_device: int = 0,
        rotate: int = 0,
        controls: str | EventSource | None = None,
        led: str | Led | None = None,
        adc: str | Adc | None = None,
        adc_spi: tuple[int, int] = (0, 0),
        cv_range: str = "bipolar",
        calibration: CvCalibration | Sequence[CvCalibration] | None = None,
        inputs: InputMap = DEFAULT_INPUTS,
        pins: GpioPins = DEFAULT_PINS,
        system_hook: SystemHook = log_system_hook,
        display: Any = None,
        poll_hz: float = 100.0,
        max_fps: float = 30.0,
        message_s: float = 2.5,
    ) -> None:
        if kind not in KINDS:
            raise NeurorackError(f"unknown device kind {kind!r}: choose one of {', '.join(KINDS)}")
        if poll_hz <= 0 or max_fps <= 0:
            raise NeurorackError("poll_hz and max_fps must be positive")
        hardware = kind != "dummy"
        if (
            hardware
            and interface == "spi"
            and adc == "mcp3008"
            and (0 if port is None else port, spi_device) == adc_spi
        ):
            raise NeurorackError(f"the display and the ADC cannot share SPI chip select {adc_spi}")
        self.instrument = instrument
        self.kind = kind
        self.system_hook = system_hook
        self.poll_hz = poll_hz
        self.max_fps = max_fps
        self.message_s = message_s
        self._owns_display = display is None
        self._closers: list[Any] = []
        try:
            self.display: Any = (
                display
                if display is not None
                else open_display(
                    kind, interface=interface, port=port, address=address, spi_device=spi_device, rotate=rotate
                )
            )
            if tuple(self.display.size) != (128, 64):
                raise NeurorackError(f"the device screen must be 128x64 pixels, got {self.display.size}")
            default = "gpio" if hardware else "sim"
            self.controls: EventSource = (
                open_controls(controls or default, pins) if controls is None or isinstance(controls, str) else controls
            )
            self._closers.append(self.controls)
            self.led: Led = open_led(led or default, pins) if led is None or isinstance(led, str) else led
            self._closers.append(self.led)
            adc_device: Adc | None = (
                open_adc(adc or ("mcp3008" if hardware else "sim"), *adc_spi)
                if adc is None or isinstance(adc, str)
                else adc
            )
            self.cv_inputs: CvInputs | None = None
            if adc_device is not None:
                self._closers.append(adc_device)
                if calibration is None:
                    calibration = CvCalibration.for_range(cv_range, adc_device.bits)
                if isinstance(adc_device, SimulatedAdc) and isinstance(adc, str | None):
                    first = calibration if isinstance(calibration, CvCalibration) else calibration[0]
                    for channel in range(adc_device.channels):
                        adc_device.set_volts(channel, 0.0, first)
                self.cv_inputs = CvInputs(adc_device, calibration, inputs)
        except BaseException:
            self._close_adapters()
            raise
        self.state = MenuState()
        self.frames = 0
        self.last_error = ""
        self.image: Image.Image | None = None
        self._posted = QueueControls()
        self._adc_volts: dict[int, float] = {}
        self._knobs: dict[int, float] = {}
        self._message_until = 0.0
        self._next_frame = 0.0
        self._led_colour: tuple[int, int, int] | None = None
        self._screen: Screen | None = None
        self._drawn: Screen | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stopped = False

    # -- running -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the input thread (``poll_hz``) and the display thread; returns at once."""
        if self._stopped:
            raise NeurorackError("this device app was stopped; create a new one")
        if self._threads:
            return
        self._threads = [
            threading.Thread(target=self._input_loop, name="neurorack-device-input", daemon=True),
            threading.Thread(target=self._display_loop, name="neurorack-device-display", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the threads, turn the LED off and release the hardware (a hardware screen is blanked;
        the dummy device keeps its last frame in ``display.image``). Idempotent."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("device threads still running after %.1f s: %s", timeout, ", ".join(alive))
        if not self._stopped:
            self._stopped = True
            self._close_adapters()

    @property
    def running(self) -> bool:
        """The threads are running."""
        return any(t.is_alive() for t in self._threads) and not self._stop.is_set()

    def __enter__(self) -> DeviceApp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def post(self, *events: Event) -> None:
        """Queue encoder events from elsewhere (the web panel, a test); handled on the next poll."""
        self._posted.push(*events)

    def screen(self) -> Screen:
        """The screen as it is now (what the display shows, or will at the next frame)."""
        with self._lock:
            return view(self.state, Snapshot.of(self.instrument))

    # -- one step ----------------------------------------------------------------------------------

    def poll_once(self, now: float | None = None) -> bool:
        """One input poll: encoder events → menu → instrument; ADC → CVs and gates; LED; and, when a
        frame is due and the screen changed, a redraw (handed to the display thread when it runs,
        drawn here otherwise). Returns whether a new screen was produced. ``now``: monotonic seconds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            events = self._posted.poll() + self.controls.poll()
            snap: Snapshot | None = None
            for event in events:
                snap = Snapshot.of(self.instrument)
                self.state, actions = handle(replace(self.state, message=""), event, snap)
                for action in actions:
                    self._do(action)
                if self.state.message:
                    self._message_until = now + self.message_s
            if self.cv_inputs is not None:
                cvs, edges = self.cv_inputs.poll()
                for cv, volts in cvs.items():
                    self._adc_volts[cv] = volts
                    self._send_cv(cv)
                for gate, high in edges.items():
                    self.instrument.gate(gate, high)
            if self.state.message and now >= self._message_until:
                self.state = replace(self.state, message="")
            if now < self._next_frame:
                return False
            self._next_frame = now + 1.0 / self.max_fps
            snap = Snapshot.of(self.instrument)
            colour = led_colour(snap.status)
            if colour != self._led_colour:
                self.led.set(colour)
                self._led_colour = colour
            screen = view(self.state, snap)
            if screen == self._screen:
                return False
            self._screen = screen
        if any(t.is_alive() for t in self._threads):
            self._wake.set()
        else:
            self._draw(screen)
        return True

    def _do(self, action: Action) -> None:
        if isinstance(action, Knob):
            self._knobs[action.cv] = action.volts
            self._send_cv(action.cv)
            return
        error = execute(self.instrument, action, self.system_hook)
        if error:
            self.state = replace(self.state, message=error)

    def _send_cv(self, cv: int) -> None:
        """CV ``cv`` = ADC volts + the encoder's knob volts."""
        self.instrument.set_cv(cv, self._adc_volts.get(cv, 0.0) + self._knobs.get(cv, 0.0))

    def _draw(self, screen: Screen) -> None:
        if screen == self._drawn:
            return
        image = render(screen)
        self.display.display(image)
        self._drawn = screen
        self.image = image
        self.frames += 1

    # -- threads -----------------------------------------------------------------------------------

    def _report(self, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}"
        if text != self.last_error:
            log.error("device mode: %s", text, exc_info=exc)
        self.last_error = text

    def _input_loop(self) -> None:
        period = 1.0 / self.poll_hz
        deadline = time.monotonic()
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # keep the instrument playable whatever a surface does
                self._report(exc)
            deadline += period
            delay = deadline - time.monotonic()
            if delay < 0:
                deadline, delay = time.monotonic(), 0.0
            self._stop.wait(delay)

    def _display_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.25)
            self._wake.clear()
            screen = self._screen
            if screen is None or self._stop.is_set():
                continue
            try:
                self._draw(screen)
            except Exception as exc:  # a display that fell off the bus must not stop the inputs
                self._report(exc)

    def _close_adapters(self) -> None:
        for part in reversed(self._closers):
            try:
                part.close()
            except Exception as exc:  # releasing hardware must not hide the original problem
                log.warning("device mode: closing %s: %s", type(part).__name__, exc)
        self._closers = []
        if self._owns_display and self.kind != "dummy" and hasattr(self, "display"):
            try:
                self.display.cleanup()
            except Exception as exc:
                log.warning("device mode: releasing the display: %s", exc)
