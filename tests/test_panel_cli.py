"""``neurorack play --panel`` as a user runs it: the printed address serves the faceplate, a network
binding prints a token and refuses requests without it, a bad token is one line and a non-zero exit."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from engine_support import PlayProcess, neurorack_cmd

URL = re.compile(r"panel: (http://\S+)")


def _panel_url(play: PlayProcess, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = URL.search(play.log_text())
        if found:
            return found.group(1)
        if play.proc.poll() is not None:
            raise RuntimeError(f"neurorack play exited with {play.proc.returncode}: {play.log_text()[-800:]}")
        time.sleep(0.2)
    raise TimeoutError(f"no panel address printed: {play.log_text()[-800:]}")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as res:
            return res.status, res.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _tcp_port() -> int:
    """A TCP port nobody listens on right now (on every interface)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


def test_play_panel_serves_the_faceplate_on_loopback(tmp_path: Path) -> None:
    port = _tcp_port()
    play = PlayProcess(["--audio", "null", "--panel", "--port", str(port)], log=tmp_path / "play.log")
    try:
        play.wait_ready()
        url = _panel_url(play)
        assert url == f"http://127.0.0.1:{port}/"
        status, page = _get(url)
        assert status == 200 and "<html" in page.lower()
        assert "http://" not in page.replace(url, "") and "https://" not in page  # all assets local
    finally:
        code = play.terminate()
    assert code == 0, play.log_text()


def test_play_panel_on_the_network_requires_the_printed_token(tmp_path: Path) -> None:
    port = _tcp_port()
    play = PlayProcess(
        ["--audio", "null", "--panel", "--host", "0.0.0.0", "--port", str(port)], log=tmp_path / "play.log"
    )
    try:
        play.wait_ready()
        url = _panel_url(play)
        token = re.search(r"[?&]token=([\w-]+)", url)
        assert token is not None and len(token.group(1)) >= 16, url
        local = f"http://127.0.0.1:{port}/"
        assert _get(local)[0] in (401, 403)
        assert _get(f"{local}?token=wrong-token-123")[0] in (401, 403)
        status, page = _get(f"{local}?token={token.group(1)}")
        assert status == 200 and "<html" in page.lower()
    finally:
        code = play.terminate()
    assert code == 0, play.log_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--panel", "--token", "short"], "token"),
        (["--panel", "--port", "70000"], "--port"),
    ],
)
def test_bad_panel_options_are_one_line(args: list[str], message: str) -> None:
    res = subprocess.run(
        [*neurorack_cmd(), "play", "--audio", "null", "--osc", "0", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode != 0 and "Traceback" not in res.stderr
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], res.stderr
