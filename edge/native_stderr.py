"""Divert what native libraries write to file descriptor 2 into a logger at debug level.

The TFLite runtime prints an XNNPACK banner on every model load and PortAudio dozens of ALSA/JACK
probe lines per init: harmless, not ours, and under systemd each one is a journal entry. What was
written is kept at debug level, so nothing is lost for whoever asks for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def native_stderr_to_debug(log: logging.Logger, label: str) -> Iterator[None]:
    """Send fd 2 to a temporary file while the block runs, then log each non-empty line as ``label: line``.

    With no writable temporary directory (read-only or full) the chatter goes through unchanged:
    a banner on stderr is better than failing to load a model or open a microphone.
    """
    try:
        sink_file = tempfile.TemporaryFile()  # noqa: SIM115 -- entered below, once we know it exists
    except OSError as exc:
        log.debug("cannot divert %s's native stderr (%s)", label, exc)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with sink_file as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if line.strip():
                    log.debug("%s: %s", label, line)
