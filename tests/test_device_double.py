"""An in-process instrument implementing the engine's control protocol, for the device-mode tests.

Not a mock of a library: a small but real implementation of ``InstrumentControl`` that holds state
(assignments, parameters, models, CVs, gates) and records every call, so the device layer's UI logic
can be tested without the audio engine. The other ``test_device_*`` modules import it from here.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from neurorack.engine.protocol import DEFAULT_ASSIGNMENTS, N_CVS, N_GATES, EngineStatus, InstrumentControl

TARGETS = ("position", "rms", "zcr", "rolloff", "flatness", "bandwidth", "centroid", "f0", "inharmonicity")
RANGES = {"volume_db": (-60.0, 12.0), "cv_range": (5.0, 10.0), "max_voices": (1.0, 64.0), "duration": (0.0, 4.0)}


class RecordingInstrument:
    """Holds the instrument's state like the engine does and records every call as ``(method, *args)``."""

    def __init__(self, models: tuple[str, ...] = ("default", "808-kit", "sinc-nsf"), sample_rate: int = 44100) -> None:
        self.calls: list[tuple[object, ...]] = []
        self._models = list(models)
        self._model = models[0]
        self._assignments = dict(DEFAULT_ASSIGNMENTS)
        self.ranges = dict(RANGES)
        self._parameters = {"volume_db": -12.0, "cv_range": 5.0, "max_voices": 8.0, "duration": 1.0}
        self._cvs = [0.0] * N_CVS
        self._gates = [False] * N_GATES
        self.sample_rate = sample_rate
        t = np.arange(sample_rate, dtype=np.float32) / sample_rate
        self._impact: np.ndarray | None = (np.exp(-8 * t) * np.sin(2 * np.pi * 80 * t)).astype(np.float32)
        self.status_value = EngineStatus(
            running=True,
            backend="null",
            sample_rate=sample_rate,
            period=128,
            model=self._model,
            voices=0,
            max_voices=8,
            xruns=0,
            callback_load=0.12,
            render_ms=4.2,
            pending=False,
            gates=tuple(self._gates),
            cvs=tuple(self._cvs),
        )

    def gate(self, index: int, high: bool) -> None:
        self.calls.append(("gate", index, high))
        if not 1 <= index <= N_GATES:
            raise ValueError(f"no gate {index}")
        self._gates[index - 1] = high

    def set_cv(self, index: int, volts: float) -> None:
        self.calls.append(("set_cv", index, volts))
        if not 1 <= index <= N_CVS:
            raise ValueError(f"no CV {index}")
        self._cvs[index - 1] = volts

    def assignments(self) -> dict[int, str]:
        return dict(self._assignments)

    def assign(self, cv: int, target: str) -> None:
        self.calls.append(("assign", cv, target))
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}")
        self._assignments[cv] = target

    def set_offset(self, descriptor: str, value: float) -> None:
        self.calls.append(("set_offset", descriptor, value))

    def parameters(self) -> dict[str, float]:
        return dict(self._parameters)

    def set_parameter(self, name: str, value: float) -> None:
        self.calls.append(("set_parameter", name, value))
        if name not in self._parameters:
            raise ValueError(f"unknown parameter {name!r}")
        lo, hi = self.ranges.get(name, (-np.inf, np.inf))
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be within {lo:g}..{hi:g}")
        self._parameters[name] = value

    def models(self) -> list[str]:
        return list(self._models)

    def current_model(self) -> str:
        return self._model

    def select_model(self, name: str) -> None:
        self.calls.append(("select_model", name))
        if name not in self._models:
            raise ValueError(f"unknown model {name!r}")
        self._model = name

    def reload_model(self) -> None:
        self.calls.append(("reload_model",))

    def status(self) -> EngineStatus:
        return replace(self.status_value, model=self._model, gates=tuple(self._gates), cvs=tuple(self._cvs))

    def current_impact(self) -> np.ndarray | None:
        return self._impact

    def current_curves(self) -> np.ndarray | None:
        return None if self._impact is None else np.zeros((1 + len(self._impact) // 512, 7), np.float32)

    def named_calls(self, name: str) -> list[tuple[object, ...]]:
        """The recorded calls of one method, arguments only."""
        return [c[1:] for c in self.calls if c[0] == name]


def test_double_implements_the_protocol() -> None:
    inst = RecordingInstrument()
    assert isinstance(inst, InstrumentControl)
    inst.assign(2, "centroid")
    assert inst.assignments()[2] == "centroid"
    inst.set_cv(1, 1.5)
    assert inst.status().cvs[0] == 1.5
