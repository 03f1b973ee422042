"""Audio in and out: files of any format become 16 kHz mono blocks; synthesised speech goes to a sink.

Everything after the source assumes :data:`~translator.events.SAMPLE_RATE` mono float32 in
[-1, 1], so every conversion (decoding, downmixing, resampling, clipping) happens here, once.
Files are decoded and resampled block by block with a streaming resampler, so a two-hour recording
costs no more memory than a two-second one.

Pacing: iterating a :class:`FileSource` directly yields blocks as fast as they decode (tests,
batch translation); wrap it in :class:`PacedSource` to make it arrive like a microphone, which is
what the latency benchmark needs (audio on the clock, compute takes what it takes).
"""

from __future__ import annotations

import re
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
import soundfile as sf
import soxr

from translator.errors import InputError, OutputError
from translator.events import SAMPLE_RATE, AudioBlock

DEFAULT_BLOCK_SECONDS = 0.032 * 8
"""Eight 32 ms VAD frames: small enough for prompt endpoints, large enough to keep overhead low."""

RESAMPLE_QUALITY = "HQ"

TRUNCATION_TOLERANCE = 0.05
"""Seconds a file may fall short of its header before we call it truncated (MP3 lengths are estimates)."""

_CONVERT_HINT = "convert it to WAV/FLAC/OGG/MP3"

# libsndfile's log when a WAV/AIFF data chunk claims more bytes than the file holds, e.g.
# "data : 93594 (should be 46776)". libsndfile silently shortens such files; we want to say so.
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)

# sndfile.h: rewrite the header after every write, so the WAV on disk is complete at all times.
# soundfile does not export the constant, hence the raw value.
_SFC_SET_UPDATE_HEADER_AUTO = 0x1061


# --- helpers the microphone code reuses ---------------------------------------------------------


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
    return np.clip(x, -1.0, 1.0, out=x)


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """One-shot resampling of a whole chunk (frames, or frames x channels) to float32.

    For a stream cut into pieces use ``soxr.ResampleStream`` instead: resampling pieces one by one
    leaves a filter edge at every cut.
    """
    x = np.asarray(samples, dtype=np.float32)
    if src_rate == dst_rate:
        return x
    return soxr.resample(x, src_rate, dst_rate, quality=RESAMPLE_QUALITY)


def _reason(libsndfile_message: str) -> str:
    """libsndfile's "Error : flac decoder lost sync." as "flac decoder lost sync", to fit in parentheses."""
    return libsndfile_message.strip().removeprefix("Error :").strip().rstrip(".")


def _clipped(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -1.0, 1.0, out=x)


# --- decoders -----------------------------------------------------------------------------------


class _DecodeFailed(Exception):
    """The decoder gave up mid-stream, after handing out everything it could."""


class _Decoder(Protocol):
    rate: int
    channels: int
    frames: int | None
    """Frames the header promises (None if it does not say)."""

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """(frames, channels) float32 arrays in order; raises _DecodeFailed when decoding breaks."""
        ...


class _SoundfileDecoder:
    def __init__(self, path: Path) -> None:
        self.path = path
        with sf.SoundFile(path) as f:  # raises sf.LibsndfileError when libsndfile cannot read it
            self.rate = f.samplerate
            self.channels = f.channels
            frames = f.frames
            log = f.extra_info
        self.frames: int | None = frames
        short = _SHORT_CHUNK.search(log)
        if short and int(short.group(1)) > int(short.group(2)):
            claimed, present = int(short.group(1)), int(short.group(2))
            # libsndfile has already shortened ``frames`` to what is present; recover the promise.
            self.frames = round(frames * claimed / present) if present else None

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        with sf.SoundFile(self.path) as f:
            while True:
                buf = np.empty((size, f.channels), dtype=np.float32)
                before = f.tell()
                try:
                    n = len(f.read(size, dtype="float32", always_2d=True, out=buf))
                except sf.LibsndfileError as e:
                    # libsndfile decoded part of this read before failing: keep that part.
                    try:
                        got = min(max(f.tell() - before, 0), size)
                    except sf.LibsndfileError:
                        got = 0
                    if got:
                        yield buf[:got]
                    raise _DecodeFailed(_reason(e.error_string)) from e
                if n == 0:
                    return
                yield buf[:n]


class _AvDecoder:
    """For what libsndfile cannot read (m4a, webm, ...), if PyAV is installed."""

    def __init__(self, path: Path) -> None:
        import av  # noqa: PLC0415 (optional dependency)

        self.path = path
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise _DecodeFailed("no audio stream")
            stream = container.streams.audio[0]
            self.rate = stream.codec_context.sample_rate
            self.channels = stream.codec_context.layout.nb_channels
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / av.time_base
            else:
                seconds = None
        if not self.rate or not self.channels:
            raise _DecodeFailed("no sample rate or channel layout in the audio stream")
        self.frames = None if seconds is None else round(seconds * self.rate)

    def chunks(self, size: int) -> Iterator[np.ndarray]:  # noqa: ARG002 (frames come as the codec cuts them)
        import av  # noqa: PLC0415

        # Planar float keeps the rate and channels as they are: downmixing and resampling stay
        # in one place (FileSource) whatever the decoder.
        resampler = av.AudioResampler(format="fltp")
        with av.open(str(self.path)) as container:
            stream = container.streams.audio[0]
            try:
                for frame in container.decode(stream):
                    for out in resampler.resample(frame):
                        yield out.to_ndarray().T
                for out in resampler.resample(None):
                    yield out.to_ndarray().T
            except av.FFmpegError as e:
                raise _DecodeFailed(str(e)) from e


def _open_decoder(path: Path) -> _Decoder:
    try:
        return _SoundfileDecoder(path)
    except sf.LibsndfileError as e:
        reason = _reason(e.error_string)
    try:
        import av  # noqa: PLC0415 (optional dependency)
    except ImportError:
        pass
    else:
        try:
            return _AvDecoder(path)
        except (av.FFmpegError, _DecodeFailed):
            pass  # libsndfile's reason is the more telling one for the formats we promise
    raise InputError(f"{path}: not a readable audio file ({reason}); {_CONVERT_HINT}")


def _check_path(path: Path) -> None:
    """Fail with a plain reason before libsndfile, whose "System error." explains nothing."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror}); check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is a directory, not an audio file; give the path of a recording")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO with no writer would block forever; decoders also need to seek.
        raise InputError(f"{path}: not a regular file; save the audio to a file first")
    if st.st_size == 0:
        raise InputError(f"{path}: no audio in file (the file is empty); check the recording")
    try:
        path.open("rb").close()
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None


# --- sources ------------------------------------------------------------------------------------


class FileSource:
    """An audio file as 16 kHz mono float32 :class:`AudioBlock` s, decoded as it is iterated.

    Iterating yields blocks as fast as they decode; each iteration re-reads the file from the
    start. Blocks are ``block_size`` samples except the last. A file that breaks off early yields
    what could be decoded and then ends, leaving the reason in :attr:`warning`: a long recording
    with a damaged tail is still worth translating.
    """

    def __init__(self, path: str | Path, *, block_seconds: float = DEFAULT_BLOCK_SECONDS) -> None:
        if block_seconds <= 0:
            raise ValueError(f"block_seconds must be positive, got {block_seconds}")
        self.path = Path(path)
        self.block_size = max(1, round(block_seconds * SAMPLE_RATE))
        self.warning: str | None = None
        _check_path(self.path)
        self._decoder = _open_decoder(self.path)
        self.source_rate: int = self._decoder.rate
        self.channels: int = self._decoder.channels
        frames = self._decoder.frames
        self.duration: float | None = None if frames is None else frames / self.source_rate
        self._read_size = -(-self.block_size * self.source_rate // SAMPLE_RATE)
        self._probe()

    def _probe(self) -> None:
        """Decode the first block now, so a file with no usable audio fails before models load."""
        chunks = self._decoder.chunks(self._read_size)
        try:
            first = next((c for c in chunks if len(c)), None)
        except _DecodeFailed as e:
            raise InputError(f"{self.path}: not a readable audio file ({e}); {_CONVERT_HINT}") from None
        finally:
            chunks.close()
        if first is None and self._decoder.frames == 0:
            raise InputError(f"{self.path}: no audio in file (0 samples); check the recording")
        if first is None:
            raise InputError(f"{self.path}: no audio could be decoded (the file is damaged or cut off); export or copy it again")

    def __iter__(self) -> Iterator[AudioBlock]:
        size = self.block_size
        pending: list[np.ndarray] = []
        count = 0
        emitted = 0
        for piece in self._mono_16k():
            pending.append(piece)
            count += len(piece)
            if count < size:
                continue
            buf = np.concatenate(pending)
            k = 0
            while len(buf) - k >= size:
                # Copies, so a consumer holding one block does not pin the whole buffer.
                yield AudioBlock(buf[k : k + size].copy(), emitted / SAMPLE_RATE, time.monotonic())
                emitted += size
                k += size
            pending = [buf[k:]]
            count = len(buf) - k
        if count:
            yield AudioBlock(np.concatenate(pending), emitted / SAMPLE_RATE, time.monotonic())

    def _mono_16k(self) -> Iterator[np.ndarray]:
        """Decoded pieces of any length, already mono, 16 kHz and clipped."""
        stream = None
        if self.source_rate != SAMPLE_RATE:
            stream = soxr.ResampleStream(self.source_rate, SAMPLE_RATE, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        frames = 0
        reason = None
        chunks = self._decoder.chunks(self._read_size)
        try:
            for chunk in chunks:
                frames += len(chunk)
                mono = to_mono_float32(chunk)
                yield mono if stream is None else _clipped(stream.resample_chunk(mono))
        except _DecodeFailed as e:
            if frames == 0:
                raise InputError(f"{self.path}: not a readable audio file ({e}); {_CONVERT_HINT}") from None
            reason = str(e)
        finally:
            chunks.close()
        if stream is not None:
            yield _clipped(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        self._note_shortfall(frames, reason)

    def _note_shortfall(self, frames: int, reason: str | None) -> None:
        got = frames / self.source_rate
        short = self.duration is not None and self.duration - got > TRUNCATION_TOLERANCE
        if not (short or reason):
            return
        of = f" of {self.duration:.1f} s" if self.duration is not None else ""
        why = f" ({reason})" if reason else ""
        self.warning = f"truncated after {got:.1f} s{of}{why}; the rest of the file was skipped"

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r}, {self.source_rate} Hz, {self.channels} ch, {self.duration} s)"


def open_file_source(path: str | Path, *, block_seconds: float = DEFAULT_BLOCK_SECONDS) -> FileSource:
    """Open an audio file for the pipeline; every problem with it is raised here as InputError."""
    return FileSource(path, block_seconds=block_seconds)


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


def silence_source(
    seconds: float, *, block_seconds: float = DEFAULT_BLOCK_SECONDS, start: float = 0.0
) -> Iterator[AudioBlock]:
    """``seconds`` of digital silence from audio time ``start``, in blocks like a FileSource's."""
    size = max(1, round(block_seconds * SAMPLE_RATE))
    total = max(0, round(seconds * SAMPLE_RATE))
    for offset in range(0, total, size):
        n = min(size, total - offset)
        yield AudioBlock(np.zeros(n, dtype=np.float32), start + offset / SAMPLE_RATE, time.monotonic())


def with_trailing_silence(
    source: Iterable[AudioBlock], seconds: float, *, block_seconds: float = DEFAULT_BLOCK_SECONDS
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


# --- sinks --------------------------------------------------------------------------------------


class AudioSink(Protocol):
    """Where synthesised speech goes; chunks may come at any sample rate.

    ``write`` raises :class:`~translator.errors.TranslatorError` once per failure and then drops
    what it is given until the sink recovers (a device that comes back) or for good (a file), so
    the pipeline can report each failure once and keep every other output going.
    """

    def write(self, samples: np.ndarray, sample_rate: int) -> None: ...

    def close(self) -> None: ...


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
            raise OutputError(f"{self.path}: cannot create output file ({e.strerror}); choose a path in an existing, writable folder") from None
        except sf.LibsndfileError as e:
            raise OutputError(f"{self.path}: cannot create output file ({_reason(e.error_string)}); choose another path") from None
        sf._snd.sf_command(self._file._file, _SFC_SET_UPDATE_HEADER_AUTO, sf._ffi.NULL, sf._snd.SF_TRUE)
        self.error: OutputError | None = None

    def write(self, samples: np.ndarray, sample_rate: int) -> None:
        if self.error is not None:
            return
        mono = to_mono_float32(samples)
        if sample_rate != self.sample_rate:
            mono = _clipped(resample(mono, sample_rate, self.sample_rate))
        try:
            self._file.write(mono)
        except (sf.LibsndfileError, OSError) as e:
            reason = _reason(e.error_string) if isinstance(e, sf.LibsndfileError) else e.strerror
            self.error = OutputError(f"{self.path}: writing speech failed ({reason}); the file has the speech "
                                     "before this point; free some disk space and run again")
            raise self.error from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> WavSink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
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
        mono = to_mono_float32(samples)
        if sample_rate != self.sample_rate:
            mono = _clipped(resample(mono, sample_rate, self.sample_rate))
        self.chunks.append(mono)

    def close(self) -> None:
        self.closed = True

    @property
    def audio(self) -> np.ndarray:
        """Everything written so far, as one float32 array at :attr:`sample_rate`."""
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, dtype=np.float32)


__all__ = [
    "DEFAULT_BLOCK_SECONDS",
    "AudioSink",
    "FileSource",
    "MemorySink",
    "PacedSource",
    "WavSink",
    "open_file_source",
    "resample",
    "silence_source",
    "to_mono_float32",
    "with_trailing_silence",
]
