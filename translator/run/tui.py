"""The TUI of ``translator run`` (rich): finished utterances scroll up as history, a live panel at
the bottom is redrawn at every tick.

The panel holds the live caption (settled words plain, tentative words dim), the state, an input
level meter, the last utterance's per-stage latency and the latest notices. Everything drawn is
made by the pure functions below from a :class:`PanelView` (or a record): they read no clock and
touch no device, so a test renders them on a captured Console. :class:`TuiRenderer` keeps the
state between events and hands it to them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from translator.audio.duplex import DESCRIPTIONS
from translator.events import Caption, Discarded, Event, Notice, NoticeLevel, SpeechStarted, StageFailed, Transcript, Translation
from translator.live import State
from translator.run.plain import heard_text, latency_text, said
from translator.run.snapshot import Renderer, SessionInfo, Snapshot
from translator.text import one_line
from translator.transcript import INTERRUPTED, NOT_TRANSLATED, UtteranceRecord

METER_FLOOR = -60.0
"""dBFS at the left end of the level meter."""

NOTE_SECONDS = 30.0
"""An info notice leaves the panel after this long; warnings and errors stay until replaced."""

NOTES = 2
"""Notices kept in the panel (the newest)."""

CAPTIONS = 2
"""Utterances in flight shown in the panel (the newest)."""

STATE_STYLE = {
    State.LISTENING: "green",
    State.HEARING: "yellow",
    State.TRANSLATING: "cyan",
    State.SPEAKING: "magenta",
    State.SPEAKING_MUTED: "magenta",
}

LEVEL_STYLE = {NoticeLevel.ERROR: "red", NoticeLevel.WARNING: "yellow", NoticeLevel.INFO: "dim"}


@dataclass(frozen=True)
class LiveCaption:
    """One utterance in flight, as the panel shows it."""

    committed: str = ""
    tentative: str = ""
    language: str = ""
    final: str = ""
    """The final transcript (once known it replaces the caption)."""
    translation: str = ""
    target: str = ""
    """Set by the translation (empty route "same": nothing more to show)."""
    translated: bool = True
    """False: the translation came back in the source language (shown as not translated)."""


@dataclass(frozen=True)
class Note:
    when: float
    """``time.monotonic()`` when it arrived."""
    text: str
    level: NoticeLevel = NoticeLevel.INFO


@dataclass(frozen=True)
class PanelView:
    """Everything the live panel shows."""

    info: SessionInfo | None
    snap: Snapshot
    captions: tuple[LiveCaption, ...] = ()
    last: UtteranceRecord | None = None
    notes: tuple[Note, ...] = ()


# --- what is drawn: pure functions -------------------------------------------------------------


def level_text(text: str, level: NoticeLevel = NoticeLevel.INFO) -> Text:
    """A status line, coloured by its level."""
    return Text(text, style=LEVEL_STYLE[level])


def banner(info: SessionInfo) -> Text:
    """The first history line: languages, devices, the guard."""
    speaker = f"speaker {escape(info.speaker)!r}" if info.speaker else "no speech output"
    guard = ""
    if info.speaker:
        guard = f" · {DESCRIPTIONS[info.duplex]}" if info.duplex is not None else ""
    return Text.from_markup(
        f"[bold]translator[/bold] · {escape(info.languages)} · microphone {escape(info.microphone)!r} · {speaker}{guard}",
        style="dim",
    )


def history(record: UtteranceRecord, stamp: str) -> Table:
    """A finished utterance above the panel: time, route, what was said, its translation, an error."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(ratio=1)
    grid.add_row(stamp, f"{record.language or '?'}→{record.target_language or '?'}", Text(said(record.source_text)))
    if not record.translated:
        grid.add_row("", "", Text(f"→ {NOT_TRANSLATED}", style="yellow"))
    elif record.route not in ("same", "") and record.text:
        grid.add_row("", "", Text("→ " + said(record.text), style="green"))
    if record.interrupted:
        grid.add_row("", "", Text(f"→ {INTERRUPTED}", style="yellow"))
    if record.error:
        grid.add_row("", "", Text("error: " + one_line(record.error), style="red"))
    return grid


def caption_lines(captions: Sequence[LiveCaption], hint: str = "speak…") -> list[Text]:
    """The utterances in flight (``hint`` when there are none)."""
    lines: list[Text] = []
    for u in captions:
        t = Text()
        if u.language:
            t.append(f"{u.language} ", style="bold cyan")
        if u.final:
            t.append(u.final, style="bold")
        else:
            t.append(u.committed)
            if u.committed and u.tentative:
                t.append(" ")
            t.append(u.tentative, style="dim")
            if not (u.committed or u.tentative):
                t.append("…", style="dim")
        lines.append(t)
        if not u.translated:
            lines.append(Text(f"  → {u.target} {NOT_TRANSLATED}", style="yellow"))
        elif u.translation:
            lines.append(Text(f"  → {u.target} {u.translation}", style="green"))
        elif u.final and not u.target:
            lines.append(Text("  translating…", style="dim"))
    return lines or [Text(hint, style="dim italic")]


def meter(level: float, width: int = 16) -> Text:
    """``input ████······  -23 dBFS``: the bar spans :data:`METER_FLOOR` .. 0 dBFS."""
    frac = min(max((level - METER_FLOOR) / -METER_FLOOR, 0.0), 1.0)
    n = round(frac * width)
    style = "red" if level > -3 else "yellow" if level > -12 else "green"
    t = Text("input ")
    t.append("█" * n, style=style)
    t.append("·" * (width - n), style="grey30")
    t.append(f" {level:4.0f} dBFS" if level > METER_FLOOR else "  silent  ", style="dim")
    return t


def _ptt_off(snap: Snapshot, info: SessionInfo | None) -> bool:
    """Push-to-talk with the space bar up (while we speak, the state says more)."""
    return info is not None and info.ptt and not snap.talking and not snap.speaking


def state_line(snap: Snapshot, info: SessionInfo | None) -> Text:
    """``● listening   input ████···  -40 dBFS   TALK``."""
    if snap.stopping:
        state, style = "stopping (Ctrl-C again: quit now)", "bold red"
    elif _ptt_off(snap, info):
        state, style = "microphone off (hold space to talk)", "dim"
    elif snap.state is None:
        state, style = "starting", "bold white"
    else:
        state, style = snap.state.value, "bold " + STATE_STYLE[snap.state]
    t = Text()
    t.append("● ", style=style.replace("bold ", ""))
    t.append(state.ljust(28), style=style)
    t.append("  ")
    t.append_text(meter(snap.level))
    if info is not None and info.ptt:
        t.append("   ")
        t.append(" TALK " if snap.talking else " ptt ", style="bold reverse green" if snap.talking else "dim")
    return t


def panel(view: PanelView) -> Panel:
    """The live panel: captions, state and meter, the last latencies, the notices, the keys."""
    info, snap = view.info, view.snap
    hint = "hold space and speak" if _ptt_off(snap, info) else "speak…"
    rows: list[RenderableType] = [*caption_lines(view.captions, hint), Text(""), state_line(snap, info)]
    if view.last is not None:
        r = view.last
        rows.append(
            Text(f"last #{r.utterance_id} {r.language or '?'}→{r.target_language or '?'}: {latency_text(r)}", style="dim")
        )
    for note in view.notes:
        if snap.now - note.when < NOTE_SECONDS or note.level is not NoticeLevel.INFO:
            rows.append(Text(note.text, style=LEVEL_STYLE[note.level], overflow="ellipsis", no_wrap=True))
    keys = "Ctrl-C stop"
    if info is not None and info.keys:
        keys = "q/Ctrl-C stop" + (" · hold space to talk" if info.ptt else "")
    title = info.languages if info else "translator"
    return Panel(
        Group(*rows), title=escape(title), title_align="left", subtitle=keys, subtitle_align="right", border_style="blue"
    )


# --- the renderer: state between events ---------------------------------------------------------


class TuiRenderer(Renderer):
    """rich.live.Live: history printed above, the live panel redrawn at each tick."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.info: SessionInfo | None = None
        self.current: dict[int, LiveCaption] = {}
        self.last: UtteranceRecord | None = None
        self.notes: deque[Note] = deque(maxlen=NOTES)
        self.snap = Snapshot(None, METER_FLOOR, True, False)
        self.broken = False

    def view(self) -> PanelView:
        captions = tuple(u for _, u in sorted(self.current.items())[-CAPTIONS:])
        return PanelView(self.info, self.snap, captions, self.last, tuple(self.notes))

    def _print(self, renderable: RenderableType) -> None:
        """Into the history, once, above the live panel."""
        if self.broken:
            return
        try:
            (self.live.console if self.live is not None else self.console).print(renderable)
        except OSError:  # the terminal went away (SIGHUP follows): go on translating, quietly
            self.broken = True

    def started(self, info: SessionInfo) -> None:
        self.info = info
        self._print(banner(info))
        self.live = Live(
            panel(self.view()),
            console=self.console,
            auto_refresh=False,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
            vertical_overflow="crop",
        )
        self.live.start()

    def _update(self, uid: int, **changes: Any) -> LiveCaption:
        u = dataclasses.replace(self.current.get(uid, LiveCaption()), **changes)
        self.current[uid] = u
        return u

    def event(self, event: Event) -> None:
        if isinstance(event, SpeechStarted):
            self.current.setdefault(event.utterance_id, LiveCaption())
        elif isinstance(event, Caption):
            if not self.current.get(event.utterance_id, LiveCaption()).final:
                self._update(event.utterance_id, committed=event.committed.strip(), tentative=event.tentative.strip())
        elif isinstance(event, Transcript):
            self._update(event.utterance_id, language=event.language, final=heard_text(event))
        elif isinstance(event, Translation):
            self._update(
                event.utterance_id,
                target=event.target_language,
                translated=event.translated,
                **({"translation": said(event.text)} if event.route != "same" else {}),
            )
        elif isinstance(event, Discarded):
            self.current.pop(event.utterance_id, None)
        elif isinstance(event, Notice):
            self.status(event.message, event.level)
        elif isinstance(event, StageFailed):
            self.status(f"#{event.utterance_id}: {event.stage} failed: {event.message}", NoticeLevel.ERROR)

    def record(self, record: UtteranceRecord) -> None:
        self.current.pop(record.utterance_id, None)
        self.last = record
        self._print(history(record, time.strftime("%H:%M:%S")))

    def status(self, message: str, level: NoticeLevel = NoticeLevel.INFO) -> None:
        note = Note(time.monotonic(), one_line(message), level)
        self.notes.append(note)
        self._print(level_text(f"{time.strftime('%H:%M:%S')} {note.text}", level))

    def tick(self, snap: Snapshot) -> None:
        self.snap = snap
        if self.live is not None and not self.broken:
            try:
                self.live.update(panel(self.view()), refresh=True)
            except OSError:
                self.broken = True

    def close(self) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            with contextlib.suppress(OSError):
                if not self.broken:
                    live.update(panel(self.view()), refresh=True)
                live.stop()

    def emergency(self) -> None:
        with contextlib.suppress(Exception):
            os.write(1, b"\x1b[?25h\r\n")  # cursor back on, off the panel
