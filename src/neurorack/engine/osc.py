"""OSC over UDP (SPEC §7): the instrument's network control surface.

Addresses (arguments in brackets; numbers may be int or float, booleans accepted for gates):

==================================== ===============================================================
``/neurorack/gate/1`` [level]         1 = high, 0 = low; a rising edge plays the current impact.
``/neurorack/gate/1`` [level, vel]    the same with a velocity 0..1 (level of the hit)
``/neurorack/gate/2`` [level]         a rising edge re-renders the impact (fresh noise seed)
``/neurorack/cv/1`` … ``/cv/4`` [V]   CV value in volts (±12 V at most)
``/neurorack/descriptor/<name>`` [x]  offset added to a descriptor curve, in its unit (aliases accepted)
``/neurorack/model`` [name]           switch model (bundled name or file)
``/neurorack/reload``                 reload the current model
``/neurorack/assign`` [cv, target]    re-assign a CV (target: position, a descriptor, inharmonicity)
``/neurorack/param/<name>`` [x]       set a parameter (volume_db, max_voices, duration, ...)
``/neurorack/note`` [pitch, vel]       with ``play --notes``: a note-on (velocity 1..127) or note-off (0)
``/neurorack/notes/program`` [n]      the note voices' instrument (n modulo the model's instruments)
``/neurorack/notes/morph`` [a, b]     CV 1 morphs the notes between instruments a and b (names or indices)
``/neurorack/status``                 reply to the sender: ``/neurorack/status`` with name, value pairs
==================================== ===============================================================

The status reply's arguments alternate a name (string) and a value (int, float or string):
``running backend sample_rate period model voices max_voices xruns callback_load render_ms
pending gate_1 gate_2 cv_1 … cv_4 message`` then the engine's extra figures (whole numbers as int32,
e.g. ``hits`` and ``last_onset_frame``, the frame time of the last hit's first sample; with live
transfer ``transfer_latency`` in samples, ``transfer_underruns`` and the rest of
:attr:`EngineStatus.extra <neurorack.engine.protocol.EngineStatus>`).

Anything malformed — undecodable datagrams, unknown addresses, wrong argument types or counts,
NaN, ±inf, values out of range — is logged (rate-limited) and ignored; the server never stops.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from neurorack.engine.protocol import EngineStatus, InstrumentControl
from neurorack.errors import NeurorackError

log = logging.getLogger("neurorack.engine.osc")

PREFIX = "/neurorack/"
DEFAULT_PORT = 9000
DEFAULT_HOST = "127.0.0.1"
#: Niceness asked for the OSC thread when allowed (root or CAP_SYS_NICE), so gates arrive on time on a busy machine.
THREAD_NICENESS = -10
#: Warnings logged per second at most (the rest are counted).
LOG_RATE = 10


class _IgnoredError(Exception):
    """A message that is logged and ignored."""


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if not isinstance(value, int | float):
        raise _IgnoredError(f"{what} must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise _IgnoredError(f"{what} must be finite, got {value}")
    return v


def _arity(args: tuple[Any, ...], *counts: int) -> None:
    if len(args) not in counts:
        want = " or ".join(str(c) for c in counts)
        raise _IgnoredError(f"expects {want} argument(s), got {len(args)}")


def status_message(status: EngineStatus) -> bytes:
    """The ``/neurorack/status`` reply datagram (name, value pairs; see the module docstring)."""
    pairs: list[tuple[str, Any]] = [
        ("running", int(status.running)),
        ("backend", status.backend),
        ("sample_rate", status.sample_rate),
        ("period", status.period),
        ("model", status.model),
        ("voices", status.voices),
        ("max_voices", status.max_voices),
        ("xruns", status.xruns),
        ("callback_load", float(status.callback_load)),
        ("render_ms", float(status.render_ms)),
        ("pending", int(status.pending)),
    ]
    pairs += [(f"gate_{i + 1}", int(g)) for i, g in enumerate(status.gates)]
    pairs += [(f"cv_{i + 1}", float(v)) for i, v in enumerate(status.cvs)]
    pairs.append(("message", status.message))
    pairs += [(k, int(v) if float(v).is_integer() and abs(v) < 2**31 else float(v)) for k, v in status.extra.items()]
    builder = OscMessageBuilder(address=PREFIX + "status")
    for name, value in pairs:
        builder.add_arg(name)
        builder.add_arg(value)
    return builder.build().dgram


def parse_status(args: list[Any] | tuple[Any, ...]) -> dict[str, Any]:
    """The name → value mapping of a status reply's arguments."""
    return {str(args[i]): args[i + 1] for i in range(0, len(args) - 1, 2)}


class OscServer:
    """Listen for OSC on ``host:port`` (UDP) and drive ``instrument``.

    Args:
        instrument: what the messages control.
        port: UDP port (0 picks a free one; see :attr:`port`).
        host: address to listen on; ``127.0.0.1`` (default) accepts only this machine.

    Raises:
        NeurorackError: the address cannot be bound (in use, not local, permission).
    """

    def __init__(self, instrument: InstrumentControl, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST) -> None:
        if not 0 <= port <= 65535:
            raise NeurorackError(f"--osc port must lie in 0..65535, got {port}")
        self.instrument = instrument
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            family, _, _, _, addr = infos[0]
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.bind(addr)
        except (OSError, UnicodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise NeurorackError(f"cannot listen for OSC on {host}:{port} ({reason})") from None
        self.sock.settimeout(0.2)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        #: Messages handled and ignored so far.
        self.handled = 0
        self.ignored = 0
        self._log_window = 0.0
        self._logged_in_window = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OscServer:
        """Serve on a background thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="neurorack-osc", daemon=True)
            self._thread.start()
            log.info("OSC on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self.sock.close()

    def _serve(self) -> None:
        # a control input: ask for a higher share of the CPU than the renderer and other busy work
        if hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), THREAD_NICENESS)
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                continue
            self.handle_datagram(data, sender)

    def _ignore(self, text: str) -> None:
        self.ignored += 1
        now = time.monotonic()
        if now - self._log_window >= 1.0:
            if self._logged_in_window > LOG_RATE:
                log.warning("… %d more OSC messages ignored", self._logged_in_window - LOG_RATE)
            self._log_window, self._logged_in_window = now, 0
        self._logged_in_window += 1
        if self._logged_in_window <= LOG_RATE:
            note = getattr(self.instrument, "note", None)
            if callable(note):
                note(f"ignored OSC {text}")  # logs and shows it in the status
            else:
                log.warning("ignored OSC %s", text)

    def handle_datagram(self, data: bytes, sender: Any = None) -> None:
        """Decode one UDP datagram and handle every message in it (never raises)."""
        try:
            packet = OscPacket(data)
            messages = [m.message for m in packet.messages]
        except Exception as exc:  # ParseError and anything a hostile datagram triggers
            self._ignore(f"datagram of {len(data)} bytes: not OSC ({type(exc).__name__})")
            return
        for msg in messages:
            try:
                address = str(msg.address)
                args = tuple(msg.params)
            except Exception as exc:
                self._ignore(f"message: undecodable ({type(exc).__name__})")
                continue
            try:
                self.handle(address, args, sender)
                self.handled += 1
            except _IgnoredError as exc:
                self._ignore(f"{address[:80]}: {exc}")
            except (ValueError, NeurorackError) as exc:
                self._ignore(f"{address[:80]}: {exc}")
            except Exception as exc:  # never let a message stop the server
                self._ignore(f"{address[:80]}: {type(exc).__name__}: {exc}")

    def handle(self, address: str, args: tuple[Any, ...], sender: Any = None) -> None:
        """Handle one message (raises on a malformed one; :meth:`handle_datagram` logs and ignores)."""
        inst = self.instrument
        if not address.startswith(PREFIX):
            raise _IgnoredError("unknown address")
        path = address[len(PREFIX) :].split("/")
        head = path[0]
        if head == "gate" and len(path) == 2 and path[1] in ("1", "2"):
            _arity(args, 1, 2)
            level = _number(args[0], "level")
            if len(args) == 2:
                velocity = _number(args[1], "velocity")
                if not 0.0 <= velocity <= 1.0:
                    raise _IgnoredError(f"velocity must lie in 0..1, got {velocity}")
                inst.gate(int(path[1]), level > 0.5, velocity)  # type: ignore[call-arg]
            else:
                inst.gate(int(path[1]), level > 0.5)
        elif head == "cv" and len(path) == 2 and path[1] in ("1", "2", "3", "4"):
            _arity(args, 1)
            inst.set_cv(int(path[1]), _number(args[0], "volts"))
        elif head == "descriptor" and len(path) == 2 and path[1]:
            _arity(args, 1)
            inst.set_offset(path[1], _number(args[0], "offset"))
        elif head == "model" and len(path) == 1:
            _arity(args, 1)
            if not isinstance(args[0], str) or not args[0].strip():
                raise _IgnoredError("model name must be a non-empty string")
            inst.select_model(args[0])
        elif head == "reload" and len(path) == 1:
            _arity(args, 0)
            inst.reload_model()
        elif head == "assign" and len(path) == 1:
            _arity(args, 2)
            cv = _number(args[0], "cv")
            if not isinstance(args[1], str):
                raise _IgnoredError("target must be a string")
            if cv != int(cv):
                raise _IgnoredError(f"cv must be a whole number, got {cv}")
            inst.assign(int(cv), args[1])
        elif head == "param" and len(path) == 2 and path[1]:
            _arity(args, 1)
            inst.set_parameter(path[1], _number(args[0], "value"))
        elif head == "note" and len(path) == 1:
            _arity(args, 2)
            pitch, velocity = _number(args[0], "pitch"), _number(args[1], "velocity")
            if pitch != int(pitch) or not 0 <= pitch <= 127 or velocity != int(velocity) or not 0 <= velocity <= 127:
                raise _IgnoredError(f"a note needs a MIDI pitch and velocity 0..127, got {pitch}, {velocity}")
            if velocity > 0:
                inst.play_note(int(pitch), int(velocity))  # type: ignore[attr-defined]
            else:
                inst.release_note(int(pitch))  # type: ignore[attr-defined]
        elif head == "notes" and len(path) == 2 and path[1] == "program":
            _arity(args, 1)
            program = _number(args[0], "program")
            if program != int(program) or program < 0:
                raise _IgnoredError(f"program must be a whole number >= 0, got {program}")
            inst.select_instrument(int(program))  # type: ignore[attr-defined]
        elif head == "notes" and len(path) == 2 and path[1] == "morph":
            _arity(args, 2)
            ends = [a if isinstance(a, str) else int(_number(a, "instrument")) for a in args]
            inst.set_note_morph(ends[0], ends[1])  # type: ignore[attr-defined]
        elif head == "status" and len(path) == 1:
            if sender is not None:
                self.sock.sendto(status_message(inst.status()), sender)
        else:
            raise _IgnoredError("unknown address")
