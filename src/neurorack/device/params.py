"""Ranges, steps and labels of the engine parameters edited on the device screen.

``InstrumentControl.parameters()`` gives names and values only; the ranges the encoder moves within
live here. Known names get exact specs; an unknown parameter gets a range around its value (the
engine still validates every value it is given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ParameterSpec:
    """How one parameter is shown and edited.

    Attributes:
        label: short name for the 128-pixel screen (≤ 9 characters reads best).
        unit: unit shown after the value (``"dB"``, ``"s"`` ...), may be empty.
        minimum, maximum: the value range, in ``unit``; edits clamp to it.
        step: change per encoder detent, in ``unit``.
        decimals: digits after the point when shown.
        choices: for enumerated parameters, ``(value, label)`` pairs the encoder steps through.
        named: labels shown instead of the number for particular values (``duration`` 0 = ``"auto"``).
    """

    label: str
    unit: str
    minimum: float
    maximum: float
    step: float
    decimals: int = 1
    choices: tuple[tuple[float, str], ...] = ()
    named: tuple[tuple[float, str], ...] = ()

    def clamp(self, value: float) -> float:
        """``value`` limited to ``[minimum, maximum]`` (the nearest choice for enumerated parameters)."""
        if self.choices:
            return min(self.choices, key=lambda c: abs(c[0] - value))[0]
        if not math.isfinite(value):
            return self.minimum
        return min(self.maximum, max(self.minimum, value))

    def nudge(self, value: float, steps: int) -> float:
        """The value ``steps`` encoder detents away from ``value`` (on the step grid), clamped."""
        if self.choices:
            values = [c[0] for c in self.choices]
            index = values.index(self.clamp(value))
            return values[min(len(values) - 1, max(0, index + steps))]
        moved = self.clamp(value) + steps * self.step
        return self.clamp(round(round(moved / self.step) * self.step, 9))

    def fraction(self, value: float) -> float:
        """Where ``value`` sits in the range, 0..1 (for value bars)."""
        if self.choices:
            values = [c[0] for c in self.choices]
            return values.index(self.clamp(value)) / max(1, len(values) - 1)
        span = self.maximum - self.minimum
        return 0.0 if span <= 0 else (self.clamp(value) - self.minimum) / span

    def format(self, value: float) -> str:
        """The value as shown on screen, e.g. ``"-12 dB"``, ``"0.50 s"``, ``"-5..+5V"``, ``"auto"``."""
        if self.choices:
            return dict(self.choices)[self.clamp(value)]
        for special, label in self.named:
            if math.isclose(value, special, abs_tol=1e-12):
                return label
        text = f"{value:.{self.decimals}f}"
        return f"{text} {self.unit}" if self.unit else text


#: Specs of the parameters the engine exposes (``neurorack.engine.parameters``), in menu order.
KNOWN_PARAMETERS: dict[str, ParameterSpec] = {
    "volume_db": ParameterSpec("volume", "dB", -60.0, 12.0, 1.0, decimals=0),
    "cv_range": ParameterSpec("CV range", "V", 5.0, 10.0, 5.0, choices=((5.0, "-5..+5V"), (10.0, "0..10V"))),
    "max_voices": ParameterSpec("voices", "", 1.0, 32.0, 1.0, decimals=0),  # engine: VOICE_CAPACITY // 2
    "duration": ParameterSpec("duration", "s", 0.0, 4.0, 0.05, decimals=2, named=((0.0, "auto"),)),
    "inharmonicity": ParameterSpec("inharm.", "", -0.01, 0.01, 0.0005, decimals=4),
    "follow_cvs": ParameterSpec("follow", "", 0.0, 1.0, 1.0, choices=((0.0, "gate 2"), (1.0, "CVs"))),
    "gate_threshold": ParameterSpec("gate thr", "V", 0.1, 10.0, 0.1, decimals=1),
    "input_volts": ParameterSpec("input FS", "V", 0.1, 100.0, 0.5, decimals=1),
    "velocity_db": ParameterSpec("velocity", "dB", 0.0, 60.0, 1.0, decimals=0),
    "render_interval_ms": ParameterSpec("min gap", "ms", 0.0, 1000.0, 5.0, decimals=0),
    "cv_resolution": ParameterSpec("CV res", "V", 0.0001, 1.0, 0.001, decimals=4),
}


def spec_for(name: str, value: float) -> ParameterSpec:
    """The spec of parameter ``name`` whose current value is ``value``.

    A known spec whose range does not hold the engine's value (the engine uses another convention) is
    widened to include it, so the current value is never silently changed by opening the editor.
    """
    spec = KNOWN_PARAMETERS.get(name)
    if spec is not None:
        if spec.choices:
            if any(math.isclose(value, c[0]) for c in spec.choices):
                return spec
        elif spec.minimum <= value <= spec.maximum:
            return spec
        return _generic(spec.label, spec.unit, value)
    return _generic(name.replace("_", " ")[:12], "", value)


def _generic(label: str, unit: str, value: float) -> ParameterSpec:
    """A range around ``value``: 0 … 4×|value| (symmetric when negative), about 100 steps."""
    if not math.isfinite(value):
        value = 0.0
    magnitude = max(1.0, 4.0 * abs(value))
    minimum = -magnitude if value < 0 else 0.0
    step = 10.0 ** math.floor(math.log10((magnitude - minimum) / 100.0))
    integral = float(value).is_integer() and abs(value) >= 1.0
    if integral:
        step = max(1.0, step)
    decimals = 0 if step >= 1.0 else min(4, -math.floor(math.log10(step)))
    return ParameterSpec(label, unit, minimum, magnitude, step, decimals=decimals)


def ordered(parameters: dict[str, float]) -> list[str]:
    """Parameter names in menu order: the known ones first (in :data:`KNOWN_PARAMETERS` order), then the rest sorted."""
    known = [name for name in KNOWN_PARAMETERS if name in parameters]
    return known + sorted(name for name in parameters if name not in KNOWN_PARAMETERS)
