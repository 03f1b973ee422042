"""Which device the user means: a device is chosen by name, never by index.

An index shifts when a device is plugged in; a name does not. :func:`find_device` takes the exact
name, else a case-insensitive part of one, and an empty query means the system default. What
PortAudio lists is in :mod:`translator.audio.portaudio`.
"""

from __future__ import annotations

from translator.audio import portaudio
from translator.audio.portaudio import DeviceInfo, Kind
from translator.errors import DeviceError


def _quoted(devices: list[DeviceInfo]) -> str:
    return ", ".join(repr(d.name) for d in devices)


def _prefer_one(matches: list[DeviceInfo], kind: Kind) -> DeviceInfo | None:
    """One device out of several matches when they are the same device seen through several host
    APIs (Windows lists a headset under MME, DirectSound and WASAPI): the default one's API wins."""
    if len({d.name for d in matches}) != 1:
        return None
    default = portaudio.default_index(kind)
    for d in matches:
        if d.index == default:
            return d
    return matches[0]


def find_device(query: str = "", kind: Kind | str = Kind.INPUT) -> DeviceInfo:
    """The input or output device named ``query``: the exact name, else a case-insensitive part of it.

    An empty query is the system default. A query of digits that names no device is taken as an
    index (as ``translator devices`` prints them). Raises :class:`DeviceError` naming the devices
    there are when nothing matches, or the matches when the query is ambiguous.
    """
    try:
        kind = Kind(kind)
    except ValueError:
        raise ValueError(f"kind must be 'input' or 'output', got {kind!r}") from None
    devices = [d for d in portaudio.list_devices() if d.has(kind)]
    what = "microphone" if kind == Kind.INPUT else "speaker or headphones"
    if not devices:
        raise DeviceError(
            f"no audio {kind} device found; connect a {what}, or check that the sound server (PulseAudio/PipeWire) is running"
        )
    q = query.strip()
    if not q:
        index = portaudio.default_index(kind)
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
