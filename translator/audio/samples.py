"""Samples into the pipeline's format: mono float32 in [-1, 1], at any rate asked for.

Everything after a source assumes :data:`~translator.events.SAMPLE_RATE` mono float32 in [-1, 1],
and every sink takes speech at any rate: each conversion (downmixing, scaling, clipping,
resampling) is written here once, for files, devices and sinks alike.
"""

from __future__ import annotations

import numpy as np
import soxr

from translator.events import SAMPLE_RATE

RESAMPLE_QUALITY = "HQ"
"""soxr's quality for every resampling, so a file, a microphone and a sink treat audio alike."""


def to_mono_float32(data: np.ndarray) -> np.ndarray:
    """Any PCM array (1-D, or 2-D as frames x channels; int or float) as mono float32 in [-1, 1].

    Channels are averaged rather than one picked, so a recording with speech on one side only is
    still heard. Non-finite samples become silence or full scale, because a single NaN would
    spread through the resampler's filter. Always returns a new array: callers may keep it.
    """
    a = np.asarray(data)
    if a.ndim not in (1, 2):
        raise ValueError(f"expected samples as (frames,) or (frames, channels), got shape {a.shape}")
    if a.dtype.kind == "f":
        x = a.mean(axis=1, dtype=np.float32) if a.ndim == 2 else a.astype(np.float32)
        if not np.isfinite(x).all():
            np.nan_to_num(x, copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    elif a.dtype.kind in "iu":
        half = float(2 ** (a.dtype.itemsize * 8 - 1))
        offset = half if a.dtype.kind == "u" else 0.0
        x = (a.mean(axis=1, dtype=np.float64) if a.ndim == 2 else a.astype(np.float64)) - offset
        x = (x / half).astype(np.float32)
    else:
        raise TypeError(f"expected integer or float samples, got {a.dtype}")
    return clipped(x)


def clipped(x: np.ndarray) -> np.ndarray:
    """``x`` clipped to [-1, 1] in place (resampling overshoots full scale near loud edges)."""
    return np.clip(x, -1.0, 1.0, out=x)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """One-shot resampling of a whole chunk (frames, or frames x channels) to float32.

    For a stream cut into pieces use :class:`StreamResampler` instead: resampling pieces one by one
    leaves a filter edge at every cut.
    """
    x = np.asarray(samples, dtype=np.float32)
    if src_rate == dst_rate:
        return x
    return soxr.resample(x, src_rate, dst_rate, quality=RESAMPLE_QUALITY)


def at_rate(mono: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """A whole chunk of mono speech at ``dst_rate``, in [-1, 1] (what every sink plays or stores)."""
    return mono if src_rate == dst_rate else clipped(resample(mono, src_rate, dst_rate))


class StreamResampler:
    """Mono float32 pieces at ``rate`` to 16 kHz, clipped, without an edge between pieces.

    At 16 kHz already, pieces pass through untouched. Call :meth:`tail` at the end of the stream
    (or before a gap) for the samples the filter still holds; the resampler is then spent.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._stream = (
            None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        )

    def __call__(self, mono: np.ndarray) -> np.ndarray:
        return mono if self._stream is None else clipped(self._stream.resample_chunk(mono))

    def tail(self) -> np.ndarray:
        """What the filter still holds (nothing at 16 kHz)."""
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return clipped(self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))


def speech_span(x: np.ndarray, below_peak_db: float = 35.0) -> tuple[int, int]:
    """First and last sample of the 10 ms windows (at 16 kHz) within ``below_peak_db`` of the
    loudest one: where a recording's speech starts and ends, its leading and trailing silence (or
    room noise) left out."""
    window = SAMPLE_RATE // 100
    n = len(x) // window
    if n == 0:
        return 0, len(x)
    rms = np.sqrt(np.mean(np.square(x[: n * window].reshape(n, window), dtype=np.float64), axis=1))
    db = 20 * np.log10(rms + 1e-9)
    loud = np.flatnonzero(db > db.max() - below_peak_db)
    return int(loud[0] * window), int((loud[-1] + 1) * window)
