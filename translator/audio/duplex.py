"""Which duplex mode a live session runs in: ``audio.duplex`` resolved against what is installed
and the output device in use.

``half``: the microphone is muted while the translation plays (a loudspeaker with no canceller).
``aec``: it stays open and the played speech is cancelled out of it (translator/audio/echo.py).
``full``: it stays open as it is (a headset, whose microphone does not hear the earpiece).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from translator.audio import echo


class Duplex(enum.StrEnum):
    HALF = "half"
    AEC = "aec"
    FULL = "full"


_HEADSET_WORDS = ("headset", "headphone", "earphone", "earbud", "airpods")
"""Words in an output device's name that say the sound goes to the ears, not into the room."""

DESCRIPTIONS = {
    Duplex.HALF: "microphone muted while speaking",
    Duplex.AEC: "full duplex, own speech cancelled from the microphone",
    Duplex.FULL: "full duplex (no self-listening guard)",
}
"""How the front ends name each mode."""


@dataclass(frozen=True)
class Resolved:
    mode: Duplex
    notice: str | None = None
    """Said once when the mode asked for cannot run (the fallback)."""


def resolve(setting: str, output: str) -> Resolved:
    """The mode for ``audio.duplex = setting`` with the output device named ``output``.

    ``auto`` is full duplex for an output named like a headset, echo cancellation where the
    canceller is installed, and half duplex otherwise. ``aec`` without a canceller falls back to
    half duplex with a notice; so does ``auto`` (quietly: it promised nothing).
    """
    if setting == Duplex.FULL or (setting == "auto" and any(w in output.lower() for w in _HEADSET_WORDS)):
        return Resolved(Duplex.FULL)
    if setting == Duplex.HALF:
        return Resolved(Duplex.HALF)
    missing = echo.unavailable()
    if missing is None:
        return Resolved(Duplex.AEC)
    if setting == Duplex.AEC:
        return Resolved(Duplex.HALF, f"audio.duplex = aec: {missing}; the microphone is muted while speaking instead")
    return Resolved(Duplex.HALF)
