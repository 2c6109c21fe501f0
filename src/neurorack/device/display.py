"""The 128×64 OLED through luma.oled, or luma's dummy device when there is no hardware.

Kinds: ``dummy`` (``luma.core.device.dummy``: keeps the last frame in ``device.image``, for tests
and machines without a screen), ``ssd1306`` (0.96-inch) and ``sh1106`` (1.3-inch, the paper's
module), on I²C (default: bus 1, address 0x3C) or SPI (bus 0, chip select 0, DC on GPIO 24, RESET
on GPIO 25). A hardware kind that cannot be opened raises :class:`NeurorackError` in one line.
"""

from __future__ import annotations

from typing import Any

from neurorack.errors import NeurorackError

#: Display kinds :func:`open_display` accepts.
KINDS = ("dummy", "ssd1306", "sh1106")
#: Serial interfaces a hardware display can sit on.
INTERFACES = ("i2c", "spi")
WIDTH = 128
HEIGHT = 64


def open_display(
    kind: str = "dummy",
    *,
    interface: str = "i2c",
    port: int | None = None,
    address: int = 0x3C,
    spi_device: int = 0,
    gpio_dc: int = 24,
    gpio_rst: int = 25,
    rotate: int = 0,
) -> Any:
    """Open the display; returns a luma device (``.display(image)`` takes a 128×64 mode-"1" image).

    Args:
        kind: one of :data:`KINDS`.
        interface: ``"i2c"`` or ``"spi"`` (hardware kinds only).
        port: I²C bus number (``/dev/i2c-<port>``, default 1) or SPI bus (``/dev/spidev<port>.<spi_device>``,
            default 0).
        address: I²C address (0x3C or 0x3D on most modules).
        spi_device: SPI chip select.
        gpio_dc, gpio_rst: BCM pins of the SPI display's data/command and reset lines.
        rotate: 0–3, quarter turns (2 = upside down).

    Raises:
        NeurorackError: unknown kind or interface, or the hardware (bus, device, driver module) is missing.
    """
    if kind not in KINDS:
        raise NeurorackError(f"unknown device kind {kind!r}: choose one of {', '.join(KINDS)}")
    if rotate not in (0, 1, 2, 3):
        raise NeurorackError(f"display rotation must be 0, 1, 2 or 3 quarter turns, got {rotate}")
    if kind == "dummy":
        from luma.core.device import dummy

        return dummy(width=WIDTH, height=HEIGHT, rotate=rotate, mode="1")
    if interface not in INTERFACES:
        raise NeurorackError(f"unknown display interface {interface!r}: choose i2c or spi")

    import luma.core.error
    from luma.core.interface.serial import i2c, spi
    from luma.oled.device import sh1106, ssd1306

    if port is None:
        port = 1 if interface == "i2c" else 0
    where = (
        f"I2C bus {port} (/dev/i2c-{port}) address 0x{address:02X}"
        if interface == "i2c"
        else f"SPI /dev/spidev{port}.{spi_device}"
    )
    hint = "connect it and enable the bus (raspi-config), or use --device dummy"
    try:
        if interface == "i2c":
            serial = i2c(port=port, address=address)
        else:
            serial = spi(port=port, device=spi_device, gpio_DC=gpio_dc, gpio_RST=gpio_rst)
        driver = ssd1306 if kind == "ssd1306" else sh1106
        return driver(serial, width=WIDTH, height=HEIGHT, rotate=rotate)
    except ImportError as exc:
        module = "RPi.GPIO" if (exc.name or "").startswith("RPi") else (exc.name or str(exc))
        raise NeurorackError(
            f"{kind} display on {where}: missing Python module {module} (pip install it), or use --device dummy"
        ) from exc
    except luma.core.error.DevicePermissionError as exc:
        raise NeurorackError(
            f"{kind} display on {where}: permission denied (add the user to the i2c or spi group)"
        ) from exc
    except (luma.core.error.Error, OSError) as exc:
        raise NeurorackError(f"{kind} display not found on {where}: {hint}") from exc
