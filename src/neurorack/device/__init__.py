"""Headless device mode for a single-board computer (SPEC §4, issue 4 point 3).

The module's 128×64 OLED with the original menu tree, its encoder and button, RGB LED and ADC CV/gate
inputs, all talking to the engine only through :class:`neurorack.engine.protocol.InstrumentControl`.
Simulated devices stand in when there is no hardware (luma's dummy display, queued encoder events,
a recording LED, an ADC with hand-set counts).

Modules: ``menu`` (the menu tree as a pure state machine), ``screen`` (drawing, shared with the web
panel), ``actions`` (what the menu asks of the instrument), ``params`` (parameter ranges),
``display`` / ``controls`` / ``led`` / ``cv`` / ``gpio`` (hardware adapters), ``app`` (:class:`DeviceApp`).
"""

from neurorack.device.app import DeviceApp
from neurorack.device.menu import Event, EventKind, MenuState, Screen, Snapshot, handle, view
from neurorack.device.screen import render, render_png

__all__ = [
    "DeviceApp",
    "Event",
    "EventKind",
    "MenuState",
    "Screen",
    "Snapshot",
    "handle",
    "render",
    "render_png",
    "view",
]
