"""What the terminal app's renderers are given: the session's fixed facts, a snapshot per redraw,
and the calls every renderer answers (plain lines, JSON lines, the TUI)."""

from __future__ import annotations

from dataclasses import dataclass

from translator.audio.duplex import Duplex
from translator.events import Event, NoticeLevel
from translator.live import State
from translator.transcript import UtteranceRecord


@dataclass(frozen=True)
class SessionInfo:
    """What does not change while the app runs; shown once at the start and in the TUI's frame."""

    languages: str
    """E.g. ``en → es`` or ``conversation en ⇄ es``."""
    microphone: str
    speaker: str | None
    """The output device's name; None when translations are not spoken."""
    duplex: Duplex | None
    """The duplex mode in force; None when nothing is spoken."""
    ptt: bool
    keys: bool
    """Keys are read (stdin is a terminal)."""


@dataclass(frozen=True)
class Snapshot:
    """Polled by the main thread for each redraw."""

    state: State | None
    """None until the session runs (models loading)."""
    level: float
    """Input level of the last frame, dBFS."""
    talking: bool
    """Push-to-talk: the space bar is held (always True without push-to-talk)."""
    stopping: bool
    now: float = 0.0
    """``time.monotonic()`` of the poll: notices fade by it, so drawing never reads a clock."""

    @property
    def speaking(self) -> bool:
        return self.state in (State.SPEAKING, State.SPEAKING_MUTED)


class Renderer:
    """The app loop's calls, all from the main thread; the default for each is to show nothing."""

    def started(self, info: SessionInfo) -> None: ...

    def event(self, event: Event) -> None: ...

    def record(self, record: UtteranceRecord) -> None: ...

    def status(self, message: str, level: NoticeLevel = NoticeLevel.INFO) -> None: ...

    def tick(self, snap: Snapshot) -> None: ...

    def close(self) -> None: ...

    def emergency(self) -> None:
        """Leave the terminal usable before an immediate exit (signal handler)."""
