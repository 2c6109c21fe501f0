"""The ``jack`` audio backend: one JACK client with the module's jacks as ports.

Ports (client ``neurorack`` by default):

* ``out`` — the mono output (connected to the first two physical playback ports unless
  ``autoconnect`` is off);
* ``gate_1``, ``gate_2`` — audio-rate gate inputs (from a DC-coupled interface), scanned
  sample-accurately;
* ``cv_1`` … ``cv_4`` — audio-rate CV inputs; volts = sample × ``input_volts`` (parameter,
  default 10 V at digital full scale, the usual DC-coupled interface calibration);
* ``midi_in`` — a JACK MIDI input, decoded with the MIDI map, onsets at the event's frame;
* ``in`` — the audio input live transfer takes (``neurorack play --transfer``; unused otherwise),
  connected to ``connect_input`` when given.

The process callback runs on JACK's thread and only calls the engine's process function.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

from neurorack.engine.backends import ProcessFn
from neurorack.errors import NeurorackError

log = logging.getLogger("neurorack.engine.jack")

#: SCHED_FIFO priority asked for JACK's process thread when the server runs without real-time.
REALTIME_PRIORITY = 10
#: Largest JACK period the engine accepts, frames.
MAX_PERIOD = 8192


def _import_jack() -> Any:
    try:
        import jack
    except OSError:
        raise NeurorackError(
            "the JACK library is not installed (Debian/Ubuntu: apt-get install libjack-jackd2-0 jackd2)"
        ) from None
    return jack


def raise_thread_priority() -> bool:
    """Ask for real-time scheduling of the calling thread (JACK's process thread); True when granted.

    A ``--no-realtime`` JACK server leaves its clients' threads at normal priority, where a busy
    machine delays them past the deadline. Asks for SCHED_FIFO at :data:`REALTIME_PRIORITY` when
    permitted (root or CAP_SYS_NICE / rtprio limits), else a lower niceness, else nothing.
    """
    try:
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            return True  # the server made it real-time already
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        return True
    except (OSError, AttributeError):
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
    return False


class JackBackend:
    """A JACK client (opened now, activated by :meth:`start`).

    Args:
        client_name: JACK client name.
        server: JACK server name (default: ``$JACK_DEFAULT_SERVER``, else ``default``).
        autoconnect: connect ``out`` to the physical playback ports on start.
        connect_input: an output port (e.g. ``system:capture_1``) to connect to ``in`` on start.

    Raises:
        NeurorackError: no JACK library, no running server, a period above :data:`MAX_PERIOD`, or a
            ``connect_input`` that names no output port.
    """

    name = "jack"

    def __init__(
        self,
        client_name: str = "neurorack",
        server: str | None = None,
        autoconnect: bool = True,
        connect_input: str | None = None,
    ) -> None:
        jack = _import_jack()
        self._jack = jack
        jack.set_error_function(lambda msg: log.debug("libjack: %s", msg))
        jack.set_info_function(lambda msg: log.debug("libjack: %s", msg))
        servername = server or os.environ.get("JACK_DEFAULT_SERVER") or None
        try:
            self.client = jack.Client(client_name, servername=servername, no_start_server=True)
        except jack.JackOpenError:
            where = f" named {servername!r}" if servername else ""
            raise NeurorackError(
                f"no JACK server{where} is running (start one, e.g. `jackd -d alsa` or `jackd -d dummy`, "
                "or use --audio null)"
            ) from None
        self.sample_rate = int(self.client.samplerate)
        self.period = int(self.client.blocksize)
        if self.period > MAX_PERIOD:
            self.client.close()
            raise NeurorackError(f"JACK period {self.period} is above the {MAX_PERIOD} frames the engine supports")
        self.max_period = MAX_PERIOD
        self.xruns = 0
        self.autoconnect = autoconnect
        self.out = self.client.outports.register("out")
        self.gates = [self.client.inports.register(f"gate_{i}") for i in (1, 2)]
        self.cvs = [self.client.inports.register(f"cv_{i}") for i in (1, 2, 3, 4)]
        self.midi_in = self.client.midi_inports.register("midi_in")
        self.audio_in = self.client.inports.register("in")
        self.connect_input = connect_input
        if connect_input is not None:
            sources = [p.name for p in self.client.get_ports(is_audio=True, is_output=True)]
            if connect_input not in sources:
                self.client.close()
                known = ", ".join(sources[:8]) or "none"
                raise NeurorackError(f"--connect-input: no JACK audio output port {connect_input!r} (ports: {known})")
        self._process: ProcessFn | None = None
        self._active = False
        self._prioritised = False
        #: JACK frame time at the start of the current period (the frame of sample 0 of ``out``).
        self.cycle_frame = 0
        #: The process thread got real-time (SCHED_FIFO) scheduling.
        self.realtime = False
        self.shutdown_reason = ""

        def on_xrun(delay: float) -> None:
            self.xruns += 1

        def on_shutdown(status: Any, reason: str) -> None:
            self.shutdown_reason = str(reason)
            log.warning("JACK server shut down: %s", reason)

        def on_blocksize(blocksize: int) -> None:
            self.period = int(blocksize)
            if blocksize > MAX_PERIOD:
                log.warning("JACK period %d is above %d: output muted", blocksize, MAX_PERIOD)

        self.client.set_xrun_callback(on_xrun)
        self.client.set_shutdown_callback(on_shutdown)
        self.client.set_blocksize_callback(on_blocksize)
        self.client.set_process_callback(self._jack_process)

    @property
    def full_name(self) -> str:
        """The client's name on the server (JACK may add a suffix when the name is taken)."""
        return str(self.client.name)

    def _jack_process(self, frames: int) -> None:
        if not self._prioritised:
            self._prioritised = True
            self.realtime = raise_thread_priority()
        self.cycle_frame = int(self.client.last_frame_time)
        process = self._process
        out = self.out.get_array()
        if process is None or frames > MAX_PERIOD:
            out.fill(0.0)
            return
        g = self.gates
        c = self.cvs
        process(
            out,
            (g[0].get_array(), g[1].get_array()),
            (c[0].get_array(), c[1].get_array(), c[2].get_array(), c[3].get_array()),
            self.midi_in.incoming_midi_events(),
            audio_in=self.audio_in.get_array(),
        )

    def start(self, process: ProcessFn) -> None:
        """Activate the client (and connect the output to the physical playback ports when asked)."""
        self._process = process
        if self._active:
            return
        self.client.activate()
        self._active = True
        if self.autoconnect:
            try:
                playback = self.client.get_ports(is_physical=True, is_input=True, is_audio=True)
                for port in playback[:2]:
                    self.client.connect(self.out, port)
            except self._jack.JackError as exc:
                log.warning("could not connect the output to the playback ports: %s", exc)
        if self.connect_input is not None:
            try:
                self.client.connect(self.connect_input, self.audio_in)
            except self._jack.JackError as exc:
                raise NeurorackError(f"cannot connect {self.connect_input} to the input: {exc}") from None

    def stop(self) -> None:
        """Deactivate and close the client (idempotent)."""
        self._process = None
        if self._active:
            with contextlib.suppress(self._jack.JackError):
                self.client.deactivate()
            self._active = False
        with contextlib.suppress(self._jack.JackError):
            self.client.close()
