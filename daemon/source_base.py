"""What every audio source shares: the interface the pipeline reads, its counters and status values.

``daemon.sources`` (the file source, ``make_source``) and ``daemon.mic`` (the microphone) both build
on this module and never import each other at module level: ``make_source`` imports the microphone
only when one is used (PyAudio/PortAudio stay unloaded for a file source).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge.decide.states import UNAVAILABLE as UNAVAILABLE  # the state name is defined once, in edge.decide

FloatArray = npt.NDArray[np.float32]
OK = "ok"  # a source status, not a published state


@dataclass
class SourceStats:
    """Counters since start; written by the source, read by the pipeline (ints: atomic under the GIL)."""

    overflows: int = 0  # device-side input overflows (audio lost before we read it)
    dropped_chunks: int = 0  # chunks dropped because the queue was full (pipeline too slow)
    reconnects: int = 0  # successful reopenings after the device vanished


class AudioSource(Protocol):
    """What the pipeline needs from a source."""

    sample_rate: int  # Hz of the chunks returned by read()
    stats: SourceStats

    def open(self) -> None: ...

    def read(self, timeout: float) -> FloatArray | None:
        """The next mono chunk, or None when nothing arrived within ``timeout`` seconds."""
        ...

    @property
    def finished(self) -> bool:
        """True once no more audio will ever come (a file source at its end, not looping)."""
        ...

    @property
    def status(self) -> str:
        """``ok`` or ``unavailable`` (device gone, reopening)."""
        ...

    @property
    def generation(self) -> int:
        """Incremented whenever the audio is discontinuous (a reopened device)."""
        ...

    def close(self) -> None: ...
