"""Audio backends: who calls the engine's process function, and at which rate.

Every backend offers ``name``, ``sample_rate`` (Hz), ``period`` (frames per call), ``xruns``,
``cycle_frame`` (frame time of the current period's first sample),
``start(process)`` and ``stop()``. ``process(out, gates, cvs, midi)`` fills ``out: float32[n]``
in place; ``gates`` and ``cvs`` are the audio-rate input blocks (or None), ``midi`` an iterable of
``(offset, bytes)`` (or None).

* ``jack`` (:mod:`neurorack.engine.jack_backend`): a JACK client with audio and MIDI ports.
* ``null`` (:mod:`neurorack.engine.null_backend`): a thread calling ``process`` at the period
  rate, for machines without audio (tests, benchmarks, rendering with ``--record``).
* ``portaudio``: not available in this build (see :func:`open_backend`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

import numpy as np

from neurorack.errors import NeurorackError

#: The process function a backend calls once per period.
ProcessFn = Callable[
    [np.ndarray, Sequence[np.ndarray] | None, Sequence[np.ndarray] | None, Iterable[tuple[int, bytes]] | None], None
]

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
) -> AudioBackend:
    """Open the backend ``kind`` (not started yet).

    Args:
        kind: ``"jack"``, ``"portaudio"`` or ``"null"``.
        sample_rate: Hz, for backends that choose it (null); JACK uses its server's rate.
        period: frames per call, for backends that choose it (null); JACK uses its server's period.
        client_name: JACK client name.
        server: JACK server name (default: ``$JACK_DEFAULT_SERVER`` or ``default``).
        autoconnect: connect the JACK output to the physical playback ports.

    Raises:
        NeurorackError: unknown kind, no JACK library or server, portaudio unavailable.
    """
    if kind == "null":
        from neurorack.engine.null_backend import NullBackend

        return NullBackend(sample_rate=sample_rate, period=period)
    if kind == "jack":
        from neurorack.engine.jack_backend import JackBackend

        return JackBackend(client_name=client_name, server=server, autoconnect=autoconnect)
    if kind == "portaudio":
        raise NeurorackError(
            "the portaudio backend is not part of this build (sounddevice is not a dependency); "
            "use --audio jack (with a JACK server) or --audio null"
        )
    raise NeurorackError(f"unknown audio backend {kind!r}; choose one of {', '.join(BACKENDS)}")
