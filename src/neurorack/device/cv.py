"""CV and gate inputs through an ADC: counts → volts calibration, gate edges, change detection.

Hardware: an MCP3008 (8 channels, 10 bits) on SPI through ``spidev``, behind a front end that scales
the Eurorack range onto 0…3.3 V. Defaults: channels 0–3 = CV 1–4, channels 4–5 = gates 1–2. Without
hardware, :class:`SimulatedAdc` holds counts set by tests (or by anything else).

Calibration is linear: ``volts = low + count · (high − low) / 2**bits``; the bipolar range maps
count 0 → −5 V and count 512 (of 10 bits) → exactly 0 V, the unipolar range count 0 → 0 V, full
scale → 10 V. :meth:`CvCalibration.two_point` fits a measured front end (gain, offset, inversion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from neurorack.engine.protocol import N_CVS, N_GATES
from neurorack.errors import NeurorackError

#: Named input ranges, volts at count 0 and at full scale.
RANGES: dict[str, tuple[float, float]] = {"bipolar": (-5.0, 5.0), "unipolar": (0.0, 10.0)}
#: Gate thresholds, volts: high at ≥ 1 V (Eurorack, SPEC §4), low again below 0.5 V (hysteresis).
GATE_HIGH_V = 1.0
GATE_LOW_V = 0.5


@dataclass(frozen=True)
class CvCalibration:
    """Raw ADC counts → volts.

    Attributes:
        bits: ADC resolution (10 for the MCP3008: counts 0…1023).
        low: volts at count 0.
        high: volts at full scale, count ``2**bits`` (one LSB above the top code). ``high < low``
            describes an inverting front end.
    """

    bits: int = 10
    low: float = -5.0
    high: float = 5.0

    @property
    def codes(self) -> int:
        """Number of codes, ``2**bits``."""
        return 1 << self.bits

    @property
    def lsb(self) -> float:
        """Volts per count (negative for an inverting front end)."""
        return (self.high - self.low) / self.codes

    def volts(self, count: int) -> float:
        """Volts for raw ``count`` (clamped to 0…2**bits − 1)."""
        return self.low + min(self.codes - 1, max(0, int(count))) * self.lsb

    def count(self, volts: float) -> int:
        """The count an ideal ADC reads for ``volts`` (nearest code, clamped); inverse of :meth:`volts`."""
        if not math.isfinite(volts):
            return 0
        return min(self.codes - 1, max(0, round((volts - self.low) / self.lsb)))

    @staticmethod
    def for_range(name: str, bits: int = 10) -> CvCalibration:
        """The ideal calibration for a named range: ``"bipolar"`` (−5…+5 V) or ``"unipolar"`` (0…10 V)."""
        if name not in RANGES:
            raise NeurorackError(f"unknown CV range {name!r}: choose bipolar (-5..+5 V) or unipolar (0..10 V)")
        low, high = RANGES[name]
        return CvCalibration(bits, low, high)

    @staticmethod
    def two_point(count_a: int, volts_a: float, count_b: int, volts_b: float, bits: int = 10) -> CvCalibration:
        """Fit from two measurements (apply ``volts_a``, read ``count_a``; likewise b), e.g. −4 V and +4 V."""
        if count_a == count_b:
            raise NeurorackError("CV calibration needs two different ADC readings")
        slope = (volts_b - volts_a) / (count_b - count_a)
        low = volts_a - slope * count_a
        return CvCalibration(bits, low, low + slope * (1 << bits))


class Adc(Protocol):
    """An analogue-to-digital converter read channel by channel."""

    bits: int
    channels: int

    def read(self, channel: int) -> int:
        """Raw count of ``channel`` (0…2**bits − 1)."""
        ...

    def close(self) -> None:
        """Release the hardware (idempotent)."""
        ...


class SimulatedAdc:
    """An ADC whose counts are set by hand (tests, demos); thread-safe enough for single-value writes."""

    def __init__(self, bits: int = 10, channels: int = 8, initial: int | None = None) -> None:
        self.bits = bits
        self.channels = channels
        start = (1 << bits) // 2 if initial is None else initial
        self._counts = [start] * channels

    def set_count(self, channel: int, count: int) -> None:
        """Make ``channel`` read ``count``."""
        self._counts[channel] = min((1 << self.bits) - 1, max(0, int(count)))

    def set_volts(self, channel: int, volts: float, calibration: CvCalibration) -> None:
        """Make ``channel`` read what ``volts`` gives through ``calibration``."""
        self.set_count(channel, calibration.count(volts))

    def read(self, channel: int) -> int:
        """The count set for ``channel``."""
        return self._counts[channel]

    def close(self) -> None:
        """Nothing to release."""


class Mcp3008:
    """An MCP3008 (8 channels, 10 bits, single-ended) on SPI bus ``bus``, chip select ``device``."""

    bits = 10
    channels = 8

    def __init__(self, bus: int = 0, device: int = 0, max_speed_hz: int = 1_000_000) -> None:
        try:
            import spidev
        except ImportError as exc:
            raise NeurorackError(
                "the MCP3008 ADC needs spidev, which is not installed (pip install spidev on the board), "
                "or use the simulated ADC"
            ) from exc
        self._spi: Any = spidev.SpiDev()
        try:
            self._spi.open(bus, device)
        except OSError as exc:
            raise NeurorackError(
                f"MCP3008 ADC: /dev/spidev{bus}.{device} unavailable ({exc.strerror or exc}): enable SPI "
                "(raspi-config) or use the simulated ADC"
            ) from exc
        self._spi.max_speed_hz = max_speed_hz
        self._open = True

    def read(self, channel: int) -> int:
        """One single-ended conversion of ``channel`` (0–7): start bit, SGL/DIFF + channel, 10 result bits."""
        if not 0 <= channel < self.channels:
            raise ValueError(f"MCP3008 channel must be 0..7, got {channel}")
        reply = self._spi.xfer2([1, (8 + channel) << 4, 0])
        return int(((reply[1] & 3) << 8) | reply[2])

    def close(self) -> None:
        """Close the SPI device."""
        if self._open:
            self._open = False
            self._spi.close()


class GateDetector:
    """A gate comparator with hysteresis: high at ≥ ``high_v`` volts, low again below ``low_v``."""

    def __init__(self, high_v: float = GATE_HIGH_V, low_v: float = GATE_LOW_V) -> None:
        if low_v >= high_v:
            raise ValueError("the gate's low threshold must be below its high threshold")
        self.high_v = high_v
        self.low_v = low_v
        self.level = False

    def update(self, volts: float) -> bool | None:
        """Feed one reading; returns the new level when it changed, else None."""
        if not self.level and volts >= self.high_v:
            self.level = True
            return True
        if self.level and volts < self.low_v:
            self.level = False
            return False
        return None


@dataclass(frozen=True)
class InputMap:
    """Which ADC channel carries which input; -1 = not wired.

    ``cv_channels[i]`` is CV ``i + 1``; ``gate_channels[i]`` gate ``i + 1``.
    """

    cv_channels: tuple[int, ...] = (0, 1, 2, 3)
    gate_channels: tuple[int, ...] = (4, 5)


#: The default channel map: CV 1–4 on channels 0–3, gates 1–2 on channels 4–5.
DEFAULT_INPUTS = InputMap()


class CvInputs:
    """Reads the ADC and reports what changed since the last poll.

    A CV is reported when it moved by at least ``deadband_v`` (default: 2 LSB, so ADC noise does not
    flood the engine); the first poll reports every wired CV. Gates report their edges.
    """

    def __init__(
        self,
        adc: Adc,
        calibration: CvCalibration | Sequence[CvCalibration] | None = None,
        inputs: InputMap = DEFAULT_INPUTS,
        deadband_v: float | None = None,
    ) -> None:
        self.adc = adc
        used = [c for c in (*inputs.cv_channels, *inputs.gate_channels) if c >= 0]
        for channel in used:
            if channel >= adc.channels:
                raise NeurorackError(f"ADC channel {channel} does not exist (the ADC has {adc.channels})")
        if len(inputs.cv_channels) > N_CVS or len(inputs.gate_channels) > N_GATES:
            raise NeurorackError(f"the module has {N_CVS} CV and {N_GATES} gate inputs")
        if calibration is None:
            calibration = CvCalibration.for_range("bipolar", adc.bits)
        if isinstance(calibration, CvCalibration):
            self.calibrations = [calibration] * adc.channels
        else:
            if len(calibration) != adc.channels:
                raise NeurorackError(f"give one calibration per ADC channel ({adc.channels})")
            self.calibrations = list(calibration)
        self.inputs = inputs
        self.deadband_v = deadband_v if deadband_v is not None else 2 * max(abs(c.lsb) for c in self.calibrations)
        self.gates = [GateDetector() for _ in inputs.gate_channels]
        self._last: dict[int, float] = {}
        self.volts: dict[int, float] = {}

    def read_volts(self, channel: int) -> float:
        """Volts on ADC ``channel`` now."""
        return self.calibrations[channel].volts(self.adc.read(channel))

    def poll(self) -> tuple[dict[int, float], dict[int, bool]]:
        """``({cv: volts} that changed, {gate: level} edges)``; CV and gate indices count from 1."""
        cvs: dict[int, float] = {}
        for i, channel in enumerate(self.inputs.cv_channels):
            if channel < 0:
                continue
            volts = self.read_volts(channel)
            self.volts[i + 1] = volts
            last = self._last.get(i + 1)
            if last is None or abs(volts - last) >= self.deadband_v - 1e-12:
                self._last[i + 1] = volts
                cvs[i + 1] = volts
        edges: dict[int, bool] = {}
        for i, channel in enumerate(self.inputs.gate_channels):
            if channel < 0:
                continue
            level = self.gates[i].update(self.read_volts(channel))
            if level is not None:
                edges[i + 1] = level
        return cvs, edges


def open_adc(kind: str, bus: int = 0, device: int = 0) -> Adc | None:
    """``"none"`` (None: no CV inputs), ``"sim"`` (:class:`SimulatedAdc`) or ``"mcp3008"`` (:class:`Mcp3008`)."""
    if kind == "none":
        return None
    if kind == "sim":
        return SimulatedAdc()
    if kind == "mcp3008":
        return Mcp3008(bus, device)
    raise NeurorackError(f"unknown ADC {kind!r}: choose none, sim or mcp3008")
