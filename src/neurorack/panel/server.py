"""The web faceplate's server: FastAPI + one WebSocket, run by uvicorn on a background thread.

``serve_panel(engine)`` starts it and returns the running :class:`PanelServer` (``.url`` is the
address to open, ``.stop()`` ends it); the engine keeps running on its own threads throughout.

Routes:

* ``GET /`` — the faceplate page (token checked); ``GET /static/...`` — its CSS and JavaScript modules,
  files of this package (nothing from a CDN);
* ``GET /healthz`` — ``{"ok": true}`` (no token; says nothing about the instrument);
* ``WS /ws`` — the live connection (token and Origin checked). Server → page: JSON text messages
  ``hello``, ``status`` (~20/s), ``impact``, ``anchors``, ``error``, ``pong``, ``recorded``, and binary
  frames ``SCRN`` (the OLED as PNG, when it changes) and ``PCM1`` (the current impact's samples,
  when it changes); page → server: the messages of :mod:`neurorack.panel.messages`.

Safety (see :mod:`neurorack.panel.security`): loopback by default; any other address needs a token
(generated when not given); WebSockets only from the panel's own Origin; every client message is
validated and rate-limited (:data:`RATE_PER_S`), errors are answered, never raised; instrument calls
are non-blocking (recording, which touches the disk, runs on a worker thread); outgoing messages go
through a per-client :class:`~neurorack.panel.hub.Outbox` that keeps only the newest state, and a
client that stops reading is disconnected after :data:`SEND_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from neurorack.device.menu import TARGET_LABELS, TARGETS, Event
from neurorack.engine.protocol import InstrumentControl
from neurorack.errors import NeurorackError
from neurorack.panel.hub import Hub, Outbox, Payload, Publisher
from neurorack.panel.messages import (
    MAX_FRAME_BYTES,
    AssignMsg,
    ClientMessage,
    CvMsg,
    EncoderMsg,
    GateMsg,
    MessageError,
    ModelMsg,
    MorphMsg,
    NoteMsg,
    PanicMsg,
    ParamMsg,
    PingMsg,
    ProgramMsg,
    RecordMsg,
    ReloadMsg,
    parse_message,
)
from neurorack.panel.security import host_ok, is_loopback, origin_ok, resolve_token, token_ok
from neurorack.panel.views import descriptor_table

log = logging.getLogger("neurorack.panel")

#: Folder of the page's files inside the package.
STATIC_DIR = Path(__file__).with_name("static")
#: Client messages per second allowed on one connection (burst: twice as many); beyond, dropped with an error.
RATE_PER_S = 200.0
#: Seconds a send to a client may take before the client is considered stuck and disconnected.
SEND_TIMEOUT_S = 10.0
#: Browsers connected at once at most; more are refused (close code 1013).
MAX_CLIENTS = 16
#: Content-Security-Policy of the page: everything from the panel itself, nothing else.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class _RateLimit:
    """A token bucket: ``rate`` messages per second, bursts of ``2 × rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.level = 2.0 * rate
        self.t = time.monotonic()
        self.last_refusal = 0.0

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(2.0 * self.rate, self.level + (now - self.t) * self.rate)
        self.t = now
        if self.level >= 1.0:
            self.level -= 1.0
            return True
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 = any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise NeurorackError(f"the panel cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.setblocking(False)
    return sock


def _lan_address() -> str:
    """This machine's address on the default route (no packet is sent), or 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class PanelServer:
    """The web faceplate of one instrument (see the module docstring).

    Args:
        instrument: the engine (anything implementing :class:`InstrumentControl`; recording needs the
            engine's ``start_recording``/``stop_recording``, panic its ``panic``).
        host: address to listen on; loopback by default. Anything else requires a token.
        port: TCP port (0 = a free one; the chosen port is in :attr:`port` after :meth:`start`).
        token: the access token; generated (:mod:`secrets`) when None and ``host`` is not loopback.
        device: a running :class:`~neurorack.device.DeviceApp` to mirror (e.g. ``play --device``);
            default: the panel runs its own with the dummy display and no ADC.
        record_dir: folder the panel's record button writes to (``neurorack-<date>-<time>.wav``);
            default: the current directory.
        allowed_origins: extra WebSocket Origins to accept (``"http://host:port"``).
        status_hz: status and screen updates per second.

    Attributes:
        url: the address to open (with ``?token=`` when one is required); local_url: the same on
            127.0.0.1 for wildcard bindings; token: the token or None; hub: the latest messages.
    """

    def __init__(
        self,
        instrument: InstrumentControl,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        device: Any = None,
        record_dir: str | os.PathLike[str] | None = None,
        allowed_origins: Iterable[str] = (),
        status_hz: float = 20.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise NeurorackError(f"the panel port must be 0..65535, got {port}")
        if not 1.0 <= status_hz <= 60.0:
            raise NeurorackError(f"status_hz must lie in 1..60, got {status_hz}")
        self.instrument = instrument
        self.host = host
        self.port = port
        self.token = resolve_token(host, token)
        self.allowed_origins = tuple(allowed_origins)
        self.record_dir = Path(record_dir) if record_dir is not None else Path.cwd()
        self.status_hz = status_hz
        self.hub = Hub()
        self.device: Any = device
        self._owns_device = device is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._publisher: Publisher | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.app = self._build_app()

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> str:
        """Listen, start the server thread, the publisher and (unless given) the device app; returns :attr:`url`.

        Raises:
            NeurorackError: the address cannot be bound, or the server did not start within ``timeout`` s.
        """
        if self._thread is not None:
            return self.url
        import uvicorn

        sock = _bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        if self.device is None:
            from neurorack.device import DeviceApp

            self.device = DeviceApp(self.instrument, "dummy", controls="sim", led="sim", adc="none")
        if self._owns_device:
            self.device.start()
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws_max_size=MAX_FRAME_BYTES,
            ws_per_message_deflate=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="neurorack-panel-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise NeurorackError(f"the panel server did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        log.info("web panel on %s", self.url)
        return self.url

    def stop(self) -> None:
        """Stop the server (open pages are disconnected), the publisher and the panel's own device app."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            self._thread = None
        if self._publisher is not None:
            self._publisher.stop()
            self._publisher = None
        if self._owns_device and self.device is not None:
            self.device.stop()

    def __enter__(self) -> PanelServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """The server thread is serving."""
        return self._thread is not None and self._thread.is_alive() and bool(self._server and self._server.started)

    def _url(self, host: str) -> str:
        h = f"[{host}]" if ":" in host and not host.startswith("[") else host
        query = f"?token={self.token}" if self.token else ""
        return f"http://{h}:{self.port}/{query}"

    @property
    def url(self) -> str:
        """The page's address (a wildcard binding shows this machine's LAN address), token included."""
        host = self.host
        if host in ("0.0.0.0", "::", "[::]", ""):
            host = _lan_address()
        return self._url(host)

    @property
    def local_url(self) -> str:
        """The page's address on loopback (for a wildcard or loopback binding), token included."""
        host = self.host if is_loopback(self.host) else "127.0.0.1"
        return self._url(host)

    # -- the application ----------------------------------------------------------------------------

    def _post(self, kind: str, data: Payload) -> None:
        """From the publisher thread to the event loop (never blocks; dropped when the loop is gone)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self.hub.publish, kind, data)

    def hello(self) -> dict[str, Any]:
        """The first message a page gets: what the panel offers and the tables it needs."""
        from neurorack import __version__

        inst = self.instrument
        info: dict[str, dict[str, Any]] = {}
        table = getattr(inst, "parameter_info", None)
        if callable(table):
            with contextlib.suppress(Exception):
                for name, p in table().items():
                    info[name] = {"low": p.low, "high": p.high, "unit": p.unit, "help": p.help}
        return {
            "type": "hello",
            "version": __version__,
            "targets": [{"name": t, "label": TARGET_LABELS.get(t, t)} for t in TARGETS],
            "descriptors": descriptor_table(),
            "parameters": info,
            "can_record": callable(getattr(inst, "start_recording", None)),
            "can_panic": callable(getattr(inst, "panic", None)),
        }

    def _build_app(self) -> FastAPI:
        @contextlib.asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self.hub.publish("hello", json.dumps(self.hello(), separators=(",", ":")))
            device = self.device
            self._publisher = Publisher(
                self.instrument,
                (lambda: device.screen()) if device is not None else (lambda: None),
                self._post,
                status_hz=self.status_hz,
            )
            self._publisher.start()
            try:
                yield
            finally:
                self._publisher.stop()
                self._loop = None

        app = FastAPI(title="neurorack panel", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
        guard_host = self.host

        @app.middleware("http")
        async def host_guard(request: Request, call_next: Any) -> Response:
            if not host_ok(guard_host, request.headers.get("host")):
                return PlainTextResponse("forbidden host", status_code=403)
            response = cast(Response, await call_next(request))
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "no-referrer"
            return response

        @app.get("/", response_model=None)
        async def index(request: Request) -> Response:
            if not token_ok(self.token, request.query_params, request.headers):
                return PlainTextResponse(
                    "this panel needs its token: open the address `neurorack play --panel` printed",
                    status_code=401,
                )
            page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
            return HTMLResponse(
                page,
                headers={"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Cache-Control": "no-store"},
            )

        @app.get("/healthz")
        async def healthz() -> JSONResponse:
            return JSONResponse({"ok": True})

        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

        @app.websocket("/ws")
        async def ws_endpoint(websocket: WebSocket) -> None:
            await self._session(websocket)

        return app

    async def _session(self, ws: WebSocket) -> None:
        """One browser connection: checks, then a sender task and the receive loop."""
        from starlette.websockets import WebSocketDisconnect

        headers = ws.headers
        host_header = headers.get("host")
        if not host_ok(self.host, host_header):
            await ws.close(code=1008, reason="forbidden host")
            return
        if not origin_ok(headers.get("origin"), host_header, self.allowed_origins):
            log.warning("panel: refused a WebSocket from origin %r", headers.get("origin"))
            await ws.close(code=1008, reason="forbidden origin")
            return
        if not token_ok(self.token, ws.query_params, headers):
            await ws.close(code=1008, reason="token required")
            return
        if len(self.hub.clients) >= MAX_CLIENTS:
            await ws.close(code=1013, reason="too many panels open")
            return
        await ws.accept()
        outbox = Outbox()
        self.hub.attach(outbox)
        sender = asyncio.create_task(self._send_loop(ws, outbox))
        limit = _RateLimit(RATE_PER_S)
        try:
            while not sender.done():
                receive = asyncio.ensure_future(ws.receive())
                done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
                if receive not in done:
                    receive.cancel()
                    break
                message = receive.result()
                if message["type"] == "websocket.disconnect":
                    break
                if not limit.take():
                    now = time.monotonic()
                    if now - limit.last_refusal > 1.0:
                        limit.last_refusal = now
                        self._reply(outbox, "error", error="too many messages; slow down", request="")
                    continue
                await self._on_frame(outbox, message.get("text"), message.get("bytes"))
        except (WebSocketDisconnect, RuntimeError, ConnectionError):
            pass
        finally:
            self.hub.detach(outbox)
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 1.0)

    async def _send_loop(self, ws: Any, outbox: Outbox) -> None:
        while not outbox.closed:
            for item in await outbox.take():
                if isinstance(item, bytes):
                    await asyncio.wait_for(ws.send_bytes(item), SEND_TIMEOUT_S)
                else:
                    await asyncio.wait_for(ws.send_text(item), SEND_TIMEOUT_S)

    @staticmethod
    def _reply(outbox: Outbox, kind: str, **fields: Any) -> None:
        outbox.offer(kind, json.dumps({"type": kind, **fields}, separators=(",", ":")))

    async def _on_frame(self, outbox: Outbox, text: str | None, data: bytes | None) -> None:
        """Validate and carry out one client frame; every failure becomes an ``error`` reply."""
        try:
            msg = parse_message(text if text is not None else (data or b""))
        except MessageError as exc:
            self._reply(outbox, "error", error=str(exc), request="")
            return
        try:
            await self._handle(outbox, msg)
        except (ValueError, NeurorackError) as exc:
            self._reply(outbox, "error", error=str(exc).splitlines()[0] if str(exc) else "refused", request=msg.type)
        except Exception as exc:  # an instrument bug must not take the panel down
            log.error("panel: %s message failed: %s", msg.type, exc, exc_info=exc)
            self._reply(outbox, "error", error=f"{msg.type} failed: {type(exc).__name__}", request=msg.type)

    async def _handle(self, outbox: Outbox, msg: ClientMessage) -> None:
        inst = self.instrument
        if isinstance(msg, GateMsg):
            if msg.velocity < 1.0 and msg.high:
                cast(Any, inst).gate(msg.index, msg.high, velocity=msg.velocity)
            else:
                inst.gate(msg.index, msg.high)
        elif isinstance(msg, CvMsg):
            inst.set_cv(msg.index, msg.volts)
        elif isinstance(msg, EncoderMsg):
            if self.device is None:
                raise ValueError("no device screen")
            event = (
                Event.rotate(msg.steps)
                if msg.action == "rotate"
                else Event.press()
                if msg.action == "press"
                else Event.long_press()
            )
            self.device.post(event)
        elif isinstance(msg, ModelMsg):
            if msg.name not in inst.models():
                raise ValueError(f"unknown model {msg.name[:80]!r}")
            inst.select_model(msg.name)
        elif isinstance(msg, ReloadMsg):
            inst.reload_model()
        elif isinstance(msg, AssignMsg):
            inst.assign(msg.cv, msg.target)
        elif isinstance(msg, ParamMsg):
            inst.set_parameter(msg.name, msg.value)
        elif isinstance(msg, RecordMsg):
            await self._record(outbox, msg.on)
        elif isinstance(msg, PanicMsg):
            panic = getattr(inst, "panic", None)
            if not callable(panic):
                raise ValueError("this instrument has no panic")
            panic()
        elif isinstance(msg, NoteMsg | ProgramMsg | MorphMsg):
            self._notes(msg)
        elif isinstance(msg, PingMsg):
            self._reply(outbox, "pong", id=msg.id)

    def _notes(self, msg: NoteMsg | ProgramMsg | MorphMsg) -> None:
        """The note voices' messages (an engine started with a note model: ``play --notes``)."""
        inst: Any = self.instrument
        if getattr(inst, "notes", None) is None:
            raise ValueError("no note model is playing (neurorack play --notes MODEL)")
        if isinstance(msg, NoteMsg):
            if msg.velocity:
                inst.play_note(msg.pitch, msg.velocity)
            else:
                inst.release_note(msg.pitch)
        elif isinstance(msg, ProgramMsg):
            inst.select_instrument(msg.index)
        else:
            inst.set_note_morph(msg.a, msg.b)

    async def _record(self, outbox: Outbox, on: bool) -> None:
        """Start or stop the engine's recorder (``Engine.start_recording``/``stop_recording``) off the loop."""
        inst: Any = self.instrument
        start, stop = getattr(inst, "start_recording", None), getattr(inst, "stop_recording", None)
        if not callable(start) or not callable(stop):
            raise ValueError("this instrument cannot record")
        if on:
            if inst.status().recording:
                raise ValueError("already recording")
            self.record_dir.mkdir(parents=True, exist_ok=True)
            path = self.record_dir / f"neurorack-{datetime.now():%Y%m%d-%H%M%S}.wav"
            await asyncio.to_thread(start, path)
            self._reply(outbox, "recording", file=path.name)
        else:
            saved = await asyncio.to_thread(stop)
            self._reply(outbox, "recorded", file=Path(saved).name if saved is not None else "")


def serve_panel(
    instrument: InstrumentControl,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    device: Any = None,
    record_dir: str | os.PathLike[str] | None = None,
    allowed_origins: Sequence[str] = (),
) -> PanelServer:
    """Serve the web faceplate of ``instrument`` on a background thread and return the running server.

    Open ``server.url`` in a browser (it carries ``?token=…`` when a token is required); call
    ``server.stop()`` when done. See :class:`PanelServer` for the arguments.

    Raises:
        NeurorackError: the address cannot be bound, or a bad token.
    """
    server = PanelServer(
        instrument,
        host=host,
        port=port,
        token=token,
        device=device,
        record_dir=record_dir,
        allowed_origins=allowed_origins,
    )
    server.start()
    return server
