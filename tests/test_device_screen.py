"""The screen renderer: 128×64 one-bit images with the text, bars and waveform where they belong."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from neurorack.device.menu import Event, Header, MenuState, Row, Screen, Snapshot, handle, view
from neurorack.device.screen import HEIGHT, LIST_TOP, MESSAGE_TOP, ROW_H, WIDTH, fit, font, render, render_png
from test_device_double import RecordingInstrument


def screen_after(inst: RecordingInstrument, *events: Event) -> Screen:
    state = MenuState()
    for event in events:
        state, _ = handle(state, event, Snapshot.of(inst))
    return view(state, Snapshot.of(inst))


def text_image(text: str, x: int, row_top: int, inverted: bool = False) -> Image.Image:
    """A reference: ``text`` drawn alone with the same font at the same place."""
    image = Image.new("1", (WIDTH, HEIGHT), 0)
    draw = ImageDraw.Draw(image)
    if inverted:
        draw.rectangle((0, row_top, WIDTH - 1, row_top + ROW_H - 1), fill=1)
    draw.text((x, row_top - 1), text, font=font(), fill=0 if inverted else 1)
    return image


def region(image: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.array(image.crop(box), dtype=bool)


def lit(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    return int(region(image, box).sum())


def test_top_menu_image(tmp_path: Path) -> None:
    image = render(screen_after(RecordingInstrument()))
    assert image.size == (128, 64) and image.mode == "1"
    # header bar: inverted, title "Neurorack" in dark pixels on the lit bar
    assert lit(image, (0, 0, WIDTH, ROW_H)) > 0.6 * WIDTH * ROW_H
    head = text_image("Neurorack", 1, 0, inverted=True)
    assert (region(image, (0, 0, 60, ROW_H)) == region(head, (0, 0, 60, ROW_H))).all()
    # each entry is exactly the font's rendering of its label (the first one highlighted)
    for i, label in enumerate(["Models", "Parameters", "Assignment", "Admin", "About"]):
        top = LIST_TOP + i * ROW_H
        box = (0, top, 100, top + ROW_H)
        expected = text_image(label, 7, top, inverted=i == 0)
        assert (region(image, box) == region(expected, box)).all(), label
        assert lit(expected, (7, top, 100, top + ROW_H)) > 0
    # nothing below the list
    assert lit(image, (0, LIST_TOP + 5 * ROW_H, WIDTH, HEIGHT)) == 0
    image.save(tmp_path / "menu.png")


def test_each_screen_kind(tmp_path: Path) -> None:
    inst = RecordingInstrument()
    P, R = Event.press(), Event.rotate  # noqa: N806 - encoder shorthand
    screens = {
        "models": screen_after(inst, P),
        "play": screen_after(inst, P, P),
        "params": screen_after(inst, R(1), P),
        "edit": screen_after(inst, R(1), P, P, R(-30)),
        "assignment": screen_after(inst, R(2), P),
        "stats": screen_after(inst, R(3), P, P),
    }
    images = {name: render(s) for name, s in screens.items()}
    for name, image in images.items():
        assert image.size == (WIDTH, HEIGHT) and image.mode == "1", name
        image.save(tmp_path / f"{name}.png")
    assert len({im.tobytes() for im in images.values()}) == len(images)  # all different
    assert render(screens["play"]).tobytes() == images["play"].tobytes()  # deterministic

    # play: the waveform fills the top of the body and decays; CVs and gates at the bottom
    play = images["play"]
    assert lit(play, (0, 11, 16, 44)) > lit(play, (112, 11, 128, 44)) > 0
    assert lit(play, (0, MESSAGE_TOP, 110, HEIGHT)) > 0

    # edit: -42 dB in the −60…+12 range fills 18/72 of the bar's inside
    edit = images["edit"]
    inside = region(edit, (6, 37, WIDTH - 6, 42))
    filled = inside.any(axis=0).sum()
    assert abs(filled / inside.shape[1] - 18 / 72) < 0.03
    assert screens["edit"].edit is not None and screens["edit"].edit.value == "-42 dB"

    # parameter list: a value bar per row, right-aligned values
    params = images["params"]
    assert lit(params, (60, LIST_TOP + ROW_H, 100, LIST_TOP + 2 * ROW_H)) > 0


def test_scrolling_list_shows_cursor_and_scrollbar() -> None:
    rows = tuple(Row(f"item {i}", str(i)) for i in range(12))
    top = render(Screen("menu", "List", rows=rows, cursor=0))
    bottom = render(Screen("menu", "List", rows=rows, cursor=11))
    bar = (WIDTH - 3, LIST_TOP, WIDTH, LIST_TOP + 5 * ROW_H)
    top_thumb = region(top, bar).all(axis=1).nonzero()[0]
    bottom_thumb = region(bottom, bar).all(axis=1).nonzero()[0]
    assert top_thumb.min() == 0 and bottom_thumb.max() == 5 * ROW_H - 1
    # the cursor row is highlighted: the last visible row when at the end
    last = LIST_TOP + 4 * ROW_H
    assert lit(bottom, (0, last, WIDTH - 5, last + ROW_H)) > 0.5 * (WIDTH - 5) * ROW_H
    expected = text_image("item 11", 7, last, inverted=True)
    assert (region(bottom, (0, last, 60, last + ROW_H)) == region(expected, (0, last, 60, last + ROW_H))).all()


def test_header_message_and_no_impact() -> None:
    running = render(Screen("play", "Play x", Header(voices=3, max_voices=8, pending=True, running=True)))
    stopped = render(Screen("play", "Play x", Header(running=False), message="loading 808-kit"))
    ref = text_image("3/8", WIDTH - 9 - 3 * 6 + 1, 0, inverted=True)
    box = (WIDTH - 28, 0, WIDTH - 9, ROW_H)
    assert (region(running, box) == region(ref, box)).all()
    assert not (region(stopped, box) == region(ref, box)).all()  # "off" instead
    # no impact yet: a text instead of a waveform
    assert lit(running, (30, 20, 100, 33)) > 0
    # the message bar is inverted at the bottom
    assert lit(stopped, (0, MESSAGE_TOP, WIDTH, HEIGHT)) > 0.6 * WIDTH * (HEIGHT - MESSAGE_TOP)


def test_render_png_and_text_fitting(tmp_path: Path) -> None:
    screen = screen_after(RecordingInstrument(), Event.press(), Event.press())
    data = render_png(screen)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    decoded = Image.open(io.BytesIO(data))
    assert decoded.size == (128, 64)
    assert decoded.mode == "1" and decoded.tobytes() == render(screen).tobytes()
    big = Image.open(io.BytesIO(render_png(screen, scale=4)))
    assert big.size == (512, 256)
    (tmp_path / "play@4x.png").write_bytes(render_png(screen, scale=4))
    assert fit("CV1 → rms – loud…", 600) == "CV1 > rms - loud~"
    assert fit("abcdefghij", 30) == "abcde"
    render(Screen("menu", "€ ünïcode 音", rows=(Row("→ arrow", "µs"),)))  # never raises on odd text
