"""The real-time engine: voices, render-ahead, audio backends and control surfaces (SPEC §4, §7).

``Engine`` is the instrument (Python API, and what OSC, MIDI and the device mode drive)::

    from neurorack.engine import Engine

    with Engine(audio="null") as engine:   # or audio="jack"
        engine.set_cv(1, -2.0)             # CV 1: position between the anchors (volts)
        engine.gate(1, True)               # gate 1: play the current impact
        engine.gate(1, False)
"""

from neurorack.engine.instrument import Engine
from neurorack.engine.protocol import DEFAULT_ASSIGNMENTS, EngineStatus, InstrumentControl

#: The instrument under its other name.
Instrument = Engine

__all__ = ["DEFAULT_ASSIGNMENTS", "Engine", "EngineStatus", "Instrument", "InstrumentControl"]
