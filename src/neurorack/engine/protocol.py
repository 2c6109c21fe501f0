"""What a control surface may ask of the instrument (SPEC §4, §7).

Every surface — OSC, MIDI, the device mode's screen and encoder, the web panel, the
Python API — talks to the engine through this one protocol. All methods are
thread-safe and non-blocking: they only post a request or read a snapshot, so no
surface can stall the audio thread or the renderer.

Units: CVs in volts (Eurorack −5…+5 V, unipolar 0…10 V accepted), gates high/low,
descriptor offsets in the descriptor's unit (Hz, linear amplitude, 0..1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

#: Number of CV inputs and of gate inputs on the module.
N_CVS = 4
N_GATES = 2

#: Default CV assignment (SPEC §4): CV 1 moves between anchors, CV 2–4 loudness, brightness, inharmonicity.
DEFAULT_ASSIGNMENTS: dict[int, str] = {1: "position", 2: "rms", 3: "centroid", 4: "inharmonicity"}


@dataclass(frozen=True)
class EngineStatus:
    """A snapshot of the engine for displays and the ``/neurorack/status`` reply.

    Attributes:
        running: the audio backend is running.
        backend: ``"jack"``, ``"portaudio"`` or ``"null"``.
        sample_rate: output sample rate, Hz.
        period: frames per audio callback.
        model: label of the current model.
        voices: voices sounding now; ``max_voices`` the limit.
        xruns: over/underruns reported by the backend since start.
        callback_load: mean share (0..1) of the period spent in the audio callback.
        render_ms: wall time of the last impact render, ms.
        pending: a re-render is queued or running.
        gates: current gate levels.
        cvs: current CV values (volts) after summing every source.
        led: RGB colour 0..255 the LED shows for this state.
        recording: path being recorded, or empty.
        message: last warning (e.g. an ignored malformed OSC message), or empty.
        extra: further figures by name (``late_callbacks``, ``renders``, ``hits`` …); with live transfer
            on also ``transfer_latency`` (input-to-output samples), ``transfer_latency_ms``,
            ``transfer_underruns`` (audio periods the worker was late for: silence),
            ``transfer_missing_samples``, ``transfer_skipped_blocks``, ``transfer_blocks``,
            ``transfer_block_ms`` (last block's compute time) and ``transfer_start_frame`` (frame time of
            the live stream's first sample).
    """

    running: bool
    backend: str
    sample_rate: int
    period: int
    model: str
    voices: int
    max_voices: int
    xruns: int
    callback_load: float
    render_ms: float
    pending: bool
    gates: tuple[bool, ...]
    cvs: tuple[float, ...]
    led: tuple[int, int, int] = (0, 0, 0)
    recording: str = ""
    message: str = ""
    extra: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class InstrumentControl(Protocol):
    """The instrument as seen from a control surface. Implemented by the engine."""

    def gate(self, index: int, high: bool) -> None:
        """Set gate ``index`` (1 or 2). A rising edge of gate 1 plays the current impact; of gate 2
        re-renders it from the current CVs. Re-armed on the falling edge."""

    def set_cv(self, index: int, volts: float) -> None:
        """Set the control-surface value of CV ``index`` (1–4), volts. Added to any audio-rate CV input."""

    def assignments(self) -> dict[int, str]:
        """CV index -> target: ``"position"`` or a descriptor name (``rms``, ``centroid`` ...) or
        ``"inharmonicity"``."""

    def assign(self, cv: int, target: str) -> None:
        """Re-assign CV ``cv`` to ``target`` (see :meth:`assignments`). Unknown targets raise ``ValueError``."""

    def set_offset(self, descriptor: str, value: float) -> None:
        """Offset added to one descriptor curve (``/neurorack/descriptor/<name>``), in its unit."""

    def parameters(self) -> dict[str, float]:
        """Adjustable parameters by name (``volume_db``, ``cv_range``, ``max_voices``, ``duration`` ...)."""

    def set_parameter(self, name: str, value: float) -> None:
        """Set one parameter; unknown names or out-of-range values raise ``ValueError``."""

    def models(self) -> list[str]:
        """Models the engine can switch to (bundled names and files given by the user)."""

    def current_model(self) -> str:
        """Label of the model playing now."""

    def select_model(self, name: str) -> None:
        """Switch model (loaded off the audio thread; the old one plays until the new one is ready)."""

    def reload_model(self) -> None:
        """Reload the current model from its file."""

    def status(self) -> EngineStatus:
        """A snapshot of the engine state."""

    def current_impact(self) -> np.ndarray | None:
        """``float32[samples]`` audio of the impact gate 1 would play now, or None before the first render."""

    def current_curves(self) -> np.ndarray | None:
        """``float32[frames, 7]`` descriptor curves the current impact was rendered from, or None."""
