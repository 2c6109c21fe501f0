"""GPIO access through gpiozero, which is optional: only imported when a GPIO adapter is asked for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neurorack.errors import NeurorackError


@dataclass(frozen=True)
class GpioPins:
    """BCM pin numbers of the module's encoder, button and RGB LED (defaults match the README wiring)."""

    encoder_a: int = 17
    encoder_b: int = 27
    button: int = 22
    led_red: int = 5
    led_green: int = 6
    led_blue: int = 13
    #: True for a common-cathode LED (pin high = lit), False for common-anode.
    led_active_high: bool = True


#: The default wiring.
DEFAULT_PINS = GpioPins()


def require_gpiozero(what: str) -> Any:
    """The ``gpiozero`` module, or :class:`NeurorackError` naming ``what`` needed it and what to do."""
    try:
        import gpiozero
    except ImportError as exc:
        raise NeurorackError(
            f"{what} on GPIO needs gpiozero, which is not installed (pip install gpiozero on the board), "
            "or use simulated controls"
        ) from exc
    return gpiozero


def gpio_error(what: str, exc: Exception) -> NeurorackError:
    """A one-line error for a GPIO device that gpiozero could not open (no GPIO chip, pin busy …)."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return NeurorackError(f"{what} on GPIO unavailable ({detail}): run on the board, or use simulated controls")
