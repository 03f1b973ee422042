"""Wyoming's raw PCM (``rate``, ``width``, ``channels`` and bytes) to and from the pipeline's samples.

A client may send any format the protocol can describe; Home Assistant sends 16 kHz 16-bit mono,
a satellite its microphone's own rate. Whatever is supported is converted here with the project's
audio helpers (downmix, scale, resample without edges between chunks); the rest is refused with a
message that says what to send instead.
"""

from __future__ import annotations

import numpy as np

from translator.audio.samples import StreamResampler, to_mono_float32

WIDTHS: dict[int, np.dtype] = {1: np.dtype("u1"), 2: np.dtype("<i2"), 4: np.dtype("<i4")}
"""Sample width in bytes -> how WAV stores it (8-bit PCM is unsigned); 24-bit is not taken."""
RATES = range(8000, 192001)
MAX_CHANNELS = 8

OUTPUT_WIDTH = 2
"""Synthesised speech goes out as 16-bit mono, what every Wyoming client plays."""


class FormatError(ValueError):
    """Audio in a format this server does not take; ``str()`` says what to send."""


def check_format(rate: int, width: int, channels: int) -> None:
    if width not in WIDTHS:
        raise FormatError(f"audio of {width}-byte samples is not supported; send 16-bit (width 2) PCM")
    if rate not in RATES:
        raise FormatError(f"audio at {rate} Hz is not supported; send 8000-192000 Hz (16000 is best)")
    if not 1 <= channels <= MAX_CHANNELS:
        raise FormatError(f"audio with {channels} channels is not supported; send 1 to {MAX_CHANNELS}")


class Decoder:
    """One audio stream's chunks, all in the format its ``audio-start`` announced, as 16 kHz mono float32."""

    def __init__(self, rate: int, width: int, channels: int) -> None:
        check_format(rate, width, channels)
        self.format = (rate, width, channels)
        self._frame = width * channels
        self._resample = StreamResampler(rate)

    def __call__(self, audio: bytes, rate: int, width: int, channels: int) -> np.ndarray:
        if (rate, width, channels) != self.format:
            raise FormatError(
                f"audio-chunk of {rate} Hz/{width} bytes/{channels} channels inside a stream announced as "
                f"{self.format[0]} Hz/{self.format[1]} bytes/{self.format[2]} channels; keep one format per stream"
            )
        if len(audio) % self._frame:
            raise FormatError(f"audio-chunk of {len(audio)} bytes is not a whole number of {self._frame}-byte frames")
        frames = np.frombuffer(audio, dtype=WIDTHS[width]).reshape(-1, channels)
        return self._resample(to_mono_float32(frames))

    def tail(self) -> np.ndarray:
        """What the resampler still holds at the end of the stream."""
        return self._resample.tail()


def encode(samples: np.ndarray) -> bytes:
    """float32 mono in [-1, 1] as 16-bit little-endian PCM."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
