"""The speaker: synthesised speech played on an output device, without ever blocking the caller.

Speech is queued and played from PortAudio's callback; a playback thread opens the stream when
there is something to play, closes it when idle and reopens it after a failure. See
:class:`SpeakerSink` for the lead-in, ``busy_until`` (for the self-listening guard) and the rules
for failures.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from translator.audio import portaudio
from translator.audio.echo import EchoReference
from translator.audio.portaudio import Kind
from translator.audio.samples import at_rate, to_mono_float32
from translator.audio.stream import BACKOFF, STALL_TIMEOUT, DeviceStream, StatusCallback, backoff_delays
from translator.config import AudioSettings
from translator.errors import DeviceError

OUTPUT_LATENCY = 0.1
"""Seconds of audio the output buffers ahead (PortAudio's suggested latency). Speech is played
while recognition of the next utterance may keep every core busy: a deeper buffer than PortAudio's
default (~35 ms on ALSA) keeps it from stuttering then, at the cost of ~65 ms more delay."""


class SpeakerSink(DeviceStream):
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

    ``reference`` is given every buffer the callback fills, silence included, with the wall time
    its first sample is heard: the far end of the microphone's echo canceller. Each stream, and
    the audio after each underflow, is a run of its own (contiguous, with an anchor of its own).
    """

    kind = Kind.OUTPUT

    def __init__(
        self,
        device: str = "",
        *,
        lead_in: float = AudioSettings.lead_in,
        lead_in_after: float = 1.0,
        idle_close: float = 5.0,
        on_status: StatusCallback | None = None,
        samplerate: int | None = None,
        max_queue_seconds: float = 120.0,
        stall_timeout: float = STALL_TIMEOUT,
        backoff: tuple[float, float] = BACKOFF,
        latency: float | str = OUTPUT_LATENCY,
        reference: EchoReference | None = None,
    ) -> None:
        if lead_in < 0:
            raise ValueError(f"lead_in must be >= 0, got {lead_in}")
        super().__init__(device, on_status, samplerate, stall_timeout, backoff)
        self.lead_in = lead_in
        self.lead_in_after = lead_in_after
        self.idle_close = idle_close
        self._want_latency = latency
        self.reference = reference
        self._reference_run = 0  # a new one for each stream and after each underflow (see the callback)
        self._max_queue_seconds = max_queue_seconds
        self.error: str | None = None
        """The current failure, or None while the output works."""
        self._queue: deque[np.ndarray] = deque()
        self._offset = 0  # frames of _queue[0] already played
        self._queued = 0  # frames not yet played
        self._heard_until = 0.0
        self._opening = False
        self._failed = False
        self._error_pending = False
        self._retry_at = 0.0
        self._delays: Iterator[float] = backoff_delays(*backoff)
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
            self._reference_run += 1
        stream, rate, channels = portaudio.open_stream(
            self.info,
            Kind.OUTPUT,
            self._want_rate or (self.rate or None),
            latency=self._want_latency,
            callback=self._make_callback(generation),
            finished_callback=lambda: self._on_finished(generation),
        )
        try:
            portaudio.start_stream(stream)
        except Exception:
            portaudio.close_stream(stream)
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
            if self.reference is not None and self.rate:  # the first callbacks may come before _open has it
                resumed = bool(status and status.output_underflow)
                if resumed:
                    # The device ran dry: what follows is heard later than the run so far says,
                    # so it starts a run of its own; its buffer may be empty, so this buffer may
                    # be heard at once (EchoReference.played says how that is anchored).
                    self._reference_run += 1
                heard_at = now if resumed else now + self.latency
                self.reference.played(self._reference_run, self.rate, heard_at, outdata[:, 0], resumed=resumed)

        return callback

    def _forget(self) -> None:
        if self.reference is not None:
            self.reference.ended()  # the stream is gone: the canceller need not wait for it

    def _fail(self, reason: str) -> None:
        """Drop the stream and what is queued; announce the failure (not each failed retry)."""
        self._drop_stream()
        with self._cond:
            self._queue.clear()
            self._offset = self._queued = 0
            self._heard_until = 0.0
            new = not self._failed
            if new:
                self._failed = True
                self._error_pending = True
                self._delays = backoff_delays(*self.backoff)
                self.error = f"audio output {self.info.name!r} failed ({reason})"
            self._retry_at = time.monotonic() + next(self._delays)
            self._cond.notify_all()
        if new:
            self._set_status(f"{self.error}; speech is not played")

    def _manage(self) -> None:
        """The playback thread: opens, watches, closes and reopens the stream."""
        while True:
            with self._cond:
                # With no stream and no failure there is nothing to watch until write() or close()
                # (both notify): an idle service need not wake this thread ten times a second.
                resting = self._stream is None and not self._failed and not self._opening
                if not self._closed:
                    self._cond.wait(None if resting else 0.1)
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
        except Exception as e:  # noqa: BLE001 - PortAudioError or DeviceError: reported, and retried after a back-off
            with self._cond:
                self._opening = False
            self._fail(f"cannot reopen it: {portaudio.reason(e)}")
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
                raise DeviceError(f"{self.error}; captions go on without speech")
            if self._failed:
                return
            rate = self.rate
        out = at_rate(mono, sample_rate, rate)
        now = time.monotonic()
        with self._cond:
            if self._failed or self._closed:
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

    def interrupt(self, gain: float) -> None:
        """Play what is queued at ``gain`` (0: drop it). What the device already buffers (up to
        :attr:`latency`) still plays: it is no longer ours to take back."""
        with self._cond:
            if gain <= 0:
                self._queue.clear()
                self._queued = self._offset = 0
            else:
                self._queue = deque(chunk * np.float32(gain) for chunk in self._queue)
            self._cond.notify_all()

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
