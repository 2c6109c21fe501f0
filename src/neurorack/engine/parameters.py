"""The instrument's adjustable parameters: names, ranges, defaults and units (the Parameters menu)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Parameter:
    """One parameter: ``name``, accepted ``low``…``high`` (inclusive), ``default``, ``unit`` and ``help``.

    ``choices`` restricts the value to a few numbers (e.g. ``cv_range``).
    """

    name: str
    low: float
    high: float
    default: float
    unit: str
    help: str
    choices: tuple[float, ...] = ()
    integer: bool = False

    def check(self, value: float) -> float:
        """``value`` as a float when it is accepted.

        Raises:
            ValueError: not finite, out of range, not one of the choices, or not an integer when one is needed.
        """
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number, got {value!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"{self.name} must be finite, got {value!r}")
        if self.choices and v not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(f'{c:g}' for c in self.choices)}, got {v:g}")
        if not self.low <= v <= self.high:
            raise ValueError(
                f"{self.name} must lie in {self.low:g}..{self.high:g} {self.unit}".rstrip() + f", got {v:g}"
            )
        if self.integer and v != int(v):
            raise ValueError(f"{self.name} must be a whole number, got {v:g}")
        return v


def parameter_table(max_voices: int, max_seconds: float) -> dict[str, Parameter]:
    """Every parameter of an engine with ``max_voices`` physical voice pairs and impacts up to ``max_seconds``."""
    items = [
        Parameter("volume_db", -60.0, 12.0, 0.0, "dB", "output volume before the limiter"),
        Parameter("cv_range", 5.0, 10.0, 5.0, "V", "5: bipolar −5…+5 V, 10: unipolar 0…10 V", choices=(5.0, 10.0)),
        Parameter(
            "max_voices", 1.0, float(max_voices), min(8.0, float(max_voices)), "", "voices at once", integer=True
        ),
        Parameter("duration", 0.0, max_seconds, 0.0, "s", "impact length (0: as the anchors have it)"),
        Parameter("inharmonicity", -0.01, 0.01, 0.0, "", "β offset of the partials (ddsp-impact models)"),
        Parameter(
            "follow_cvs", 0.0, 1.0, 1.0, "", "1: re-render ahead on every CV change; 0: only on gate 2", integer=True
        ),
        Parameter("input_volts", 0.1, 100.0, 10.0, "V", "volts at digital full scale on audio-rate CV/gate inputs"),
        Parameter("gate_threshold", 0.1, 10.0, 1.0, "V", "gate high at or above this (low below half of it)"),
        Parameter("velocity_db", 0.0, 60.0, 24.0, "dB", "level range of velocity (velocity 0 → −range)"),
        Parameter("render_interval_ms", 0.0, 1000.0, 10.0, "ms", "shortest time between two renders (coalescing)"),
        Parameter("cv_resolution", 0.0001, 1.0, 0.005, "V", "smallest CV change that re-renders"),
    ]
    return {p.name: p for p in items}
