"""What PortAudio sees, and the one door to it: the devices, and opening and closing streams.

Every call into sounddevice goes through here, under one lock: PortAudio is not safe to open or
close streams from several threads at once, and re-scanning devices (Pa_Terminate +
Pa_Initialize) would kill open streams, so this module also counts the streams it has open.
sounddevice is imported on first use, so the rest of the program runs where PortAudio is missing.
"""

from __future__ import annotations

import atexit
import contextlib
import enum
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from translator.errors import DeviceError
from translator.text import one_line


class Kind(enum.StrEnum):
    """Which way audio goes through a device."""

    INPUT = "input"
    OUTPUT = "output"


_FALLBACK_RATES = (48000, 44100, 32000, 16000)
"""Rates tried, in order, when a device refuses its own default rate."""

LOCK = threading.RLock()
"""Held around every PortAudio call that opens, starts, closes or re-scans (re-entrant: a scan
may happen while a caller holds it)."""

_open_streams = 0

START_TIMEOUT = 3.0
"""Seconds a stream may take to start (PortAudio itself waits 1 s for the device)."""

_stuck: list[Any] = []
"""Streams whose start never returned; kept referenced and never closed (see :func:`start_stream`)."""


def sounddevice() -> ModuleType:
    """The sounddevice module; DeviceError when the PortAudio library is missing."""
    try:
        import sounddevice as sd  # noqa: PLC0415 - imported on first use: PortAudio may be missing
    except OSError as e:
        raise DeviceError(f"PortAudio is not available ({e}); install it (Debian: apt-get install libportaudio2)") from None
    return sd


def reason(e: Exception) -> str:
    """A PortAudioError as one short clause, e.g. "Error opening InputStream: Unanticipated host error: Input/output error".

    PortAudio puts the host API's own explanation (the part that helps) in a third argument; it is
    added to the message here.
    """
    args = e.args
    text = str(args[0]) if args else str(e)
    if len(args) > 2 and isinstance(args[2], tuple) and len(args[2]) == 3 and args[2][2]:
        text = f"{text}: {args[2][2]}"
    return one_line(text).rstrip(".")


# --- devices ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceInfo:
    """One PortAudio device, as :func:`list_devices` reports it."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    max_output_channels: int
    default_samplerate: float

    def has(self, kind: Kind | str) -> bool:
        return (self.max_input_channels if kind == Kind.INPUT else self.max_output_channels) > 0


def list_devices() -> list[DeviceInfo]:
    """Every device PortAudio knows, in its order (as of its last scan, see :func:`rescan_devices`)."""
    sd = sounddevice()
    with LOCK:
        try:
            apis = [a["name"] for a in sd.query_hostapis()]
            raw = sd.query_devices()
        except sd.PortAudioError as e:
            raise DeviceError(f"cannot list audio devices ({reason(e)}); check the sound system") from None
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


def default_index(kind: Kind | str) -> int:
    """Index of the system's default input or output device (-1 when there is none)."""
    sd = sounddevice()
    with LOCK:
        index = sd.default.device[0 if kind == Kind.INPUT else 1]
        if index is None or index < 0:
            try:
                index = sd.query_hostapis(sd.default.hostapi)[f"default_{kind}_device"]
            except (sd.PortAudioError, ValueError, IndexError):
                index = -1
    return int(index)


def rescan_devices() -> bool:
    """Make PortAudio scan for devices again (it only does so when it starts).

    Needed to see a device plugged in after start-up (unless it is reached through a sound server,
    like ALSA's ``pulse``/``default``). Re-scanning would stop every open stream, so it is only done
    when this module has none open; returns whether it happened.
    """
    sd = sounddevice()
    with LOCK:
        if _open_streams:
            return False
        try:
            sd._terminate()  # private, but the way sounddevice's docs give to re-scan
            sd._initialize()
        except sd.PortAudioError:
            return False
    return True


# --- streams ------------------------------------------------------------------------------------


def open_streams() -> int:
    """How many streams opened here are not closed yet."""
    with LOCK:
        return _open_streams


def _candidates(info: DeviceInfo, kind: Kind, rate: int | None) -> list[tuple[int, int]]:
    """(rate, channels) to try: the device's own rate first (many USB and Bluetooth headsets only
    do 44.1/48 kHz; the callers resample), mono first."""
    rates = [rate] if rate else [int(info.default_samplerate)] if info.default_samplerate > 0 else []
    if not rate:
        rates += [r for r in _FALLBACK_RATES if r not in rates]
    max_ch = info.max_input_channels if kind == Kind.INPUT else info.max_output_channels
    channels = [1] + ([2] if max_ch >= 2 else [])
    return [(r, c) for c in channels for r in rates]


def open_stream(info: DeviceInfo, kind: Kind, rate: int | None, *, period: float = 0.0, **kwargs: Any) -> tuple[Any, int, int]:
    """Open (not start) a float32 stream on ``info``; returns (stream, rate, channels).

    ``rate`` None takes the first rate and channel count the device accepts. ``period`` is the
    audio each callback carries, in seconds, at whatever rate is opened (0: PortAudio chooses, and
    may call back every few milliseconds). Raises the first PortAudioError when none works.
    """
    global _open_streams
    sd = sounddevice()
    cls = sd.InputStream if kind == Kind.INPUT else sd.OutputStream
    error: Exception | None = None
    with LOCK:
        for r, ch in _candidates(info, kind, rate):
            try:
                blocksize = round(period * r)
                stream = cls(device=info.index, samplerate=r, channels=ch, dtype="float32", blocksize=blocksize, **kwargs)
            except sd.PortAudioError as e:
                error = error or e
                continue
            _open_streams += 1
            return stream, r, ch
    assert error is not None
    raise error


def start_stream(stream: Any) -> None:
    """Start an opened stream. Raises PortAudioError, also when the start does not return.

    PortAudio 19.6's ALSA host never returns from ``Pa_StartStream`` when the device fails to start
    in its callback thread (a microphone unplugged between open and start: the thread exits holding
    a mutex the start waits on). Waiting on it would hang this thread and, through :data:`LOCK`,
    every device. So the start runs on a helper thread; one that has not returned in
    :data:`START_TIMEOUT` is abandoned: its stream is never closed (closing waits on the same
    mutex) and stays counted, so no re-scan terminates PortAudio under it, and sounddevice's exit
    handler (``Pa_Terminate``, which would abort the process on that stream) is dropped.
    """
    sd = sounddevice()
    outcome: list[BaseException | None] = []

    def start() -> None:
        try:
            stream.start()
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            outcome.append(e)
        else:
            outcome.append(None)

    with LOCK:
        helper = threading.Thread(target=start, name="portaudio-start", daemon=True)
        helper.start()
        helper.join(START_TIMEOUT)
        if helper.is_alive():
            _stuck.append(stream)
            with contextlib.suppress(AttributeError, ValueError):
                atexit.unregister(sd._exit_handler)
            raise sd.PortAudioError(f"the device did not start within {START_TIMEOUT:g} s")
    if outcome and outcome[0] is not None:
        raise outcome[0]


def close_stream(stream: Any) -> None:
    """Abort and close: ``abort`` returns at once even when the device has stopped delivering
    (``stop`` would wait for PortAudio's poll loop to time out, about 70 s on ALSA)."""
    global _open_streams
    if any(stream is s for s in _stuck):
        return  # its start never returned: closing it would hang (see start_stream)
    sd = sounddevice()
    with LOCK:
        for op in (stream.abort, stream.close):
            with contextlib.suppress(sd.PortAudioError):
                op()
        _open_streams -= 1
