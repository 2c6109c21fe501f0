"""Draw a :class:`~neurorack.device.menu.Screen` on the 128×64 one-bit OLED (and for the web panel).

One piece of code for every display: :func:`render` returns a PIL image, mode ``"1"``, 128×64
pixels (1 = lit); :func:`render_png` the same as PNG bytes (optionally scaled up, nearest neighbour).
Text uses PIL's built-in bitmap font (monospaced, 6 px per character, 9 px of ink per line), so
nothing is downloaded and every machine draws identical pixels.

Layout (pixel rows): header bar 0–9 (inverted: title left, voices and a render dot right), list rows
of 10 px from row 11 (five visible, scroll bar at the right edge when there are more), a message bar
over rows 54–63 when there is a notice.
"""

from __future__ import annotations

import io
from functools import cache

from PIL import Image, ImageDraw, ImageFont

from neurorack.device.menu import VISIBLE_ROWS, Row, Screen

#: Display size in pixels (1.3-inch SH1106 / 0.96-inch SSD1306 OLED).
WIDTH = 128
HEIGHT = 64
#: Character cell width of the font, pixels.
CHAR_W = 6
#: Height of a list row and of the header, pixels.
ROW_H = 10
#: First pixel row of the list.
LIST_TOP = 11
#: Pixel row where the message bar starts.
MESSAGE_TOP = 54
#: The font's ink starts 2 px below the drawing origin; text is drawn 1 px above a row's top.
_TEXT_DY = -1

_REPLACEMENTS = {"→": ">", "←": "<", "–": "-", "—": "-", "…": "~", "−": "-", "≥": ">=", "≤": "<="}


@cache
def font() -> ImageFont.ImageFont:
    """PIL's built-in bitmap font (6×11 cells, Latin-1)."""
    return ImageFont.load_default_imagefont()


def _latin1(text: str) -> str:
    for a, b in _REPLACEMENTS.items():
        text = text.replace(a, b)
    return text.encode("latin-1", "replace").decode("latin-1")


def fit(text: str, width_px: int) -> str:
    """``text`` made drawable and cut to at most ``width_px`` pixels (whole characters)."""
    return _latin1(text)[: max(0, width_px // CHAR_W)]


def _text(draw: ImageDraw.ImageDraw, x: int, row_top: int, text: str, fill: int = 1) -> None:
    draw.text((x, row_top + _TEXT_DY), text, font=font(), fill=fill)


def _bar(draw: ImageDraw.ImageDraw, x0: int, y0: int, x1: int, y1: int, fraction: float, fill: int = 1) -> None:
    """An outlined bar from (x0, y0) to (x1, y1) inclusive, filled ``fraction`` (0..1) of its inside."""
    draw.rectangle((x0, y0, x1, y1), outline=fill)
    inner = x1 - x0 - 3
    filled = round(min(1.0, max(0.0, fraction)) * inner)
    if filled > 0:
        draw.rectangle((x0 + 2, y0 + 2, x0 + 1 + filled, y1 - 2), fill=fill)


def _header(draw: ImageDraw.ImageDraw, screen: Screen) -> None:
    draw.rectangle((0, 0, WIDTH - 1, ROW_H - 1), fill=1)
    h = screen.header
    right = WIDTH - 1
    if h.running:
        # the render dot: filled while an impact is being rendered, hollow when idle
        draw.ellipse((right - 6, 2, right - 1, 7), fill=0 if h.pending else 1, outline=0)
        indicator = f"{h.voices}/{h.max_voices}"
        right -= 8
    else:
        indicator = "off"
        right -= 1
    x = right - len(indicator) * CHAR_W + 1
    _text(draw, x, 0, indicator, fill=0)
    _text(draw, 1, 0, fit(screen.title, x - 4), fill=0)


def _list_row(draw: ImageDraw.ImageDraw, top: int, row: Row, selected: bool, right: int) -> None:
    ink = 1
    if selected:
        draw.rectangle((0, top, right, top + ROW_H - 1), fill=1)
        ink = 0
    if row.marked:
        _text(draw, 1, top, "*", fill=ink)
    bar_w = 20 if row.fraction is not None else 0
    # the value keeps priority; the label keeps at least 5 characters
    value_room = right - 7 - min(len(row.label), 5) * CHAR_W - CHAR_W - (bar_w + 4 if bar_w else 0)
    value = fit(row.value, value_room)
    value_x = right - len(value) * CHAR_W
    label_room = value_x - 7 - (bar_w + 4 if bar_w else 0) - (CHAR_W if value else 0)
    label = fit(row.label, label_room)
    _text(draw, 7, top, label, fill=ink)
    if value:
        _text(draw, value_x, top, value, fill=ink)
    if row.fraction is not None:
        x1 = value_x - 4
        _bar(draw, x1 - bar_w + 1, top + 2, x1, top + 7, row.fraction, fill=ink)


def _list(draw: ImageDraw.ImageDraw, rows: tuple[Row, ...], first: int, cursor: int | None) -> None:
    scrolls = len(rows) > VISIBLE_ROWS
    right = WIDTH - 5 if scrolls else WIDTH - 1
    for i, row in enumerate(rows[first : first + VISIBLE_ROWS]):
        _list_row(draw, LIST_TOP + i * ROW_H, row, cursor == first + i, right)
    if scrolls:
        track = VISIBLE_ROWS * ROW_H
        for y in range(LIST_TOP, LIST_TOP + track, 2):
            draw.point((WIDTH - 2, y), fill=1)
        size = max(4, track * VISIBLE_ROWS // len(rows))
        offset = (track - size) * first // max(1, len(rows) - VISIBLE_ROWS)
        draw.rectangle((WIDTH - 3, LIST_TOP + offset, WIDTH - 1, LIST_TOP + offset + size - 1), fill=1)


def _big_text(image: Image.Image, text: str, top: int) -> None:
    """``text`` at twice the font size (12 px per character), centred, ink from row ``top``."""
    text = fit(text, WIDTH // 2)
    if not text:
        return
    small = Image.new("1", (len(text) * CHAR_W, 9))
    ImageDraw.Draw(small).text((0, -2), text, font=font(), fill=1)
    big = small.resize((small.width * 2, small.height * 2), Image.Resampling.NEAREST)
    image.paste(big, ((WIDTH - big.width) // 2, top))


def _edit(image: Image.Image, draw: ImageDraw.ImageDraw, screen: Screen) -> None:
    edit = screen.edit if screen.edit is not None else Row("")
    _big_text(image, edit.value, 14)
    _bar(draw, 4, 35, WIDTH - 5, 43, edit.fraction or 0.0)
    low, high = (fit(t, 58) for t in screen.edit_range)
    _text(draw, 4, 45, low)
    _text(draw, WIDTH - 4 - len(high) * CHAR_W, 45, high)
    _text(draw, 1, MESSAGE_TOP, "push:set hold:cancel")


def _play(draw: ImageDraw.ImageDraw, screen: Screen) -> None:
    middle = 27
    if screen.wave is None:
        text = "no impact yet"
        _text(draw, (WIDTH - len(text) * CHAR_W) // 2, middle - 4, text)
    else:
        for x, h in enumerate(screen.wave[:WIDTH]):
            draw.line((x, middle - h, x, middle + h), fill=1)
    _text(draw, 0, 44, fit(screen.footer, WIDTH))
    cvs = " ".join(f"{v:+.1f}" if abs(v) < 10 else f"{v:+.0f}" for v in screen.cvs)
    _text(draw, 0, MESSAGE_TOP, fit(cvs, 19 * CHAR_W))
    for i, high in enumerate(screen.gates[:2]):
        x = WIDTH - 12 + 6 * i
        draw.rectangle((x, MESSAGE_TOP + 2, x + 4, MESSAGE_TOP + 6), outline=1, fill=1 if high else 0)


def render(screen: Screen) -> Image.Image:
    """Draw ``screen``: a new PIL image, mode ``"1"``, 128×64 pixels, 1 = lit pixel."""
    image = Image.new("1", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    _header(draw, screen)
    if screen.kind == "menu":
        first = min(max(0, screen.cursor - VISIBLE_ROWS // 2), max(0, len(screen.rows) - VISIBLE_ROWS))
        _list(draw, screen.rows, first, screen.cursor)
    elif screen.kind == "info":
        _list(draw, screen.rows, screen.cursor, None)
    elif screen.kind == "edit":
        _edit(image, draw, screen)
    elif screen.kind == "play":
        _play(draw, screen)
    if screen.message:
        draw.rectangle((0, MESSAGE_TOP, WIDTH - 1, HEIGHT - 1), fill=1)
        _text(draw, 1, MESSAGE_TOP, fit(screen.message, WIDTH - 2), fill=0)
    return image


def render_png(screen: Screen, scale: int = 1) -> bytes:
    """:func:`render` as PNG bytes, enlarged ``scale`` times (nearest neighbour; 128·scale × 64·scale)."""
    image = render(screen)
    if scale != 1:
        if scale < 1:
            raise ValueError(f"scale must be ≥ 1, got {scale}")
        image = image.resize((WIDTH * scale, HEIGHT * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
