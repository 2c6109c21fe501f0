"""A private JACK server on the dummy driver, for tests and ``neurorack bench`` (no sound card needed).

``jackd --no-realtime -n NAME -d dummy -r RATE -p PERIOD`` (at niceness −10 when allowed) with a
unique server name, so it never
touches the user's own JACK server; clients reach it with ``servername=NAME`` or
``JACK_DEFAULT_SERVER=NAME``. The server's stderr is kept in :attr:`JackDummyServer.log_path`:
it names the client behind every xrun, which is how the tests tell the engine's own xruns
(``state = Running``: the callback took too long) from the dummy driver's timer jitter on a busy
machine (``JackTimedDriver::Process XRun``, ``state = Triggered``: the OS woke a thread late).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from neurorack.errors import NeurorackError

#: Niceness asked for the server when allowed: ``--no-realtime`` leaves the dummy driver's timer
#: thread to the ordinary scheduler, where other busy processes would delay every cycle.
SERVER_NICENESS = -10


def _nice_prefix() -> list[str]:
    """``nice -n -10`` when this process may raise priorities (root), else nothing."""
    nice = shutil.which("nice")
    return [nice, "-n", str(SERVER_NICENESS)] if nice and hasattr(os, "geteuid") and os.geteuid() == 0 else []


def jackd_path() -> str | None:
    """Path of the ``jackd`` executable, or None when JACK is not installed."""
    return shutil.which("jackd")


class JackDummyServer:
    """Start a dummy-driver JACK server; stop it on :meth:`stop` or at the end of a ``with`` block.

    Args:
        sample_rate: Hz.
        period: frames per period.
        name: server name (default: a unique ``nr-<random>``).
        timeout: seconds to wait for the server to accept clients.

    Raises:
        NeurorackError: jackd missing, or not accepting clients within ``timeout``.
    """

    def __init__(self, sample_rate: int = 44100, period: int = 128, name: str | None = None, timeout: float = 15.0):
        self.sample_rate = sample_rate
        self.period = period
        self.name = name or f"nr-{uuid.uuid4().hex[:10]}"
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="neurorack-jackd-"))
        self.log_path = self._dir / "jackd.log"

    def start(self) -> JackDummyServer:
        """Launch jackd and wait until a client can connect."""
        exe = jackd_path()
        if exe is None:
            raise NeurorackError("jackd is not installed (Debian/Ubuntu: apt-get install jackd2)")
        cmd = [
            *_nice_prefix(),
            exe,
            "--no-realtime",
            "-n",
            self.name,
            "-d",
            "dummy",
            "-r",
            str(self.sample_rate),
            "-p",
            str(self.period),
        ]
        env = dict(os.environ)
        env.pop("JACK_DEFAULT_SERVER", None)
        with open(self.log_path, "wb") as logf:
            self.proc = subprocess.Popen(
                cmd,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        import jack

        jack.set_error_function(lambda msg: None)
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                raise NeurorackError(f"jackd exited with status {self.proc.returncode}: {self.log_tail()}")
            try:
                client = jack.Client(f"probe-{uuid.uuid4().hex[:6]}", servername=self.name, no_start_server=True)
                client.close()
                return self
            except jack.JackOpenError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise NeurorackError(f"jackd did not accept clients within {self.timeout:g} s") from None
                time.sleep(0.1)

    def log_text(self) -> str:
        """Everything jackd printed so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 3) -> str:
        """The last lines jackd printed, on one line."""
        return " | ".join(self.log_text().strip().splitlines()[-lines:])

    def xrun_report(self, client: str) -> dict[str, int]:
        """Xruns in the server log, by cause:

        * ``client_late``: ``client`` was still running at a cycle's deadline (or finished after it)
          although the cycle before started on time — the client's own fault;
        * ``client_late_after_driver``: the same right after the driver itself woke late (its timer
          xrun restarts the next cycle at once, so whatever client was running gets flagged);
        * ``client_not_woken``: the OS had not woken the client's thread at the deadline;
        * ``driver``: the dummy driver's timer woke late (a busy or virtual machine);
        * ``other``: xruns of other clients.
        """
        out = {"client_late": 0, "client_late_after_driver": 0, "client_not_woken": 0, "driver": 0, "other": 0}
        lines = self.log_text().splitlines()
        for i, line in enumerate(lines):
            if "JackTimedDriver::Process XRun" in line:
                out["driver"] += 1
            elif "JackEngine::XRun" in line:
                mine = f"client = {client} " in line or f"client {client} " in line
                if mine and ("state = Running" in line or "finished after" in line):
                    before = lines[max(0, i - 2) : i]
                    cascade = any("JackTimedDriver::Process XRun" in b or "Process error" in b for b in before)
                    out["client_late_after_driver" if cascade else "client_late"] += 1
                elif mine:
                    out["client_not_woken"] += 1
                else:
                    out["other"] += 1
        return out

    def stop(self) -> None:
        """Terminate jackd (idempotent)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def cleanup(self) -> None:
        """Stop and delete the log folder."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> JackDummyServer:
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
