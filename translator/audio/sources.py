"""Sources built from other sources: pacing on the clock, and digital silence after the audio.

Iterating a :class:`~translator.audio.files.FileSource` directly yields blocks as fast as they
decode (tests, batch translation); wrap it in :class:`PacedSource` to make it arrive like a
microphone, which is what the latency benchmark needs (audio on the clock, compute takes what it
takes).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import replace

import numpy as np

from translator.audio.blocks import FILE_BLOCK_SECONDS, block_size
from translator.events import SAMPLE_RATE, AudioBlock


class PacedSource:
    """Re-emits blocks on the clock, as a microphone would deliver them.

    A block is released once its last sample has been "spoken" (``t0 + end / speed``, with ``t0``
    when iteration starts), and its ``wall`` is restamped at release, so latencies measured
    downstream include the wait for the audio itself. A source slower than the clock is passed on
    as it comes.
    """

    def __init__(self, source: Iterable[AudioBlock], *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.source = source
        self.speed = speed

    def __iter__(self) -> Iterator[AudioBlock]:
        t0 = time.monotonic()
        origin: float | None = None
        for block in self.source:
            if origin is None:
                origin = block.start
            due = t0 + (block.end - origin) / self.speed
            now = time.monotonic()
            while now < due:
                time.sleep(due - now)
                now = time.monotonic()
            yield replace(block, wall=now)


def silence_source(seconds: float, *, block_seconds: float = FILE_BLOCK_SECONDS, start: float = 0.0) -> Iterator[AudioBlock]:
    """``seconds`` of digital silence from audio time ``start``, in blocks like a FileSource's."""
    size = block_size(block_seconds)
    total = max(0, round(seconds * SAMPLE_RATE))
    for offset in range(0, total, size):
        n = min(size, total - offset)
        yield AudioBlock(np.zeros(n, dtype=np.float32), start + offset / SAMPLE_RATE, time.monotonic())


def with_trailing_silence(
    source: Iterable[AudioBlock], seconds: float, *, block_seconds: float = FILE_BLOCK_SECONDS
) -> Iterator[AudioBlock]:
    """The source, then ``seconds`` of silence on the same audio clock.

    A file that stops mid-word never shows the VAD a pause; the silence lets the last utterance
    reach its endpoint the same way live speech does, instead of through a special flush.
    """
    end = 0.0
    for block in source:
        end = block.end
        yield block
    yield from silence_source(seconds, block_seconds=block_seconds, start=end)
