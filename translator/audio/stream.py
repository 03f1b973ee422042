"""What the microphone and the speaker share: a device found by name, one stream at a time on it,
status messages, and reopening it with backoff when it goes away.

Both ends run at the device's own rate and resample with soxr. A device that disappears mid-run
is looked up again by name before each attempt to reopen it (a replugged one may have a new index),
and re-scanned for when it is hardware rather than a sound server. No UI here: messages go to the
``on_status`` callback and the :attr:`DeviceStream.status` attribute; the caller decides how to
show them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, Self

from translator.audio import portaudio
from translator.audio.lookup import find_device
from translator.audio.portaudio import Kind
from translator.errors import DeviceError
from translator.events import NoticeLevel

StatusCallback = Callable[[str], None]
"""How a device reports what happens to it: one line of text, from the device's own threads."""

_TROUBLE = ("lost", "failed", "cannot", "no audio", "not played")
"""Words the devices' status lines use when sound is lost (the rest say it is back or open)."""


def status_level(message: str) -> NoticeLevel:
    """How loudly a front end shows a device's status line."""
    return NoticeLevel.WARNING if any(w in message for w in _TROUBLE) else NoticeLevel.INFO


BACKOFF = (0.5, 5.0)
"""First and longest wait between attempts to reopen a lost device, in seconds."""

STALL_TIMEOUT = 1.0
"""A stream that has not called back for this long is treated as lost."""

_SOUND_SERVER_DEVICES = frozenset({"default", "pulse", "pipewire", "jack"})
"""ALSA devices that lead to a sound server: they stay listed whatever hardware comes and goes, so
re-scanning is no use before reopening them (and Pa_Terminate is best not called for nothing)."""


def backoff_delays(first: float, longest: float) -> Iterator[float]:
    """``first``, then doubling up to ``longest``, for ever."""
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, longest)


class DeviceStream:
    """A device found by name with one PortAudio stream at a time: callbacks of an older stream are
    told apart by ``generation`` and ignored, and status changes go to ``on_status``."""

    kind: Kind

    def __init__(
        self,
        device: str,
        on_status: StatusCallback | None,
        samplerate: int | None,
        stall_timeout: float,
        backoff: tuple[float, float],
    ) -> None:
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
            raise DeviceError(
                f"audio {self.kind} {self.info.name!r} cannot be opened ({portaudio.reason(e)}); "
                f"check that it is connected and not in use, or choose another {self.kind}"
            ) from None

    def _rescan_if_useful(self) -> None:
        """Before reopening hardware that went away: re-scan, so a replug with a new index is seen."""
        if self.info.name not in _SOUND_SERVER_DEVICES:
            portaudio.rescan_devices()

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
            portaudio.close_stream(stream)  # outside self._cond: abort waits for the callback thread

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
