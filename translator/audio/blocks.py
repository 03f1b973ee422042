"""Audio blocks: how long they are, and cutting a stream of samples into them on the audio clock.

A source hands the pipeline :class:`~translator.events.AudioBlock` s of a fixed length (the last
one before a gap or the end may be shorter). The file reader and the microphone both cut their
samples with :class:`Blocker`, so they agree on what a block is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from translator.events import SAMPLE_RATE, AudioBlock

LIVE_BLOCK_SECONDS = 0.032 * 4
"""What the microphone delivers: four of the VAD's 32 ms frames, so live audio reaches the
segmenter every 128 ms. Latency depends on it (an endpoint is seen when the block holding it
arrives), which is why the benchmark feeds its clips in blocks of this size too."""

FILE_BLOCK_SECONDS = LIVE_BLOCK_SECONDS * 2
"""What a file is read in: twice the live block. Nobody waits for a file's next block (it decodes
faster than real time), so the larger block halves the per-block overhead of decoding and of the
pipeline's loop; the segmenter gives the same utterances whatever the block size."""


def block_size(seconds: float) -> int:
    """Samples per block of ``seconds`` at 16 kHz (at least one); raises ValueError if not positive."""
    if seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {seconds}")
    return max(1, round(seconds * SAMPLE_RATE))


class Blocker:
    """Collects 16 kHz pieces of any length and cuts them into blocks of ``size`` samples.

    ``clock`` is the audio time of the next block's first sample, in 16 kHz samples; :meth:`skip`
    moves it on over audio that never arrived (after :meth:`flush`, so the blocks either side of
    the gap stay whole). A block's ``wall`` is the one given with the piece that completed it, or
    the time it is cut when none is given.
    """

    def __init__(self, size: int, clock: int = 0) -> None:
        self.size = size
        self.clock = clock
        self._pending: list[np.ndarray] = []
        self._count = 0

    @property
    def held(self) -> int:
        """Samples taken but not yet handed on in a block."""
        return self._count

    def add(self, piece: np.ndarray, wall: float | None = None) -> Iterator[AudioBlock]:
        """Take ``piece``; yield every block it completes."""
        if len(piece):
            self._pending.append(piece)
            self._count += len(piece)
        if self._count < self.size:
            return
        buf = np.concatenate(self._pending)
        k = 0
        while len(buf) - k >= self.size:
            # Copies, so a consumer holding one block does not pin the whole buffer.
            yield self._block(buf[k : k + self.size].copy(), wall)
            k += self.size
        self._pending, self._count = [buf[k:]], len(buf) - k

    def flush(self, wall: float | None = None) -> Iterator[AudioBlock]:
        """What is held, as one short block (nothing if nothing is held)."""
        if self._count:
            rest = np.concatenate(self._pending)
            self._pending, self._count = [], 0
            yield self._block(rest, wall)

    def skip(self, samples: int) -> None:
        """Move the clock over ``samples`` of audio that never came; call :meth:`flush` first."""
        assert not self._count, "flush before skipping"
        self.clock += samples

    def _block(self, samples: np.ndarray, wall: float | None) -> AudioBlock:
        block = AudioBlock(samples, self.clock / SAMPLE_RATE, time.monotonic() if wall is None else wall)
        self.clock += len(samples)
        return block
