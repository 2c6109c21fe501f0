"""What a menu press asks of the instrument, and how it is carried out.

The menu model (:mod:`neurorack.device.menu`) never calls the engine itself: it returns these small,
frozen action values. :func:`execute` performs one against any :class:`InstrumentControl`, so the
device mode and the web panel share the same behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from neurorack.engine.protocol import InstrumentControl

log = logging.getLogger(__name__)

SystemCommand = Literal["shutdown", "reboot"]
#: Called with ``"shutdown"`` or ``"reboot"`` after the user confirmed it on the Admin screen.
SystemHook = Callable[[SystemCommand], None]


@dataclass(frozen=True)
class Gate:
    """Set gate ``index`` (1 or 2) high or low."""

    index: int
    high: bool


@dataclass(frozen=True)
class Knob:
    """The encoder's knob value for CV ``cv`` (1–4) is now ``volts``; the device adds it to the CV input."""

    cv: int
    volts: float


@dataclass(frozen=True)
class Assign:
    """Re-assign CV ``cv`` (1–4) to ``target`` (``"position"``, a descriptor name or ``"inharmonicity"``)."""

    cv: int
    target: str


@dataclass(frozen=True)
class SetParameter:
    """Set engine parameter ``name`` to ``value`` (in the parameter's unit)."""

    name: str
    value: float


@dataclass(frozen=True)
class SelectModel:
    """Switch to model ``name``."""

    name: str


@dataclass(frozen=True)
class SelectInstrument:
    """Play instrument ``index`` of the note model on the note voices."""

    index: int


@dataclass(frozen=True)
class ReloadModel:
    """Reload the current model from its file."""


@dataclass(frozen=True)
class System:
    """Shut down or reboot the single-board computer (confirmed by the user)."""

    command: SystemCommand


@dataclass(frozen=True)
class EncoderTarget:
    """Local to the menu: the encoder drives CV ``cv`` (1–4) on the Play screen, 0 = nothing."""

    cv: int


Action = Gate | Knob | Assign | SetParameter | SelectModel | SelectInstrument | ReloadModel | System | EncoderTarget


def log_system_hook(command: SystemCommand) -> None:
    """The default system hook: logs the request and does nothing (safe on a development machine)."""
    log.warning("%s requested on the device screen; no system hook configured, ignoring", command)


def systemctl_hook(command: SystemCommand) -> None:
    """A system hook for a dedicated single-board computer: ``sudo -n systemctl poweroff|reboot``.

    Opt-in only (pass it as ``DeviceApp(..., system_hook=systemctl_hook)``); never the default.
    """
    import subprocess

    verb = "poweroff" if command == "shutdown" else "reboot"
    subprocess.run(["sudo", "-n", "systemctl", verb], check=False)


def execute(instrument: InstrumentControl, action: Action, system_hook: SystemHook = log_system_hook) -> str:
    """Carry out one action on ``instrument``.

    Returns an empty string on success, or a one-line message when the instrument refused the request
    (``ValueError`` from an out-of-range parameter or an unknown target), for the screen to show.
    :class:`Knob` sets the CV directly (the device app adds its ADC reading first); :class:`EncoderTarget`
    is local to the menu and does nothing here.
    """
    try:
        if isinstance(action, Gate):
            instrument.gate(action.index, action.high)
        elif isinstance(action, Knob):
            instrument.set_cv(action.cv, action.volts)
        elif isinstance(action, Assign):
            instrument.assign(action.cv, action.target)
        elif isinstance(action, SetParameter):
            instrument.set_parameter(action.name, action.value)
        elif isinstance(action, SelectModel):
            instrument.select_model(action.name)
        elif isinstance(action, SelectInstrument):
            if getattr(instrument, "notes", None) is None:
                return "no note model is playing"
            instrument.select_instrument(action.index)  # type: ignore[attr-defined]
        elif isinstance(action, ReloadModel):
            instrument.reload_model()
        elif isinstance(action, System):
            system_hook(action.command)
    except ValueError as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ""
