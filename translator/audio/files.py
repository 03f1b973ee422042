"""Audio files of any format as 16 kHz mono blocks, decoded as they are read.

Files are decoded with libsndfile (PyAV, if installed, for what libsndfile cannot read) and
resampled block by block with a streaming resampler, so a two-hour recording costs no more memory
than a two-second one. Every problem with a file is an :class:`~translator.errors.InputError`
raised when the :class:`FileSource` is made, before any model loads; a file that breaks off later
still yields what could be decoded.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf

from translator.audio.blocks import FILE_BLOCK_SECONDS, Blocker, block_size
from translator.audio.samples import StreamResampler, to_mono_float32
from translator.errors import InputError
from translator.events import SAMPLE_RATE, AudioBlock
from translator.text import one_line

TRUNCATION_TOLERANCE = 0.05
"""Seconds a file may fall short of its header before we call it truncated (MP3 lengths are estimates)."""

# libsndfile's log when a WAV/AIFF data chunk claims more bytes than the file holds, e.g.
# "data : 93594 (should be 46776)". libsndfile silently shortens such files; we want to say so.
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _unreadable(path: Path, reason: str) -> InputError:
    return InputError(f"{path}: not a readable audio file ({reason}); convert it to WAV/FLAC/OGG/MP3")


def sndfile_reason(libsndfile_message: str) -> str:
    """libsndfile's "Error : flac decoder lost sync." as "flac decoder lost sync", to fit in parentheses."""
    return one_line(libsndfile_message.strip().removeprefix("Error :")).rstrip(".")


# --- decoders -----------------------------------------------------------------------------------


class _DecodeFailed(Exception):
    """The decoder gave up mid-stream, after handing out everything it could."""


class _Decoder(Protocol):
    rate: int
    channels: int
    frames: int | None
    """Frames the header promises (None if it does not say)."""

    def chunks(self, size: int) -> Generator[np.ndarray, None, None]:
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

    def chunks(self, size: int) -> Generator[np.ndarray, None, None]:
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
                    raise _DecodeFailed(sndfile_reason(e.error_string)) from e
                if n == 0:
                    return
                yield buf[:n]


class _AvDecoder:
    """For what libsndfile cannot read (m4a, webm, ...), if PyAV is installed."""

    def __init__(self, path: Path) -> None:
        import av  # noqa: PLC0415 - optional dependency

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

    def chunks(self, size: int) -> Generator[np.ndarray, None, None]:  # size unused: frames come as the codec cuts them
        import av  # noqa: PLC0415 - optional dependency

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
                raise _DecodeFailed(one_line(e)) from e


def _open_decoder(path: Path) -> _Decoder:
    try:
        return _SoundfileDecoder(path)
    except sf.LibsndfileError as e:
        reason = sndfile_reason(e.error_string)
    try:
        import av  # noqa: PLC0415 - optional dependency
    except ImportError:
        pass
    else:
        try:
            return _AvDecoder(path)
        except (av.FFmpegError, _DecodeFailed):
            pass  # libsndfile's reason is the more telling one for the formats we promise
    raise _unreadable(path, reason)


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


# --- the source ---------------------------------------------------------------------------------


class FileSource:
    """An audio file as 16 kHz mono float32 :class:`AudioBlock` s, decoded as it is iterated.

    Iterating yields blocks as fast as they decode; each iteration re-reads the file from the
    start. Blocks are ``block_size`` samples except the last. A file that breaks off early yields
    what could be decoded and then ends, leaving the reason in :attr:`warning`: a long recording
    with a damaged tail is still worth translating.
    """

    def __init__(self, path: str | Path, *, block_seconds: float = FILE_BLOCK_SECONDS) -> None:
        self.block_size = block_size(block_seconds)
        self.path = Path(path)
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
            raise _unreadable(self.path, str(e)) from None
        finally:
            chunks.close()
        if first is None and self._decoder.frames == 0:
            raise InputError(f"{self.path}: no audio in file (0 samples); check the recording")
        if first is None:
            raise InputError(f"{self.path}: no audio could be decoded (the file is damaged or cut off); export or copy it again")

    def __iter__(self) -> Iterator[AudioBlock]:
        blocker = Blocker(self.block_size)
        for piece in self._mono_16k():
            yield from blocker.add(piece)
        yield from blocker.flush()

    def _mono_16k(self) -> Iterator[np.ndarray]:
        """Decoded pieces of any length, already mono, 16 kHz and clipped."""
        to_16k = StreamResampler(self.source_rate)
        frames = 0
        reason = None
        chunks = self._decoder.chunks(self._read_size)
        try:
            for chunk in chunks:
                frames += len(chunk)
                yield to_16k(to_mono_float32(chunk))
        except _DecodeFailed as e:
            if frames == 0:
                raise _unreadable(self.path, str(e)) from None
            reason = str(e)
        finally:
            chunks.close()
        yield to_16k.tail()
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
