"""The microphone: a live input device as 16 kHz mono float32 blocks, kept on an honest clock.

PortAudio's callback only copies samples into a bounded buffer (when the consumer falls behind,
the oldest audio is dropped and counted in :attr:`MicrophoneSource.overruns`, and each burst of
drops is reported as a status); downmixing, resampling and stamping happen in the iterating thread.

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
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from translator.audio import portaudio
from translator.audio.blocks import LIVE_BLOCK_SECONDS, Blocker, block_size
from translator.audio.echo import EchoCanceller
from translator.audio.portaudio import Kind
from translator.audio.samples import StreamResampler
from translator.audio.stream import BACKOFF, STALL_TIMEOUT, DeviceStream, StatusCallback, backoff_delays
from translator.errors import DeviceError
from translator.events import SAMPLE_RATE, AudioBlock

CAPTURE_PERIOD = 0.032
"""Audio per capture callback, in seconds (one VAD frame). Left to PortAudio, the ALSA ``pulse``
device called back about 200 times a second with 1-9 ms each, and waking Python (the callback, and
the iterating thread after it) that often made ``serve`` cost 7.8 % of a core while nobody spoke
(2.8 % at 32 ms, 31 callbacks a second). The price: a block is handed on up to 32 ms (16 ms on
average) after its last sample was captured, instead of a few milliseconds."""


class _Piece:
    """What one capture callback delivered."""

    __slots__ = ("samples", "wall", "skipped", "first", "overflow")

    def __init__(self, samples: np.ndarray, wall: float, first: bool) -> None:
        self.samples = samples
        self.wall = wall
        self.skipped = 0
        """Device-rate frames dropped just before this piece (overrun)."""
        self.first = first
        """The first piece of a newly opened stream."""
        self.overflow = False
        """The device lost input before this piece (its own overrun): the capture's time jumps."""


class _Lost(Exception):
    """The input stream broke; the message is the reason."""


class MicrophoneSource(DeviceStream):
    """A live input device as 16 kHz mono float32 :class:`AudioBlock` s (see the module docstring).

    The device is found (``device`` is a name or part of one; empty for the default) and its stream
    opened here, so a missing or unusable microphone is a :class:`DeviceError` before any model
    loads. Capture starts when iteration starts; a source can be iterated once.

    ``muted`` (a ``threading.Event``) zeroes the input while set, and :meth:`mute_until` zeroes it
    until a wall time (``time.monotonic()``); the self-listening guard uses these while the
    translator speaks. Muted audio is still delivered, as silence, so the clock runs on.

    ``on_status`` is called from the iterating thread with each status change; the latest message
    is also in :attr:`status`.

    ``canceller`` takes the speaker's echo out of the 16 kHz audio before it is cut into blocks
    (translator/audio/echo.py); each run of contiguous capture is anchored at the wall time its
    first sample was spoken.
    """

    kind = Kind.INPUT

    def __init__(
        self,
        device: str = "",
        *,
        block_seconds: float = LIVE_BLOCK_SECONDS,
        retry: bool = True,
        on_status: StatusCallback | None = None,
        samplerate: int | None = None,
        max_buffer_seconds: float = 2.0,
        stall_timeout: float = STALL_TIMEOUT,
        backoff: tuple[float, float] = BACKOFF,
        canceller: EchoCanceller | None = None,
    ) -> None:
        self.block_size = block_size(block_seconds)
        self.canceller = canceller
        super().__init__(device, on_status, samplerate, stall_timeout, backoff)
        self.retry = retry
        self._max_buffer_seconds = max_buffer_seconds
        self.muted = threading.Event()
        self._mute_until = 0.0
        self.connected = False
        """True while a stream is open and delivering audio."""
        self.overruns = 0
        """Times audio was dropped because the consumer fell behind (or the device reported overflow).
        The first drop of each burst (drops in consecutive callbacks) is reported as a status."""
        self._pieces: deque[_Piece] = deque()
        self._buffered = 0
        self._wanted = 0  # device frames the iterating thread waits for: it is woken only then
        self.wakeups = 0
        """Times the iterating thread was handed audio: about once per block, not per callback."""
        self._first_pending = False
        self._overrunning = False  # the latest callback dropped audio
        self._new_overrun = False  # a burst of drops began since the iterating thread last looked
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
        stream, rate, channels = portaudio.open_stream(
            self.info,
            Kind.INPUT,
            self._want_rate,
            period=CAPTURE_PERIOD,
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
            portaudio.close_stream(stream)

    def _start(self) -> None:
        stream = self._stream
        if stream is None:
            raise _Lost("closed")
        portaudio.start_stream(stream)
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
                overruns = self.overruns
                if status and status.input_overflow:
                    self.overruns += 1
                    piece.overflow = True
                self._pieces.append(piece)
                self._buffered += frames
                while self._buffered > self._max_buffered and len(self._pieces) > 1:
                    old = self._pieces.popleft()
                    self._buffered -= len(old.samples)
                    self._pieces[0].skipped += old.skipped + len(old.samples)
                    self._pieces[0].first = self._pieces[0].first or old.first
                    self.overruns += 1
                overran = self.overruns > overruns
                # Reported by the iterating thread: a status callback may block, this thread must not.
                self._new_overrun = self._new_overrun or (overran and not self._overrunning)
                self._overrunning = overran
                self._last_callback = now
                # Woken only when there is something to do: a block to cut (the audio before it
                # would only be resampled and held), a new stream, a burst of drops to report.
                if self._buffered >= self._wanted or piece.first or self._new_overrun:
                    self._cond.notify_all()

        return callback

    def _take(self, wanted: int) -> tuple[list[_Piece], bool]:
        """What the callback has delivered once it holds ``wanted`` device frames (or a new stream,
        or the end), and whether a burst of overruns began since the last call; waits up to 0.1 s.
        Raises _Lost when the stream broke."""
        with self._cond:
            self._wanted = wanted
            if not self._due() and not self._closed:
                self._cond.wait(0.1)
            stalled = time.monotonic() - self._last_callback > self.stall_timeout
            pieces: list[_Piece] = []
            if self._due() or self._closed or self._stream_ended or stalled:
                pieces = list(self._pieces)
                self._pieces.clear()
                self._buffered = 0
            overran, self._new_overrun = self._new_overrun, False
            if pieces:
                self.wakeups += 1
            if pieces or self._closed:
                return pieces, overran
            if self._stream_ended:
                raise _Lost("the audio stream stopped")
            if stalled:
                raise _Lost(f"no audio for {self.stall_timeout:g} s")
            return pieces, overran

    def _due(self) -> bool:
        """Whether the iterating thread has audio to act on (under the lock)."""
        return bool(self._pieces) and (self._buffered >= self._wanted or self._pieces[0].first or self._new_overrun)

    def _wait(self, seconds: float) -> bool:
        """Sleep unless closed; returns False if closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed, seconds)
            return not self._closed

    def _reconnect(self) -> bool:
        """Reopen with backoff until audio flows again; False if closed meanwhile."""
        for attempt, delay in enumerate(backoff_delays(*self.backoff)):
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
                ok = self._cond.wait_for(lambda: bool(self._pieces) or self._stream_ended or self._closed, self.stall_timeout)
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

    def _frames_to_fill(self, held: int) -> int:
        """Device frames to wait for when the blocker holds ``held`` samples: those that complete
        the next block, less one callback's worth. The resampler hands its output on in steps, so
        the callback that completes a block cannot be told exactly; waking one callback early
        costs one more wait, waking one late would cost the block 32 ms (at half a callback early,
        one block in 40 was)."""
        frames = math.ceil((self.block_size - held) * self.rate / SAMPLE_RATE)
        return max(0, frames - round(CAPTURE_PERIOD * self.rate))

    def _run(self) -> Iterator[AudioBlock]:
        blocker = Blocker(self.block_size)  # its clock: 16 kHz samples since the first one captured
        wall = time.monotonic()  # when the latest piece arrived: the wall of the blocks it completes
        last_audio_wall: float | None = None  # wall time of the last sample captured
        lost_at: float | None = None  # when the current loss was noticed
        to_16k: StreamResampler | None = None  # made at the rate of the stream that delivers

        def flush() -> Iterator[AudioBlock]:
            """Everything held (resampler tail included) as blocks, the last one possibly short."""
            nonlocal to_16k
            rest = to_16k.tail() if to_16k is not None else np.zeros(0, dtype=np.float32)
            to_16k = None
            if self.canceller is not None:
                rest = np.concatenate([self.canceller.process(rest), self.canceller.flush()])
            yield from blocker.add(rest, wall)
            yield from blocker.flush(wall)

        try:
            self._start()
        except Exception as e:  # noqa: BLE001 - PortAudioError or DeviceError: a one-line DeviceError, or retried
            if not self.retry:
                raise DeviceError(
                    f"audio input {self.info.name!r} cannot be started ({portaudio.reason(e)}); "
                    "check that it is connected and not in use"
                ) from None
            self._drop_stream()
            self._set_status(f"input device {self.info.name!r} cannot be started ({portaudio.reason(e)}); retrying")
            lost_at = time.monotonic()
            if not self._reconnect():
                return
        self.connected = True
        self._set_status(f"listening on {self.info.name!r} at {self.rate} Hz")
        while True:
            try:
                pieces, overran = self._take(self._frames_to_fill(blocker.held))
            except _Lost as lost:
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
            if overran:
                # Worded with "lost" so the front ends show it as a warning, like a lost device.
                n = self.overruns
                self._set_status(
                    f"input overrun: audio lost ({n} overrun{'' if n == 1 else 's'} so far); the machine is falling behind"
                )
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
                        blocker.skip(round(away * SAMPLE_RATE))
                    lost_at = None
                    self._set_status(f"input device {self.info.name!r} back after {away:.1f} s")
                elif piece.skipped:
                    yield from flush()
                    blocker.skip(round(piece.skipped * SAMPLE_RATE / self.rate))
                run_start: float | None = None  # set where a run of contiguous capture starts
                if to_16k is None or piece.overflow:
                    to_16k = to_16k or StreamResampler(self.rate)
                    run_start = piece.wall - self.latency - len(piece.samples) / self.rate
                wall = piece.wall
                last_audio_wall = piece.wall - self.latency
                samples = to_16k(piece.samples)
                if self.canceller is not None:
                    samples = self.canceller.process(samples, run_start)
                yield from blocker.add(samples, wall)
