"""The lock-free queue control surfaces post to and the audio thread drains each period.

``collections.deque.append`` and ``popleft`` are atomic in CPython, so any number of
producer threads (OSC, MIDI, the device, the Python API) can post while the audio thread
drains at the start of every period, with no lock. Events are small tuples built by the
producer; the audio thread only unpacks them.
"""

from __future__ import annotations

from collections import deque

#: Event kinds.
GATE = 0  # (GATE, index 1|2, high 0|1, velocity 0..1)
PANIC = 1  # (PANIC, 0, 0, 0.0): silence every voice
NOTE = 2  # (NOTE, MIDI pitch, on 1 | off 0, velocity 1..127): the note voices
PROGRAM = 3  # (PROGRAM, program, 0, 0.0): the note voices' instrument

Event = tuple[int, int, int, float]


class EventQueue:
    """A bounded multi-producer, single-consumer queue of :data:`Event` tuples.

    Args:
        maxlen: oldest events are dropped beyond this (a flood never grows memory).
    """

    def __init__(self, maxlen: int = 1024) -> None:
        self._q: deque[Event] = deque(maxlen=maxlen)

    def post(self, kind: int, index: int = 0, value: int = 0, velocity: float = 1.0) -> None:
        """Append one event (any thread)."""
        self._q.append((kind, index, value, velocity))

    def pop(self) -> Event | None:
        """The oldest event, or None (audio thread)."""
        try:
            return self._q.popleft()
        except IndexError:
            return None

    def __len__(self) -> int:
        return len(self._q)
