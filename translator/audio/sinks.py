"""Where synthesised speech goes: the :class:`AudioSink` protocol, a WAV file, or memory.

A live speaker is a sink too (:class:`~translator.audio.speaker.SpeakerSink`); it lives with the
device code because it needs PortAudio.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np
import soundfile as sf

from translator.audio.files import sndfile_reason
from translator.audio.samples import at_rate, to_mono_float32
from translator.errors import OutputError

# sndfile.h: rewrite the header after every write, so the WAV on disk is complete at all times.
# soundfile does not export the constant, hence the raw value.
_SFC_SET_UPDATE_HEADER_AUTO = 0x1061


class AudioSink(Protocol):
    """Where synthesised speech goes; chunks may come at any sample rate.

    ``write`` raises :class:`~translator.errors.TranslatorError` once per failure and then drops
    what it is given until the sink recovers (a device that comes back) or for good (a file), so
    the pipeline can report each failure once and keep every other output going.
    """

    def write(self, samples: np.ndarray, sample_rate: int) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class QueuedSink(Protocol):
    """A sink that plays in real time (a speaker), so what it was given may wait to be heard."""

    def backlog(self) -> float:
        """Seconds of speech given and not yet heard."""
        ...


class WavSink:
    """16-bit PCM WAV written as speech arrives.

    The header is rewritten after every write, so the file on disk is a complete WAV holding all
    audio so far even if the process dies before :meth:`close`. Always WAV, whatever the extension.
    After a failed write (a full disk) the file keeps what was written before it and later speech
    is dropped, rather than written after a hole; :attr:`error` holds the failure.
    """

    def __init__(self, path: str | Path, sample_rate: int) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        try:
            # Python's own open gives a reason ("No such file or directory"); libsndfile's does not.
            self.path.open("wb").close()
            self._file = sf.SoundFile(self.path, "w", samplerate=sample_rate, channels=1, format="WAV", subtype="PCM_16")
        except OSError as e:
            raise OutputError(
                f"{self.path}: cannot create output file ({e.strerror}); choose a path in an existing, writable folder"
            ) from None
        except sf.LibsndfileError as e:
            raise OutputError(
                f"{self.path}: cannot create output file ({sndfile_reason(e.error_string)}); choose another path"
            ) from None
        sf._snd.sf_command(self._file._file, _SFC_SET_UPDATE_HEADER_AUTO, sf._ffi.NULL, sf._snd.SF_TRUE)
        self.error: OutputError | None = None

    def write(self, samples: np.ndarray, sample_rate: int) -> None:
        if self.error is not None:
            return
        mono = at_rate(to_mono_float32(samples), sample_rate, self.sample_rate)
        try:
            self._file.write(mono)
        except (sf.LibsndfileError, OSError) as e:
            reason = sndfile_reason(e.error_string) if isinstance(e, sf.LibsndfileError) else e.strerror
            self.error = OutputError(
                f"{self.path}: writing speech failed ({reason}); the file has the speech "
                "before this point; free some disk space and run again"
            )
            raise self.error from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> WavSink:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class MemorySink:
    """Keeps the speech in memory, for tests and the benchmark.

    Chunks are resampled to ``sample_rate`` like :class:`WavSink` does; with ``None`` the first
    chunk's rate is adopted.
    """

    def __init__(self, sample_rate: int | None = None) -> None:
        self.sample_rate = sample_rate
        self.chunks: list[np.ndarray] = []
        self.closed = False

    def write(self, samples: np.ndarray, sample_rate: int) -> None:
        if self.sample_rate is None:
            self.sample_rate = sample_rate
        self.chunks.append(at_rate(to_mono_float32(samples), sample_rate, self.sample_rate))

    def close(self) -> None:
        self.closed = True

    @property
    def audio(self) -> np.ndarray:
        """Everything written so far, as one float32 array at :attr:`sample_rate`."""
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)
