"""Audio backends: who calls the engine's process function, and at which rate.

Every backend offers ``name``, ``sample_rate`` (Hz), ``period`` (frames per call), ``xruns``,
``cycle_frame`` (frame time of the current period's first sample),
``start(process)`` and ``stop()``. ``process(out, gates, cvs, midi, audio_in=None)`` fills
``out: float32[n]`` in place; ``gates`` and ``cvs`` are the audio-rate input blocks (or None), ``midi``
an iterable of ``(offset, bytes)`` (or None), ``audio_in`` the audio input block (``float32[n]``, the
signal live transfer takes) or None (no input: silence). Backends without an audio input call
``process`` with the first four arguments only.

* ``jack`` (:mod:`neurorack.engine.jack_backend`): a JACK client with audio and MIDI ports.
* ``null`` (:mod:`neurorack.engine.null_backend`): a thread calling ``process`` at the period
  rate, for machines without audio (tests, benchmarks, rendering with ``--record``); its audio
  input is silence unless a signal is fed to it.
* ``portaudio``: not available in this build (see :func:`open_backend`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from neurorack.errors import NeurorackError


class ProcessFn(Protocol):
    """The process function a backend calls once per period (see the module docstring)."""

    def __call__(
        self,
        out: np.ndarray,
        gates: Sequence[np.ndarray] | None,
        cvs: Sequence[np.ndarray] | None,
        midi: Iterable[tuple[int, bytes]] | None,
        audio_in: np.ndarray | None = None,
    ) -> None: ...


BACKENDS: tuple[str, ...] = ("jack", "portaudio", "null")


class AudioBackend(Protocol):
    """What the engine needs from an audio backend."""

    name: str
    sample_rate: int
    period: int
    max_period: int
    xruns: int
    cycle_frame: int

    def start(self, process: ProcessFn) -> None:
        """Begin calling ``process`` once per period."""

    def stop(self) -> None:
        """Stop calling ``process`` and release the device (idempotent)."""


def open_backend(
    kind: str,
    *,
    sample_rate: int,
    period: int,
    client_name: str = "neurorack",
    server: str | None = None,
    autoconnect: bool = True,
    connect_input: str | None = None,
) -> AudioBackend:
    """Open the backend ``kind`` (not started yet).

    Args:
        kind: ``"jack"``, ``"portaudio"`` or ``"null"``.
        sample_rate: Hz, for backends that choose it (null); JACK uses its server's rate.
        period: frames per call, for backends that choose it (null); JACK uses its server's period.
        client_name: JACK client name.
        server: JACK server name (default: ``$JACK_DEFAULT_SERVER`` or ``default``).
        autoconnect: connect the JACK output to the physical playback ports.
        connect_input: JACK only: an output port (e.g. ``system:capture_1``) to connect to the audio input ``in``.

    Raises:
        NeurorackError: unknown kind, no JACK library or server, portaudio unavailable, ``connect_input``
            with another backend than JACK or naming no port.
    """
    if connect_input is not None and kind != "jack":
        raise NeurorackError("--connect-input needs --audio jack (only JACK has an audio input port)")
    if kind == "null":
        from neurorack.engine.null_backend import NullBackend

        return NullBackend(sample_rate=sample_rate, period=period)
    if kind == "jack":
        from neurorack.engine.jack_backend import JackBackend

        return JackBackend(client_name=client_name, server=server, autoconnect=autoconnect, connect_input=connect_input)
    if kind == "portaudio":
        raise NeurorackError(
            "the portaudio backend is not part of this build (sounddevice is not a dependency); "
            "use --audio jack (with a JACK server) or --audio null"
        )
    raise NeurorackError(f"unknown audio backend {kind!r}; choose one of {', '.join(BACKENDS)}")
