"""The recent part of an audio stream, addressed by absolute sample index (the segmenter's memory)."""

from __future__ import annotations

import numpy as np

from translator.events import SAMPLE_RATE


class SampleBuffer:
    """The recent part of the stream, addressed by absolute sample index.

    Appends are amortised and the front can be dropped, so a live stream of any length costs no
    more memory than the longest utterance.
    """

    def __init__(self) -> None:
        self._data = np.zeros(SAMPLE_RATE, dtype=np.float32)
        self._first = 0
        self._len = 0

    @property
    def end(self) -> int:
        return self._first + self._len

    def append(self, x: np.ndarray) -> None:
        need = self._len + len(x)
        if need > len(self._data):
            grown = np.zeros(max(need, 2 * len(self._data)), dtype=np.float32)
            grown[: self._len] = self._data[: self._len]
            self._data = grown
        self._data[self._len : need] = x
        self._len = need

    def drop_before(self, index: int) -> None:
        k = index - self._first
        if k > 0:
            self._data[: self._len - k] = self._data[k : self._len]
            self._first = index
            self._len -= k

    def view(self, a: int, b: int) -> np.ndarray:
        return self._data[a - self._first : b - self._first]

    def copy(self, a: int, b: int) -> np.ndarray:
        return self.view(a, b).copy()
