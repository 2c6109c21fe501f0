"""The encoder's RGB LED: simulated (records colours) or three GPIO pins through gpiozero (PWM).

Colour: ``EngineStatus.led`` when the engine sets one (not black), otherwise :func:`led_state`'s
mapping — ``error`` red (engine not running), ``rendering`` amber (re-render pending),
``playing`` green (voices sounding), ``idle`` dim blue.
"""

from __future__ import annotations

from typing import Any, Protocol

from neurorack.device.gpio import DEFAULT_PINS, GpioPins, gpio_error, require_gpiozero
from neurorack.engine.protocol import EngineStatus
from neurorack.errors import NeurorackError

RGB = tuple[int, int, int]

#: Colour per state, 0..255 per channel.
COLOURS: dict[str, RGB] = {
    "off": (0, 0, 0),
    "idle": (0, 0, 40),
    "playing": (0, 255, 0),
    "rendering": (255, 110, 0),
    "error": (255, 0, 0),
}


def led_state(status: EngineStatus | None) -> str:
    """``"error"``, ``"rendering"``, ``"playing"`` or ``"idle"`` for an engine status (None = ``"off"``)."""
    if status is None:
        return "off"
    if not status.running:
        return "error"
    if status.pending:
        return "rendering"
    if status.voices > 0:
        return "playing"
    return "idle"


def led_colour(status: EngineStatus | None) -> RGB:
    """The colour to show: the engine's own ``status.led`` if not black, else :data:`COLOURS` [:func:`led_state`]."""
    if status is not None and any(status.led):
        r, g, b = (min(255, max(0, int(c))) for c in status.led)
        return (r, g, b)
    return COLOURS[led_state(status)]


class Led(Protocol):
    """An RGB LED."""

    def set(self, rgb: RGB) -> None:
        """Show colour ``rgb`` (0..255 per channel)."""
        ...

    def close(self) -> None:
        """Turn off and release the hardware (idempotent)."""
        ...


class SimulatedLed:
    """An LED that only remembers: ``colour`` now and ``history`` of changes (last 256)."""

    def __init__(self) -> None:
        self.colour: RGB = (0, 0, 0)
        self.history: list[RGB] = []

    def set(self, rgb: RGB) -> None:
        """Record ``rgb`` if it differs from the current colour."""
        if rgb != self.colour:
            self.colour = rgb
            self.history = [*self.history[-255:], rgb]

    def close(self) -> None:
        """Turn off."""
        self.set((0, 0, 0))


class GpioLed:
    """An RGB LED on three PWM-capable GPIO pins (gpiozero ``RGBLED``), through ~220 Ω resistors."""

    def __init__(self, pins: GpioPins = DEFAULT_PINS) -> None:
        gpiozero = require_gpiozero("the RGB LED")
        try:
            self._led: Any = gpiozero.RGBLED(
                pins.led_red, pins.led_green, pins.led_blue, active_high=pins.led_active_high, pwm=True
            )
        except Exception as exc:  # gpiozero's own exception hierarchy
            raise gpio_error("the RGB LED", exc) from exc
        self._closed = False

    def set(self, rgb: RGB) -> None:
        """Show ``rgb`` (PWM duty = channel / 255)."""
        if not self._closed:
            self._led.color = tuple(c / 255.0 for c in rgb)

    def close(self) -> None:
        """Turn off and release the pins."""
        if not self._closed:
            self._closed = True
            self._led.off()
            self._led.close()


def open_led(kind: str, pins: GpioPins = DEFAULT_PINS) -> Led:
    """``"sim"`` (:class:`SimulatedLed`) or ``"gpio"`` (:class:`GpioLed`)."""
    if kind == "sim":
        return SimulatedLed()
    if kind == "gpio":
        return GpioLed(pins)
    raise NeurorackError(f"unknown LED kind {kind!r}: choose sim or gpio")
