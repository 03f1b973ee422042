"""Live audio I/O with sounddevice/PortAudio: the microphone as 16 kHz blocks, speech out to a speaker.

Devices are chosen by name, never by index (an index shifts when a device is plugged in; a name
does not): :func:`find_device` takes the exact name, else a case-insensitive part of one, and an
empty query means the system default. Both ends run at the device's own rate (many USB and
Bluetooth headsets only do 44.1/48 kHz) and resample with soxr.

:class:`MicrophoneSource` is an iterable of :class:`~translator.events.AudioBlock`. PortAudio's
callback only copies samples into a bounded buffer (when the consumer falls behind, the oldest
audio is dropped and counted in :attr:`MicrophoneSource.overruns`); downmixing, resampling and
stamping happen in the iterating thread.

The audio clock (``AudioBlock.start``) counts 16 kHz samples from the first one captured, and it
stays honest when audio is missing: samples dropped on overrun, and the time a lost device was
away, advance it as well (a lost device's gap is measured on the wall clock, from the last sample
before the loss to the first one after it). So ``start`` always tracks when the audio was spoken,
and a block whose ``start`` is later than the previous block's ``end`` marks a gap: nothing was
heard in between, and an utterance in flight should be ended there. Within a run of contiguous
audio the blocks are exactly ``block_seconds`` long; the block just before a gap (or before the end)
may be shorter.

A device that disappears mid-run (PortAudio stops the stream, or no audio arrives for
``stall_timeout``) is reported through :attr:`MicrophoneSource.status` / ``on_status`` ("input
device lost (...); retrying"), reopened with exponential backoff (0.5 s .. 5 s) and, once it
delivers audio again, "input device back after N s". Iteration never raises for that (unless
``retry=False``: then it raises :class:`DeviceError`); :meth:`MicrophoneSource.close` ends it.

Note for PulseAudio/PipeWire: unplugging the device a stream records from usually does not break
the stream; the server moves it to its fallback source (which may be the monitor of the speaker).
PortAudio cannot see that, so the loss path above covers directly opened ALSA devices, a sound
server that restarts, and a server that cannot rescue the stream.

:class:`SpeakerSink` queues speech without blocking and plays it from PortAudio's callback; see its
docstring for the lead-in, ``busy_until`` (for the self-listening guard) and failure rules.

No UI here: messages go to callbacks and attributes; the caller decides how to show them.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, Self

import numpy as np
import soxr

from translator.audio.files import resample, to_mono_float32
from translator.errors import DeviceError
from translator.events import SAMPLE_RATE, AudioBlock

Kind = Literal["input", "output"]
StatusCallback = Callable[[str], None]

DEFAULT_BLOCK_SECONDS = 0.032 * 4
"""Four 32 ms VAD frames per block: live audio reaches the segmenter every 128 ms."""

BACKOFF = (0.5, 5.0)
"""First and longest wait between attempts to reopen a lost device, in seconds."""

STALL_TIMEOUT = 1.0
"""A stream that has not called back for this long is treated as lost."""

OUTPUT_LATENCY = 0.1
"""Seconds of audio the output buffers ahead (PortAudio's suggested latency). Speech is played
while recognition of the next utterance may keep every core busy: a deeper buffer than PortAudio's
default (~35 ms on ALSA) keeps it from stuttering then, at the cost of ~65 ms more delay."""

_FALLBACK_RATES = (48000, 44100, 32000, 16000)

_SOUND_SERVER_DEVICES = frozenset({"default", "pulse", "pipewire", "jack"})
"""ALSA devices that lead to a sound server: they stay listed whatever hardware comes and goes, so
re-scanning is no use before reopening them (and Pa_Terminate is best not called for nothing)."""

# PortAudio is not safe to open/close streams from several threads at once, and re-scanning
# devices (Pa_Terminate + Pa_Initialize) would kill open streams: one lock for all of it, and a
# count of the streams this module has open.
_PA_LOCK = threading.RLock()
_open_streams = 0


def _sd() -> ModuleType:
    try:
        import sounddevice  # noqa: PLC0415 (imported on first use: PortAudio may be missing)
    except OSError as e:
        raise DeviceError(f"PortAudio is not available ({e}); install it (Debian: apt-get install libportaudio2)") from None
    return sounddevice


def _pa_reason(e: Exception) -> str:
    """A PortAudioError as one short clause, e.g. "Error opening InputStream: Unanticipated host error: Input/output error"."""
    args = getattr(e, "args", ())
    text = str(args[0]) if args else str(e)
    if len(args) > 2 and isinstance(args[2], tuple) and len(args[2]) == 3 and args[2][2]:
        text = f"{text}: {args[2][2]}"
    return text.strip().rstrip(".")


# --- finding devices ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device, as :func:`list_devices` reports it."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float

    def has(self, kind: Kind) -> bool:
        return (self.max_input_channels if kind == "input" else self.max_output_channels) > 0

    def describe(self) -> str:
        """E.g. ``pulse (ALSA, 32 in, 32 out, 44100 Hz)``."""
        return (f"{self.name} ({self.host_api}, {self.max_input_channels} in, {self.max_output_channels} out, "
                f"{self.default_samplerate:g} Hz)")


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio knows, in its order (as of its last scan, see :func:`rescan_devices`)."""
    sd = _sd()
    with _PA_LOCK:
        try:
            apis = [a["name"] for a in sd.query_hostapis()]
            raw = sd.query_devices()
        except sd.PortAudioError as e:
            raise DeviceError(f"cannot list audio devices ({_pa_reason(e)}); check the sound system") from None
    return [
        DeviceInfo(
            index=int(d["index"]),
            name=str(d["name"]),
            host_api=apis[d["hostapi"]] if 0 <= d["hostapi"] < len(apis) else "?",
            max_input_channels=int(d["max_input_channels"]),
            max_output_channels=int(d["max_output_channels"]),
            default_samplerate=float(d["default_samplerate"]),
        )
        for d in raw
    ]


def rescan_devices() -> bool:
    """Make PortAudio scan for devices again (it only does so when it starts).

    Needed to see a device plugged in after start-up (unless it is reached through a sound server,
    like ALSA's ``pulse``/``default``). Re-scanning would stop every open stream, so it is only done
    when this module has none open; returns whether it happened.
    """
    sd = _sd()
    with _PA_LOCK:
        if _open_streams:
            return False
        try:
            sd._terminate()  # noqa: SLF001 (the documented way to re-scan)
            sd._initialize()  # noqa: SLF001
        except sd.PortAudioError:
            return False
    return True


def _quoted(devices: list[DeviceInfo]) -> str:
    return ", ".join(repr(d.name) for d in devices)


def _default_index(kind: Kind) -> int:
    sd = _sd()
    with _PA_LOCK:
        index = sd.default.device[0 if kind == "input" else 1]
        if index is None or index < 0:
            try:
                index = sd.query_hostapis(sd.default.hostapi)[f"default_{kind}_device"]
            except (sd.PortAudioError, ValueError, IndexError):
                index = -1
    return int(index)


def _prefer_one(matches: list[DeviceInfo], kind: Kind) -> DeviceInfo | None:
    """One device out of several matches when they are the same device seen through several host
    APIs (Windows lists a headset under MME, DirectSound and WASAPI): the default one's API wins."""
    if len({d.name for d in matches}) != 1:
        return None
    default = _default_index(kind)
    for d in matches:
        if d.index == default:
            return d
    return matches[0]


def find_device(query: str = "", kind: Kind = "input") -> DeviceInfo:
    """The input or output device named ``query``: the exact name, else a case-insensitive part of it.

    An empty query is the system default. A query of digits that names no device is taken as an
    index (as ``translator devices`` prints them). Raises :class:`DeviceError` naming the devices
    there are when nothing matches, or the matches when the query is ambiguous.
    """
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', got {kind!r}")
    devices = [d for d in list_devices() if d.has(kind)]
    what = "microphone" if kind == "input" else "speaker or headphones"
    if not devices:
        raise DeviceError(f"no audio {kind} device found; connect a {what}, or check that the sound server "
                          "(PulseAudio/PipeWire) is running")
    q = query.strip()
    if not q:
        index = _default_index(kind)
        for d in devices:
            if d.index == index:
                return d
        raise DeviceError(f"no default audio {kind} device; choose one of the {kind}s there are: {_quoted(devices)}")
    exact = [d for d in devices if d.name == q]
    if exact:
        return _prefer_one(exact, kind) or exact[0]
    partial = [d for d in devices if q.casefold() in d.name.casefold()]
    if len(partial) == 1:
        return partial[0]
    if partial:
        one = _prefer_one(partial, kind)
        if one is not None:
            return one
        raise DeviceError(f"audio {kind} {q!r} is ambiguous, it matches {_quoted(partial)}; give more of the name")
    if q.isdigit():
        for d in devices:
            if d.index == int(q):
                return d
    raise DeviceError(f"no audio {kind} device matches {q!r}; choose one of the {kind}s there are: {_quoted(devices)}")


# --- opening streams ----------------------------------------------------------------------------


def _candidates(info: DeviceInfo, kind: Kind, rate: int | None) -> list[tuple[int, int]]:
    """(rate, channels) to try: the device's own rate first, mono first."""
    rates = [rate] if rate else [int(info.default_samplerate)] if info.default_samplerate > 0 else []
    if not rate:
        rates += [r for r in _FALLBACK_RATES if r not in rates]
    max_ch = info.max_input_channels if kind == "input" else info.max_output_channels
    channels = [1] + ([2] if max_ch >= 2 else [])
    return [(r, c) for c in channels for r in rates]


def _open_stream(info: DeviceInfo, kind: Kind, rate: int | None, **kwargs: Any) -> tuple[Any, int, int]:
    """Open (not start) a stream on ``info``; returns (stream, rate, channels). Raises PortAudioError."""
    global _open_streams
    sd = _sd()
    cls = sd.InputStream if kind == "input" else sd.OutputStream
    error: Exception | None = None
    with _PA_LOCK:
        for r, ch in _candidates(info, kind, rate):
            try:
                stream = cls(device=info.index, samplerate=r, channels=ch, dtype="float32", **kwargs)
            except sd.PortAudioError as e:
                error = error or e
                continue
            _open_streams += 1
            return stream, r, ch
    assert error is not None
    raise error


def _close_stream(stream: Any) -> None:
    """Abort and close: ``abort`` returns at once even when the device has stopped delivering
    (``stop`` would wait for PortAudio's poll loop to time out, about 70 s on ALSA)."""
    global _open_streams
    sd = _sd()
    with _PA_LOCK:
        for op in (stream.abort, stream.close):
            try:
                op()
            except sd.PortAudioError:
                pass
        _open_streams -= 1


def _backoff_delays(first: float, longest: float) -> Iterator[float]:
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, longest)


# --- what both ends share -----------------------------------------------------------------------


class _Device:
    """A device found by name with one PortAudio stream at a time: callbacks of an older stream are
    told apart by ``generation`` and ignored, and status changes go to ``on_status``."""

    kind: Kind

    def __init__(self, device: str, on_status: StatusCallback | None, samplerate: int | None,
                 stall_timeout: float, backoff: tuple[float, float]) -> None:
        self.query = device
        self.info = find_device(device, self.kind)
        self.on_status = on_status
        self.stall_timeout = stall_timeout
        self.backoff = backoff
        self._want_rate = samplerate
        self.status = "ready"
        """The latest status message."""
        self._cond = threading.Condition()
        self._generation = 0
        self._stream: Any = None
        self._stream_ended = False
        self._last_callback = 0.0
        self.rate = 0
        self.channels = 0
        self.latency = 0.0

    def _open(self) -> None:
        raise NotImplementedError

    def _open_or_fail(self) -> None:
        """The first open, in the constructor: a device that cannot be used is the user's to fix."""
        try:
            self._open()
        except Exception as e:  # noqa: BLE001 - PortAudioError
            raise DeviceError(f"audio {self.kind} {self.info.name!r} cannot be opened ({_pa_reason(e)}); "
                              f"check that it is connected and not in use, or choose another {self.kind}") from None

    def _rescan_if_useful(self) -> None:
        """Before reopening hardware that went away: re-scan, so a replug with a new index is seen."""
        if self.info.name not in _SOUND_SERVER_DEVICES:
            rescan_devices()

    def _find_again(self) -> None:
        """Look the device up again before reopening it (a replugged one may have a new index); when
        no name was asked for, whatever is the default now. Raises DeviceError when it is not there."""
        try:
            self.info = find_device(self.info.name, self.kind)
        except DeviceError:
            if self.query.strip():
                raise
            self.info = find_device("", self.kind)

    def _drop_stream(self) -> None:
        """Forget the current stream (late callbacks from it are ignored) and close it."""
        with self._cond:
            stream, self._stream = self._stream, None
            self._generation += 1
            self._forget()
        if stream is not None:
            _close_stream(stream)  # outside self._cond: abort waits for the callback thread

    def _forget(self) -> None:
        """What else goes with a dropped stream (called under the lock)."""

    def _on_finished(self, generation: int) -> None:
        with self._cond:
            if generation == self._generation:
                self._stream_ended = True
                self._cond.notify_all()

    def _set_status(self, message: str) -> None:
        self.status = message
        if self.on_status is not None:
            self.on_status(message)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.info.name!r}, {self.rate} Hz, {self.channels} ch)"


# --- microphone ---------------------------------------------------------------------------------


class _Piece:
    """What one capture callback delivered."""

    __slots__ = ("samples", "wall", "skipped", "first")

    def __init__(self, samples: np.ndarray, wall: float, first: bool) -> None:
        self.samples = samples
        self.wall = wall
        self.skipped = 0
        """Device-rate frames dropped just before this piece (overrun)."""
        self.first = first
        """The first piece of a newly opened stream."""


class _Lost(Exception):
    """The input stream broke; the message is the reason."""


class MicrophoneSource(_Device):
    """A live input device as 16 kHz mono float32 :class:`AudioBlock` s (see the module docstring).

    The device is found (``device`` is a name or part of one; empty for the default) and its stream
    opened here, so a missing or unusable microphone is a :class:`DeviceError` before any model
    loads. Capture starts when iteration starts; a source can be iterated once.

    ``muted`` (a ``threading.Event``) zeroes the input while set, and :meth:`mute_until` zeroes it
    until a wall time (``time.monotonic()``); the self-listening guard uses these while the
    translator speaks. Muted audio is still delivered, as silence, so the clock runs on.

    ``on_status`` is called from the iterating thread with each status change; the latest message
    is also in :attr:`status`.
    """

    kind: Kind = "input"

    def __init__(
        self,
        device: str = "",
        *,
        block_seconds: float = DEFAULT_BLOCK_SECONDS,
        retry: bool = True,
        on_status: StatusCallback | None = None,
        samplerate: int | None = None,
        max_buffer_seconds: float = 2.0,
        stall_timeout: float = STALL_TIMEOUT,
        backoff: tuple[float, float] = BACKOFF,
    ) -> None:
        if block_seconds <= 0:
            raise ValueError(f"block_seconds must be positive, got {block_seconds}")
        super().__init__(device, on_status, samplerate, stall_timeout, backoff)
        self.block_size = max(1, round(block_seconds * SAMPLE_RATE))
        self.retry = retry
        self._max_buffer_seconds = max_buffer_seconds
        self.muted = threading.Event()
        self._mute_until = 0.0
        self.connected = False
        """True while a stream is open and delivering audio."""
        self.overruns = 0
        """Times audio was dropped because the consumer fell behind (or the device reported overflow)."""
        self.losses = 0
        """Times the device was lost."""
        self.lost_seconds = 0.0
        """Audio time skipped over because the device was away."""
        self._pieces: deque[_Piece] = deque()
        self._buffered = 0
        self._first_pending = False
        self._closed = False
        self._iterated = False
        self._open_or_fail()

    # --- stream management ----------------------------------------------------------------------

    def _open(self) -> None:
        """Open a stream on :attr:`info` (not started; none if closed meanwhile). Raises PortAudioError."""
        with self._cond:
            self._generation += 1
            generation = self._generation
            self._stream_ended = False
            self._first_pending = True
        stream, rate, channels = _open_stream(
            self.info, "input", self._want_rate,
            callback=self._make_callback(generation),
            finished_callback=lambda: self._on_finished(generation),
        )
        with self._cond:
            closed = self._closed
            if not closed:
                self._stream = stream
                self.rate, self.channels = rate, channels
                self.latency = float(stream.latency)
                self._max_buffered = max(1, round(self._max_buffer_seconds * rate))
        if closed:
            _close_stream(stream)

    def _start(self) -> None:
        stream = self._stream
        if stream is None:
            raise _Lost("closed")
        with _PA_LOCK:
            stream.start()
        with self._cond:
            self._last_callback = time.monotonic()

    def _forget(self) -> None:
        self._pieces.clear()
        self._buffered = 0
        self.connected = False

    def _make_callback(self, generation: int) -> Callable[..., None]:
        def callback(indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            now = time.monotonic()
            samples = indata[:, 0].copy() if indata.shape[1] == 1 else indata.mean(axis=1, dtype=np.float32)
            if self.muted.is_set():
                samples[:] = 0.0
            elif self._mute_until > now - self.latency - frames / self.rate:
                # The first sample was spoken about ``latency + frames/rate`` ago.
                first = now - self.latency - frames / self.rate
                k = min(frames, math.ceil((self._mute_until - first) * self.rate))
                samples[:k] = 0.0
            with self._cond:
                if generation != self._generation:
                    return
                piece = _Piece(samples, now, self._first_pending)
                self._first_pending = False
                if status and status.input_overflow:
                    self.overruns += 1
                self._pieces.append(piece)
                self._buffered += frames
                while self._buffered > self._max_buffered and len(self._pieces) > 1:
                    old = self._pieces.popleft()
                    self._buffered -= len(old.samples)
                    self._pieces[0].skipped += old.skipped + len(old.samples)
                    self._pieces[0].first = self._pieces[0].first or old.first
                    self.overruns += 1
                self._last_callback = now
                self._cond.notify_all()

        return callback

    def _take(self) -> list[_Piece]:
        """What the callback has delivered; waits up to 0.1 s. Raises _Lost when the stream broke."""
        with self._cond:
            if not self._pieces and not self._closed:
                self._cond.wait(0.1)
            pieces = list(self._pieces)
            self._pieces.clear()
            self._buffered = 0
            if pieces or self._closed:
                return pieces
            if self._stream_ended:
                raise _Lost("the audio stream stopped")
            if time.monotonic() - self._last_callback > self.stall_timeout:
                raise _Lost(f"no audio for {self.stall_timeout:g} s")
            return pieces

    def _wait(self, seconds: float) -> bool:
        """Sleep unless closed; returns False if closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed, seconds)
            return not self._closed

    def _reconnect(self) -> bool:
        """Reopen with backoff until audio flows again; False if closed meanwhile."""
        for attempt, delay in enumerate(_backoff_delays(*self.backoff)):
            if not self._wait(delay):
                return False
            try:
                if attempt:
                    self._rescan_if_useful()
                self._find_again()
                self._open()
                if self._stream is None:
                    return False  # closed while opening
                self._start()
            except Exception:  # noqa: BLE001 - PortAudioError or DeviceError: try again later
                self._drop_stream()
                continue
            with self._cond:  # wait for the first callback of the new stream
                ok = self._cond.wait_for(lambda: bool(self._pieces) or self._stream_ended or self._closed,
                                         self.stall_timeout)
                if self._closed:
                    return False
                if ok and self._pieces:
                    return True
            self._drop_stream()
        return False

    # --- the public side ------------------------------------------------------------------------

    def mute_until(self, wall: float) -> None:
        """Zero the input until ``wall`` (``time.monotonic()`` seconds); never shortens a mute."""
        self._mute_until = max(self._mute_until, wall)

    def close(self) -> None:
        """Stop capturing; iteration ends soon after (yielding the part block it holds). Safe from any thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._drop_stream()

    def __iter__(self) -> Iterator[AudioBlock]:
        if self._iterated:
            raise RuntimeError("a MicrophoneSource can be iterated only once")
        self._iterated = True
        try:
            yield from self._run()
        finally:
            self.close()

    def _run(self) -> Iterator[AudioBlock]:
        size = self.block_size
        clock = 0  # audio time of ``pending[0]``, in 16 kHz samples
        pending: list[np.ndarray] = []
        count = 0
        wall = time.monotonic()
        last_audio_wall: float | None = None  # wall time of the last sample captured
        lost_at: float | None = None  # when the current loss was noticed
        resampler: soxr.ResampleStream | None = None

        def emit_full() -> Iterator[AudioBlock]:
            nonlocal pending, count, clock
            if count < size:
                return
            buf = np.concatenate(pending)
            k = 0
            while len(buf) - k >= size:
                yield AudioBlock(buf[k : k + size].copy(), clock / SAMPLE_RATE, wall)
                clock += size
                k += size
            pending, count = [buf[k:]], len(buf) - k

        def flush() -> Iterator[AudioBlock]:
            """Everything held (resampler tail included) as blocks, the last one possibly short."""
            nonlocal pending, count, clock, resampler
            if resampler is not None:
                pending.append(np.clip(resampler.resample_chunk(np.zeros(0, np.float32), last=True), -1, 1))
                count += len(pending[-1])
                resampler = None
            yield from emit_full()
            if count:
                yield AudioBlock(np.concatenate(pending), clock / SAMPLE_RATE, wall)
                clock += count
            pending, count = [], 0

        try:
            self._start()
        except Exception as e:  # noqa: BLE001
            if not self.retry:
                raise DeviceError(f"audio input {self.info.name!r} cannot be started ({_pa_reason(e)}); "
                                  "check that it is connected and not in use") from None
            self._drop_stream()
            self._set_status(f"input device {self.info.name!r} cannot be started ({_pa_reason(e)}); retrying")
            lost_at = time.monotonic()
            if not self._reconnect():
                return
        self.connected = True
        self._set_status(f"listening on {self.info.name!r} at {self.rate} Hz")
        while True:
            try:
                pieces = self._take()
            except _Lost as lost:
                self.losses += 1
                yield from flush()
                self._drop_stream()
                if not self.retry:
                    raise DeviceError(f"audio input {self.info.name!r} was lost ({lost}); reconnect it and start again") from None
                self._set_status(f"input device {self.info.name!r} lost ({lost}); retrying")
                lost_at = last_audio_wall if last_audio_wall is not None else time.monotonic()
                if not self._reconnect():
                    return
                self.connected = True
                continue
            if not pieces and self._closed:
                yield from flush()
                return
            for piece in pieces:
                if piece.first and lost_at is not None:
                    # Back after a loss: advance the clock by the time the device was away (if it
                    # had delivered anything before; otherwise this is where audio time 0 is).
                    began = piece.wall - self.latency - len(piece.samples) / self.rate
                    away = max(0.0, began - lost_at)
                    yield from flush()
                    if last_audio_wall is not None:
                        gap = round(away * SAMPLE_RATE)
                        clock += gap
                        self.lost_seconds += gap / SAMPLE_RATE
                    lost_at = None
                    self._set_status(f"input device {self.info.name!r} back after {away:.1f} s")
                elif piece.skipped:
                    yield from flush()
                    clock += round(piece.skipped * SAMPLE_RATE / self.rate)
                if resampler is None and self.rate != SAMPLE_RATE:
                    resampler = soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
                x = piece.samples if resampler is None else np.clip(resampler.resample_chunk(piece.samples), -1, 1)
                wall = piece.wall
                last_audio_wall = piece.wall - self.latency
                if len(x):
                    pending.append(x)
                    count += len(x)
                yield from emit_full()


# --- speaker ------------------------------------------------------------------------------------


class SpeakerSink(_Device):
    """Plays speech on an output device without ever blocking the caller.

    ``write(samples, sample_rate)`` resamples the chunk to the device's rate (soxr) and queues it;
    PortAudio's callback plays the queue and silence when it is empty. A small playback thread
    opens the stream when there is something to play and closes it after ``idle_close`` seconds of
    silence (so the sound server may let the device sleep, and PortAudio may re-scan devices).

    Lead-in: a burst of speech that starts after at least ``lead_in_after`` seconds with nothing
    playing (or on a stream that has to be opened) is preceded by ``lead_in`` seconds of silence,
    so a sleeping Bluetooth headset (or a stream that is just starting) does not swallow the first
    word. Chunks that arrive while earlier speech is still queued or playing get none.

    :attr:`busy_until` is the wall time (``time.monotonic()``) at which the last queued sample
    will have been heard, output latency included; :attr:`speaking` is ``busy_until > now``.
    ``latency`` is how far ahead PortAudio buffers (default :data:`OUTPUT_LATENCY`, 0.1 s: with
    PortAudio's ~35 ms default, playback stuttered while both cores were busy).

    Failures: the device is found and a stream opened here, so a missing or unusable output is a
    :class:`DeviceError` from the constructor. Later failures (the stream cannot be reopened,
    PortAudio stops it, or it stops asking for audio for ``stall_timeout``) are noticed by the
    playback thread: queued audio is dropped, :attr:`error` and ``on_status`` get the message, and
    the next :meth:`write` raises :class:`DeviceError` once (that chunk is dropped). After that,
    :meth:`write` never raises for the same failure: it drops its audio, while the playback thread
    tries to reopen the device every 0.5 .. 5 s (doubling), speech or not; when that works,
    ``on_status`` says so, :attr:`error` is cleared, and the next chunk plays (so the first
    translation after a headset is plugged back in is heard). Failed retries are not announced
    again. A new failure after a recovery raises once again.
    """

    kind: Kind = "output"

    def __init__(
        self,
        device: str = "",
        *,
        lead_in: float = 0.15,
        lead_in_after: float = 1.0,
        idle_close: float = 5.0,
        on_status: StatusCallback | None = None,
        samplerate: int | None = None,
        max_queue_seconds: float = 120.0,
        stall_timeout: float = STALL_TIMEOUT,
        backoff: tuple[float, float] = BACKOFF,
        latency: float | str = OUTPUT_LATENCY,
    ) -> None:
        if lead_in < 0:
            raise ValueError(f"lead_in must be >= 0, got {lead_in}")
        super().__init__(device, on_status, samplerate, stall_timeout, backoff)
        self.lead_in = lead_in
        self.lead_in_after = lead_in_after
        self.idle_close = idle_close
        self._want_latency = latency
        self._max_queue_seconds = max_queue_seconds
        self.error: str | None = None
        """The current failure, or None while the output works."""
        self.underflows = 0
        self.dropped_seconds = 0.0
        """Speech dropped: queued when the output failed, written while failed, or over the queue cap."""
        self._queue: deque[np.ndarray] = deque()
        self._offset = 0  # frames of _queue[0] already played
        self._queued = 0  # frames not yet played
        self._heard_until = 0.0
        self._opening = False
        self._failed = False
        self._error_pending = False
        self._retry_at = 0.0
        self._delays: Iterator[float] = _backoff_delays(*backoff)
        self._closed = False
        self._open_or_fail()
        self._idle_since = time.monotonic()
        self._thread = threading.Thread(target=self._manage, name="speaker", daemon=True)
        self._thread.start()

    # --- stream management (playback thread, and the constructor) -------------------------------

    def _open(self) -> None:
        with self._cond:
            self._generation += 1
            generation = self._generation
        stream, rate, channels = _open_stream(
            self.info, "output", self._want_rate or (self.rate or None), latency=self._want_latency,
            callback=self._make_callback(generation),
            finished_callback=lambda: self._on_finished(generation),
        )
        try:
            with _PA_LOCK:
                stream.start()
        except Exception:
            _close_stream(stream)
            raise
        with self._cond:
            self._stream = stream
            self._stream_ended = False
            self.rate, self.channels = rate, channels
            self.latency = float(stream.latency)
            self._last_callback = time.monotonic()

    def _make_callback(self, generation: int) -> Callable[..., None]:
        def callback(outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
            now = time.monotonic()
            with self._cond:
                if generation != self._generation:
                    outdata.fill(0)
                    return
                if status and status.output_underflow:
                    self.underflows += 1
                n = 0
                while n < frames and self._queue:
                    head = self._queue[0]
                    take = min(frames - n, len(head) - self._offset)
                    outdata[n : n + take, 0] = head[self._offset : self._offset + take]
                    n += take
                    self._offset += take
                    if self._offset >= len(head):
                        self._queue.popleft()
                        self._offset = 0
                self._queued -= n
                if n:
                    self._heard_until = now + self.latency + n / self.rate
                self._last_callback = now
                if not self._queued:
                    self._cond.notify_all()
            outdata[n:, 0] = 0.0
            if outdata.shape[1] > 1:
                outdata[:, 1:] = outdata[:, :1]

        return callback

    def _fail(self, reason: str) -> None:
        """Drop the stream and what is queued; announce the failure (not each failed retry)."""
        self._drop_stream()
        with self._cond:
            self.dropped_seconds += self._queued / self.rate if self.rate else 0.0
            self._queue.clear()
            self._offset = self._queued = 0
            self._heard_until = 0.0
            new = not self._failed
            if new:
                self._failed = True
                self._error_pending = True
                self._delays = _backoff_delays(*self.backoff)
                self.error = f"audio output {self.info.name!r} failed ({reason})"
            self._retry_at = time.monotonic() + next(self._delays)
            self._cond.notify_all()
        if new:
            self._set_status(f"{self.error}; speech is not played")

    def _manage(self) -> None:
        """The playback thread: opens, watches, closes and reopens the stream."""
        while True:
            with self._cond:
                self._cond.wait(0.1)
                if self._closed:
                    return
                now = time.monotonic()
                stream = self._stream
                want_open = self._opening
                stalled = stream is not None and now - self._last_callback > self.stall_timeout
                ended = stream is not None and self._stream_ended
                idle = stream is not None and not self._queued and now >= self._heard_until
                if not idle:
                    self._idle_since = now
                close_idle = idle and now - self._idle_since >= self.idle_close
                retry = self._failed and now >= self._retry_at
            if ended:
                self._fail("the audio stream stopped")
            elif stalled:
                self._fail(f"it stopped taking audio for {self.stall_timeout:g} s")
            elif close_idle:
                self._drop_stream()
            elif retry or (want_open and stream is None):
                self._reopen()

    def _reopen(self) -> None:
        was_failed = self._failed
        try:
            if was_failed:
                self._rescan_if_useful()
            self._find_again()
            self._open()
        except Exception as e:  # noqa: BLE001
            with self._cond:
                self._opening = False
            self._fail(f"cannot reopen it: {_pa_reason(e)}")
            return
        with self._cond:
            self._opening = False
            self._failed = False
            self.error = None
            self._idle_since = time.monotonic()
            self._cond.notify_all()
        if was_failed:
            self._set_status(f"audio output {self.info.name!r} is back")

    # --- the public side ------------------------------------------------------------------------

    def write(self, samples: np.ndarray, sample_rate: int) -> None:
        """Queue a chunk of speech (any rate, mono or frames x channels) and return at once.

        Raises :class:`DeviceError` once per failure, as described in the class docstring.
        """
        mono = to_mono_float32(samples)
        if not len(mono):
            return
        with self._cond:
            if self._closed:
                return
            if self._error_pending:
                self._error_pending = False
                self.dropped_seconds += len(mono) / sample_rate
                raise DeviceError(f"{self.error}; captions go on without speech")
            if self._failed:
                self.dropped_seconds += len(mono) / sample_rate
                return
            rate = self.rate
        out = np.clip(resample(mono, sample_rate, rate), -1.0, 1.0).astype(np.float32, copy=False)
        now = time.monotonic()
        with self._cond:
            if self._failed or self._closed:
                self.dropped_seconds += len(out) / rate
                return
            if self._stream is None:
                self._opening = True
            burst = not self._queued and (self._stream is None or now - self._heard_until >= self.lead_in_after)
            if burst and self.lead_in > 0:
                self._queue.append(np.zeros(round(self.lead_in * rate), dtype=np.float32))
                self._queued += len(self._queue[-1])
            self._queue.append(out)
            self._queued += len(out)
            cap = round(self._max_queue_seconds * rate)
            while self._queued > cap and len(self._queue) > 1:
                old = self._queue.popleft()
                self._queued -= len(old) - self._offset
                self.dropped_seconds += (len(old) - self._offset) / rate
                self._offset = 0
            self._cond.notify_all()

    @property
    def busy_until(self) -> float:
        """Wall time (``time.monotonic()``) when everything queued will have been heard."""
        with self._cond:
            now = time.monotonic()
            if not self._queued:
                return self._heard_until
            return max(self._heard_until, now + self.latency) + self._queued / self.rate

    @property
    def speaking(self) -> bool:
        return self.busy_until > time.monotonic()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything queued has been heard; False on timeout or if the output failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._failed or self._closed:
                    return False
                now = time.monotonic()
                if not self._queued and now >= self._heard_until:
                    return True
                left = max(self._heard_until - now, 0.01) if not self._queued else 0.05
                if deadline is not None:
                    if now >= deadline:
                        return False
                    left = min(left, deadline - now)
                self._cond.wait(left)

    def close(self) -> None:
        """Stop at once, dropping what is still queued (call :meth:`drain` first to finish speaking)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            self._queued = self._offset = 0
            self._cond.notify_all()
        self._thread.join(5)
        self._drop_stream()


__all__ = [
    "BACKOFF",
    "DEFAULT_BLOCK_SECONDS",
    "OUTPUT_LATENCY",
    "DeviceInfo",
    "MicrophoneSource",
    "SpeakerSink",
    "find_device",
    "list_devices",
    "rescan_devices",
]
