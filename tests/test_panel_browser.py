"""The web faceplate in real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright, against
a real engine on the null backend: gate 1 plays (engine and WebAudio), the brightness knob raises the
centroid of the next hit, the on-page encoder selects another model through the device menus."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import neurorack as nr
from neurorack.engine import Engine
from neurorack.model_file import bundled_model_path
from neurorack.panel import PanelServer, serve_panel

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
DOCS_PNG = Path(__file__).resolve().parents[1] / "docs" / "panel.png"
#: Screenshots of every test, kept after the run (CI keeps the folder; NEURORACK_ARTIFACTS moves it).
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("NEURORACK_ARTIFACTS", ROOT / "test-artifacts")) / "panel"


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


def wait_until(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def centroid(audio: np.ndarray, sr: int) -> float:
    """Loudness-weighted mean spectral centroid of a hit, Hz."""
    d = nr.describe(audio, sr)
    return float(np.average(d[:, 5], weights=d[:, 0] + 1e-9))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    other = tmp_path_factory.mktemp("models") / "other.safetensors"
    shutil.copyfile(bundled_model_path("default"), other)
    with Engine(model=str(other), audio="null") as eng:
        yield eng


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def panel(engine: Engine, tmp_path: Path) -> Iterator[PanelServer]:
    server = serve_panel(engine, port=0, record_dir=tmp_path / "rec")
    yield server
    server.stop()


@pytest.fixture
def page(browser: Any, panel: PanelServer) -> Iterator[Any]:
    # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's CSP forbids
    context = browser.new_context(viewport={"width": 1400, "height": 860}, bypass_csp=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(panel.url)
    pg.wait_for_function(
        "window.neurorack && window.neurorack.state.impact && window.neurorack.state.screens > 0"
        " && window.neurorack.state.status",
        timeout=20000,
    )
    yield pg
    context.close()
    assert errors == []


def test_gate_1_plays_in_the_engine_and_in_the_browser(page: Any, engine: Engine, tmp_path: Path) -> None:
    hits0 = engine.status().extra["hits"]
    assert page.is_checked("#sound")  # null backend: the page is the instrument's voice
    page.click("#gate1")
    wait_until(lambda: engine.status().extra["hits"] >= hits0 + 1)
    page.wait_for_function("window.neurorack.sound.played >= 1")
    impact = engine.current_impact()
    assert impact is not None
    assert page.evaluate("window.neurorack.sound.lastLength") == impact.size  # the engine's own samples
    page.keyboard.down("z")  # keyboard shortcut, held
    wait_until(lambda: engine.status().gates[0])
    page.keyboard.up("z")
    wait_until(lambda: engine.status().extra["hits"] >= hits0 + 2 and not engine.status().gates[0])
    page.wait_for_function("document.getElementById('gate1-led') !== null")
    shot(page, "panel-gate.png")
    if os.environ.get("NEURORACK_UPDATE_DOCS") == "1":
        DOCS_PNG.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_PNG))


def test_brightness_knob_raises_the_centroid_of_the_next_hit(page: Any, engine: Engine, tmp_path: Path) -> None:
    assert engine.assignments()[3] == "centroid"
    wait_until(lambda: not engine.status().pending)
    before_audio = engine.current_impact()
    assert before_audio is not None
    before = centroid(before_audio, engine.sample_rate)
    box = page.locator("#cv3").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y - 120, steps=12)  # drag up: 120 px of a 160 px sweep -> +2.5 V
    page.mouse.up()
    wait_until(lambda: engine.status().cvs[2] > 2.0)
    page.wait_for_function("Number(document.getElementById('cv3').getAttribute('aria-valuenow')) > 2")
    wait_until(lambda: not engine.status().pending and engine.current_impact() is not None)
    time.sleep(0.1)
    wait_until(lambda: not engine.status().pending)
    after_audio = engine.current_impact()
    assert after_audio is not None
    after = centroid(after_audio, engine.sample_rate)
    assert after > 1.25 * before, (before, after)
    hits = engine.status().extra["hits"]
    page.click("#gate1")  # and that is what the next hit plays
    wait_until(lambda: engine.status().extra["hits"] > hits)
    page.wait_for_function("window.neurorack.state.impact.peak > 0")
    shot(page, "panel-bright.png")
    page.focus("#cv3")
    page.keyboard.press("Delete")  # back to 0 V
    wait_until(lambda: abs(engine.status().cvs[2]) < 1e-6)


def test_encoder_navigates_the_menus_and_selects_another_model(
    page: Any, panel: PanelServer, engine: Engine, tmp_path: Path
) -> None:
    dev = panel.device
    assert engine.current_model() == "other"
    enc = page.locator("#encoder")
    enc.click()  # press: enter Models
    wait_until(lambda: dev.screen().title == "Models")
    screens = page.evaluate("window.neurorack.state.screens")
    enc.hover()
    page.mouse.wheel(0, 100)  # one notch down: Play -> Select
    wait_until(lambda: dev.screen().cursor == 1)
    page.keyboard.press("Enter")  # focused encoder: press -> the model list
    wait_until(lambda: "Select" in dev.screen().title)
    assert dev.screen().rows[0].label == "default"
    while (at := dev.screen().cursor) > 0:  # the list opens on the model playing: up to the first row
        page.keyboard.press("ArrowUp")
        wait_until(lambda at=at: dev.screen().cursor == at - 1)
    box = enc.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x, y - 30, steps=6)  # drag up: one detent clockwise -> the second model
    page.mouse.up()
    wait_until(lambda: dev.screen().cursor == 1)
    page.keyboard.press("ArrowUp")  # and back to "default"
    wait_until(lambda: dev.screen().cursor == 0)
    page.wait_for_function(f"window.neurorack.state.screens > {screens}")  # the page's OLED followed
    shot(page, "panel-select.png")
    page.keyboard.press("Enter")
    wait_until(lambda: engine.current_model() == "default")
    page.wait_for_function("document.getElementById('model').dataset.current === 'default'")
    # a long click (held 0.8 s) goes back one level
    depth = len(dev.state.path)
    page.mouse.move(x, y)
    page.mouse.down()
    time.sleep(1.0)
    page.mouse.up()
    wait_until(lambda: len(dev.state.path) == depth - 1)
    # the model list beside the scope switches back
    other = next(m for m in engine.models() if m.endswith("other.safetensors"))
    page.select_option("#model", other)
    wait_until(lambda: engine.current_model() == "other")
    shot(page, "panel-models.png")


def test_record_button_writes_a_file(page: Any, engine: Engine, tmp_path: Path) -> None:
    page.click("#record")
    wait_until(lambda: engine.status().recording)
    page.wait_for_function("document.getElementById('record').classList.contains('on')")
    page.click("#gate1")
    time.sleep(0.3)
    page.click("#record")
    wait_until(lambda: not engine.status().recording)
    files = wait_until(lambda: list((tmp_path / "rec").glob("neurorack-*.wav")))
    assert files[0].stat().st_size > 1000
