"""The web panel without a browser: message validation, token / Host / Origin rules, binary frames,
and the server against a real engine over real WebSockets (bad clients never take it down)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from neurorack.engine import Engine
from neurorack.errors import NeurorackError
from neurorack.panel import PanelServer, serve_panel
from neurorack.panel.hub import Outbox
from neurorack.panel.messages import MAX_MESSAGE_BYTES, CvMsg, MessageError, parse_message
from neurorack.panel.security import host_ok, is_loopback, origin_ok, resolve_token, token_ok
from neurorack.panel.views import pack_frame, spectrogram, unpack_frame

BAD_MESSAGES = [
    "not json",
    "[1, 2]",
    '{"type": "nope"}',
    '{"type": "cv", "index": 1, "volts": NaN}',
    '{"type": "cv", "index": 1, "volts": Infinity}',
    '{"type": "cv", "index": 1, "volts": 1e308}',
    '{"type": "cv", "index": 9, "volts": 1}',
    '{"type": "cv", "index": 1.5, "volts": 1}',
    '{"type": "gate", "index": 1, "high": "yes"}',
    '{"type": "gate", "index": 1, "high": true, "extra": 1}',
    '{"type": "encoder", "action": "rotate", "steps": 1000}',
    '{"type": "model", "name": ""}',
    '{"type": "param", "name": "volume_db", "value": -1e9}',
    "[" * 2000 + "]" * 2000,
    "x" * (MAX_MESSAGE_BYTES + 1),
]


# -- pure parts ---------------------------------------------------------------------------------------


def test_valid_messages_parse() -> None:
    assert parse_message('{"type": "cv", "index": 3, "volts": 2.5}') == CvMsg(type="cv", index=3, volts=2.5)
    assert parse_message('{"type": "encoder", "action": "press"}').type == "encoder"
    assert parse_message('{"type": "record", "on": true}').type == "record"


@pytest.mark.parametrize("text", BAD_MESSAGES)
def test_bad_messages_raise_message_error_only(text: str) -> None:
    with pytest.raises(MessageError):
        parse_message(text)
    with pytest.raises(MessageError):
        parse_message(b"\x00\x01")


def test_token_host_and_origin_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert resolve_token("127.0.0.1", None) is None
    generated = resolve_token("0.0.0.0", None)
    assert generated is not None and len(generated) >= 16
    with pytest.raises(NeurorackError):
        resolve_token("0.0.0.0", "short")
    assert token_ok(None, {}, {})
    assert token_ok("s3cret-token", {"token": "s3cret-token"}, {})
    assert token_ok("s3cret-token", {}, {"authorization": "Bearer s3cret-token"})
    assert not token_ok("s3cret-token", {"token": "wrong"}, {})
    assert host_ok("127.0.0.1", "127.0.0.1:8000") and host_ok("127.0.0.1", "localhost:8000")
    assert not host_ok("127.0.0.1", "evil.example:8000")  # DNS rebinding
    assert host_ok("0.0.0.0", "stage.local:8000")
    assert origin_ok("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert origin_ok(None, "127.0.0.1:8000")
    assert not origin_ok("http://evil.example", "127.0.0.1:8000")
    assert origin_ok("http://evil.example", "127.0.0.1:8000", ["http://evil.example"])


def test_frames_and_spectrogram() -> None:
    frame = pack_frame(b"PCM1", {"id": 3}, np.arange(5, dtype="<f4").tobytes())
    tag, header, payload = unpack_frame(frame)
    assert tag == b"PCM1" and header == {"id": 3} and (len(frame) - len(payload)) % 4 == 0
    assert np.array_equal(np.frombuffer(payload, "<f4"), np.arange(5, dtype=np.float32))
    sr = 44100
    t = np.arange(sr // 2) / sr
    image, fmin, fmax = spectrogram(np.sin(2 * np.pi * 1000 * t).astype(np.float32), sr)
    rows = np.geomspace(fmin, fmax, image.shape[0] + 1)
    loudest = int(image.mean(axis=1).argmax())
    assert rows[loudest] <= 1000 * 1.1 and rows[loudest + 1] >= 1000 / 1.1


def test_outbox_keeps_only_the_newest_state() -> None:
    import asyncio

    async def run() -> list[str | bytes]:
        box = Outbox()
        for i in range(100):
            box.offer("status", f"s{i}")
        for i in range(50):
            box.offer("error", f"e{i}")
        batch = await box.take()
        assert box.dropped == 99 + 18
        return batch

    batch = asyncio.run(run())
    assert batch[0] == "s99" and len(batch) == 1 + 32 and batch[-1] == "e49"


# -- the server with a real engine ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with Engine(audio="null") as eng:
        yield eng


def _ws_url(panel: PanelServer, token: str | None = None) -> str:
    return f"ws://127.0.0.1:{panel.port}/ws" + (f"?token={token}" if token else "")


def _recv_until(ws: ClientConnection, kind: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(data, str):
            msg = json.loads(data)
            if msg["type"] == kind:
                return dict(msg)
    raise TimeoutError(kind)


def _get(port: int, path: str, host: str | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path, headers={"Host": host} if host else {})
    status = conn.getresponse().status
    conn.close()
    return status


def test_token_required_off_loopback(engine: Engine) -> None:
    with pytest.raises(NeurorackError):
        PanelServer(engine, host="0.0.0.0", port=0, token="")
    panel = serve_panel(engine, host="0.0.0.0", port=0)
    try:
        assert panel.token and f"token={panel.token}" in panel.url
        assert _get(panel.port, "/") == 401
        assert _get(panel.port, "/?token=wrong-token") == 401
        assert _get(panel.port, f"/?token={panel.token}") == 200
        assert _get(panel.port, "/healthz") == 200
        with pytest.raises(InvalidStatus) as refused:
            connect(_ws_url(panel), open_timeout=10)
        assert refused.value.response.status_code == 403
        with connect(_ws_url(panel, panel.token), max_size=None) as ws:
            assert _recv_until(ws, "hello")["can_record"] is True
        with connect(_ws_url(panel), additional_headers={"Authorization": f"Bearer {panel.token}"}) as ws:
            _recv_until(ws, "status")
    finally:
        panel.stop()


def test_wrong_origin_and_host_refused(engine: Engine) -> None:
    panel = serve_panel(engine, port=0)
    try:
        assert panel.token is None and panel.url == f"http://127.0.0.1:{panel.port}/"
        with pytest.raises(InvalidStatus) as refused:
            connect(_ws_url(panel), origin="http://evil.example", open_timeout=10)  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        assert _get(panel.port, "/", host="evil.example") == 403  # DNS rebinding
        own = f"http://127.0.0.1:{panel.port}"
        with connect(_ws_url(panel), origin=own, max_size=None) as ws:  # type: ignore[arg-type]
            _recv_until(ws, "hello")
    finally:
        panel.stop()


def test_malformed_messages_answered_and_server_keeps_working(engine: Engine) -> None:
    panel = serve_panel(engine, port=0)
    try:
        with connect(_ws_url(panel), max_size=None) as ws:
            _recv_until(ws, "hello")
            for text in BAD_MESSAGES:
                ws.send(text)
                assert _recv_until(ws, "error")["error"]
            ws.send(b"\x00binary")
            assert "binary" in _recv_until(ws, "error")["error"]
            ws.send('{"type": "model", "name": "no-such-model"}')
            assert "unknown model" in _recv_until(ws, "error")["error"]
            ws.send('{"type": "assign", "cv": 2, "target": "nonsense"}')
            assert _recv_until(ws, "error")["request"] == "assign"
            ws.send('{"type": "param", "name": "volume_db", "value": 99}')  # engine's own range check
            assert _recv_until(ws, "error")["request"] == "param"
            for i in range(1000):  # a flood: rate-limited, answered, never fatal
                ws.send(json.dumps({"type": "ping", "id": i}))
            assert "too many" in _recv_until(ws, "error")["error"]
            time.sleep(0.3)
            ws.send('{"type": "cv", "index": 2, "volts": -1.5}')
            ws.send('{"type": "ping", "id": 424242}')
            deadline = time.monotonic() + 10
            while _recv_until(ws, "pong").get("id") != 424242 and time.monotonic() < deadline:
                pass
            assert engine.cvs()[1] == pytest.approx(-1.5)
        with connect(_ws_url(panel), max_size=None) as ws:  # a frame over the size limit closes only that socket
            _recv_until(ws, "hello")
            ws.send("y" * 200_000)
            with pytest.raises(ConnectionClosed):
                for _ in range(1000):
                    ws.recv(timeout=10)
        with connect(_ws_url(panel), max_size=None) as ws:
            ws.send('{"type": "ping", "id": 7}')
            assert _recv_until(ws, "pong")["id"] == 7
        assert panel.running
    finally:
        engine.set_cv(2, 0.0)
        panel.stop()


def test_a_client_that_never_reads_cannot_stall_the_audio(engine: Engine) -> None:
    panel = serve_panel(engine, port=0)
    try:
        with connect(_ws_url(panel), max_size=None, max_queue=1), connect(_ws_url(panel), max_size=None) as ws:
            _recv_until(ws, "hello")
            periods0, t0 = engine.status().extra["periods"], time.monotonic()
            statuses = 0
            for k in range(30):  # new impacts every 100 ms: big frames pile up for the stuck client
                ws.send(json.dumps({"type": "cv", "index": 3, "volts": 0.1 * (k % 7)}))
                end = time.monotonic() + 0.1
                while time.monotonic() < end:
                    try:
                        data = ws.recv(timeout=0.05)
                    except TimeoutError:
                        continue
                    statuses += isinstance(data, str) and '"type":"status"' in data
            elapsed = time.monotonic() - t0
            periods = engine.status().extra["periods"] - periods0
        expected = elapsed * engine.sample_rate / engine.backend.period
        assert periods > 0.7 * expected, (periods, expected)
        assert statuses > 20  # the reading client kept getting ~20 status messages a second
    finally:
        engine.set_cv(3, 0.0)
        panel.stop()
