"""Helpers for the engine tests: a real ``neurorack play`` process, and an OSC client that reads replies."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from neurorack.engine.jack_server import JackDummyServer
from neurorack.engine.osc import parse_status


@contextlib.contextmanager
def prioritised_server(sample_rate: int, period: int) -> Iterator[JackDummyServer]:
    """A ``jackd -d dummy`` server while this thread runs at a raised priority (when allowed).

    This process hosts the measuring JACK clients (real-time threads when allowed); its main thread
    shares their GIL, so it gets a higher priority too, else a busy machine delays the clients behind
    it and skews their frame stamps (not the engine's latency).
    """
    tid = threading.get_native_id()
    old = os.getpriority(os.PRIO_PROCESS, tid)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, tid, -10)
    try:
        with JackDummyServer(sample_rate=sample_rate, period=period) as srv:
            yield srv
    finally:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, old)


def wait_onset(capture: Any, frame: int, timeout: float = 1.0) -> int | None:
    """The frame of the first non-silent sample a probe capture recorded at or after ``frame``, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        onset = capture.onset_after(frame)
        if onset is not None:
            return int(onset)
        time.sleep(0.01)
    return None


def free_udp_port() -> int:
    """A UDP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def osc_datagram(address: str, *args: Any) -> bytes:
    """One OSC message as bytes (python-osc types the arguments)."""
    b = OscMessageBuilder(address=address)
    for a in args:
        if isinstance(a, float) and math.isfinite(a) and abs(a) > 3e38:
            b.add_arg(a, arg_type="d")  # beyond float32: send a double
        else:
            b.add_arg(a)
    return b.build().dgram


class OscClient:
    """Send OSC over real UDP loopback to ``port`` and read the engine's replies."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(osc_datagram(address, *args), self.addr)

    def raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.addr)

    def status(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """Ask ``/neurorack/status``; the reply's name → value mapping, or None without an answer."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recvfrom(65536)  # drop replies to earlier requests
        except (BlockingIOError, OSError):
            pass
        self.sock.settimeout(0.5)
        deadline = time.monotonic() + timeout
        self.send("/neurorack/status")
        while time.monotonic() < deadline:
            try:
                data, _ = self.sock.recvfrom(65536)
            except TimeoutError:
                self.send("/neurorack/status")
                continue
            for m in OscPacket(data).messages:
                if m.message.address == "/neurorack/status":
                    return parse_status(m.message.params)
        return None

    def close(self) -> None:
        self.sock.close()


def neurorack_cmd() -> list[str]:
    """The ``neurorack`` command of this interpreter."""
    exe = Path(sys.executable).with_name("neurorack")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from neurorack.cli import run; run()"]


class PlayProcess:
    """``neurorack play ARGS`` in a child process, with OSC on a free port; waits until it answers."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> None:
        self.port = free_udp_port()
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["PYTHONUNBUFFERED"] = "1"
        self.log = log
        self._logf = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*neurorack_cmd(), "play", "--osc", str(self.port), "--quiet", *args],
            stdout=self._logf,
            stderr=self._logf,
            stdin=subprocess.DEVNULL,
            env=full_env,
        )
        self.osc = OscClient(self.port)

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"neurorack play exited with {self.proc.returncode}: {self.log_text()[-800:]}")
            st = self.osc.status(timeout=0.5)
            if st is not None and st.get("running") == 1 and st.get("pending") == 0:
                return st
        raise TimeoutError(f"neurorack play did not answer on OSC: {self.log_text()[-800:]}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log is not None and self.log.exists() else ""

    def terminate(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.osc.close()
        if self.log is not None and hasattr(self._logf, "close"):
            self._logf.close()  # type: ignore[union-attr]
        return int(self.proc.returncode)
