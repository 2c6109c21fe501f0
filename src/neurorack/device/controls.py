"""The encoder and its push button: simulated (a queue, fed by tests, a keyboard or the web panel) or GPIO.

Every source turns what the hand does into :class:`~neurorack.device.menu.Event` values: a detent of
the encoder is ``Event.rotate(±1)``, a short press ``Event.press()``, holding the button
``LONG_PRESS_S`` seconds ``Event.long_press()``. Sources are polled by the device loop (~100 Hz).

Keyboard mapping (simulation): ``→``/``↓``/``d``/``j``/``+`` turn clockwise, ``←``/``↑``/``a``/``k``/``-``
counter-clockwise, Enter/Space press, Backspace/Esc/``b`` long press.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from typing import Protocol

from neurorack.device.gpio import DEFAULT_PINS, GpioPins, gpio_error, require_gpiozero
from neurorack.device.menu import Event, EventKind
from neurorack.errors import NeurorackError

#: Seconds the button is held for a long press (back).
LONG_PRESS_S = 0.8

_KEYS: dict[str, Event] = {
    "\x1b[C": Event.rotate(1),
    "\x1b[B": Event.rotate(1),
    "\x1b[D": Event.rotate(-1),
    "\x1b[A": Event.rotate(-1),
    "d": Event.rotate(1),
    "j": Event.rotate(1),
    "+": Event.rotate(1),
    "a": Event.rotate(-1),
    "k": Event.rotate(-1),
    "-": Event.rotate(-1),
    "\r": Event.press(),
    "\n": Event.press(),
    " ": Event.press(),
    "\x7f": Event.long_press(),
    "\b": Event.long_press(),
    "\x1b": Event.long_press(),
    "b": Event.long_press(),
}


def keys_to_events(text: str) -> list[Event]:
    """Encoder events for keys typed in a terminal (arrow-key escape sequences included); other keys are ignored."""
    events = []
    i = 0
    while i < len(text):
        if text.startswith("\x1b[", i) and i + 2 < len(text):
            event = _KEYS.get(text[i : i + 3])
            i += 3
        else:
            event = _KEYS.get(text[i])
            i += 1
        if event is not None:
            events.append(event)
    return events


class EventSource(Protocol):
    """Where encoder events come from."""

    def poll(self) -> list[Event]:
        """Events since the last poll, oldest first (never blocks)."""
        ...

    def close(self) -> None:
        """Release the hardware (idempotent)."""
        ...


class QueueControls:
    """A simulated encoder and button: events pushed from any thread, drained by :meth:`poll`."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Event] = queue.SimpleQueue()

    def push(self, *events: Event) -> None:
        """Queue events (thread-safe)."""
        for event in events:
            self._queue.put(event)

    def rotate(self, steps: int) -> None:
        """Queue a turn of ``steps`` detents."""
        self.push(Event.rotate(steps))

    def press(self) -> None:
        """Queue a short press."""
        self.push(Event.press())

    def long_press(self) -> None:
        """Queue a long press."""
        self.push(Event.long_press())

    def feed_keys(self, text: str) -> int:
        """Queue the events for typed keys (see :func:`keys_to_events`); returns how many."""
        events = keys_to_events(text)
        self.push(*events)
        return len(events)

    def poll(self) -> list[Event]:
        """Queued events, consecutive rotations merged into one."""
        events: list[Event] = []
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return events
            if event.kind is EventKind.ROTATE and events and events[-1].kind is EventKind.ROTATE:
                events[-1] = Event.rotate(events[-1].steps + event.steps)
            else:
                events.append(event)

    def close(self) -> None:
        """Nothing to release."""


class TerminalControls(QueueControls):
    """The keyboard of the terminal running the device mode (cbreak mode, read in a daemon thread)."""

    def __init__(self) -> None:
        super().__init__()
        if not sys.stdin.isatty():
            raise NeurorackError("keyboard controls need an interactive terminal on stdin")
        import termios
        import tty

        self._fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="neurorack-keys", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.1)
            if ready:
                self.feed_keys(os.read(self._fd, 32).decode("latin-1"))

    def close(self) -> None:
        """Stop reading and restore the terminal."""
        import termios

        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=1.0)
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)


class GpioControls(QueueControls):
    """A quadrature rotary encoder with push button on GPIO (gpiozero ``RotaryEncoder`` and ``Button``).

    Wiring: encoder A/B and the button to the BCM pins in ``pins``, common to ground (internal pull-ups).
    """

    def __init__(self, pins: GpioPins = DEFAULT_PINS, long_press_s: float = LONG_PRESS_S) -> None:
        super().__init__()
        gpiozero = require_gpiozero("the encoder")
        self._held = False
        try:
            self._encoder = gpiozero.RotaryEncoder(pins.encoder_a, pins.encoder_b, max_steps=0)
            self._button = gpiozero.Button(pins.button, hold_time=long_press_s)
        except Exception as exc:  # gpiozero raises its own hierarchy (BadPinFactory, GPIOPinInUse …)
            raise gpio_error("the encoder", exc) from exc
        self._encoder.when_rotated_clockwise = lambda: self.push(Event.rotate(1))
        self._encoder.when_rotated_counter_clockwise = lambda: self.push(Event.rotate(-1))
        self._button.when_held = self._on_held
        self._button.when_released = self._on_released

    def _on_held(self) -> None:
        self._held = True
        self.push(Event.long_press())

    def _on_released(self) -> None:
        if not self._held:
            self.push(Event.press())
        self._held = False

    def close(self) -> None:
        """Release the pins."""
        self._encoder.close()
        self._button.close()


def open_controls(kind: str, pins: GpioPins = DEFAULT_PINS) -> EventSource:
    """``"sim"`` (:class:`QueueControls`), ``"keyboard"`` (:class:`TerminalControls`) or ``"gpio"``
    (:class:`GpioControls`)."""
    if kind == "sim":
        return QueueControls()
    if kind == "keyboard":
        return TerminalControls()
    if kind == "gpio":
        return GpioControls(pins)
    raise NeurorackError(f"unknown controls {kind!r}: choose sim, keyboard or gpio")
