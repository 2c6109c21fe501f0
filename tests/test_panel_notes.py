"""The faceplate's notes mode in real headless Chromium against an engine playing a note model (null backend):
on-screen keys and the computer keyboard play notes, the instrument selector and the morph reach the engine,
and the mode stays hidden without a note model (tests/test_panel_browser.py's faceplate)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from neurorack.engine import Engine
from neurorack.models.registry import build_note_model, note_config
from neurorack.note_model_file import InstrumentInfo, export_note_model
from neurorack.panel import serve_panel
from test_panel_browser import ARGS, CHROMIUM, shot, wait_until

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    torch.manual_seed(0)
    model = build_note_model("sing", n_instruments=2, **note_config("sing", "tiny")).eval()
    infos = [
        InstrumentInfo("piano", "keyboard", "acoustic", 40, 84),
        InstrumentInfo("bass", "bass", "synthetic", 28, 60),
    ]
    path = export_note_model(model, tmp_path_factory.mktemp("notes") / "notes.safetensors", infos)
    with Engine(audio="null", notes=str(path)) as eng:
        yield eng


@pytest.fixture(scope="module")
def page(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    server = serve_panel(engine, port=0, record_dir=tmp_path_factory.mktemp("rec"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(server.url)
        pg.wait_for_function("window.neurorack && window.neurorack.state.status && window.neurorack.state.status.notes")
        yield pg
        context.close()
        browser.close()
        server.stop()
        assert errors == []


def test_keys_and_the_computer_keyboard_play_notes(page: Any, engine: Engine) -> None:
    voices = engine.notes
    assert voices is not None
    assert page.is_visible("#notes")
    assert page.eval_on_selector_all("#instrument option", "o => o.map(x => x.textContent)") == ["piano", "bass"]
    key = page.locator('#keys [data-offset="0"]')  # C4 = MIDI 60
    key.dispatch_event("pointerdown", {"button": 0, "pointerId": 1})
    wait_until(lambda: voices.started == 1 and 60 in voices.key)
    key.dispatch_event("pointerup", {"pointerId": 1})
    wait_until(lambda: 60 not in voices.key)
    page.focus("body")
    page.keyboard.down("d")  # the home row from A = C: D is E4 = MIDI 64
    wait_until(lambda: 64 in voices.key)
    shot(page, "notes-keyboard.png")
    page.keyboard.up("d")
    wait_until(lambda: 64 not in voices.key)
    page.keyboard.press("-")  # an octave down: A now plays C3 = 48
    page.keyboard.down("a")
    wait_until(lambda: 48 in voices.key)
    page.keyboard.up("a")
    assert voices.started == 3 and voices.refused == 0


def test_instrument_and_morph_reach_the_engine(page: Any, engine: Engine) -> None:
    voices = engine.notes
    assert voices is not None
    page.select_option("#instrument", "1")
    wait_until(lambda: voices.instrument == 1)
    page.check("#morph")
    wait_until(lambda: voices.morph == (0, 1))
    engine.set_cv(1, 0.0)  # CV 1 in the middle: half way
    wait_until(lambda: abs(voices.morph_amount - 0.5) < 1e-9)
    page.wait_for_function("document.getElementById('notes-info').textContent.includes('morph 50 %')")
    page.uncheck("#morph")
    wait_until(lambda: voices.morph is None and voices.instrument == 1)  # the chosen instrument again
