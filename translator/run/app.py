"""``translator run``: the live translator in the terminal.

A :class:`~translator.live.LiveSession` (microphone -> the pipeline -> speaker, with the
self-listening guard) shown one of three ways:

* **TUI** (rich): finished utterances scroll up as history (time, language, source text,
  translation); a panel at the bottom holds the live caption (committed words normal, tentative
  words dim), the state (listening / hearing speech / translating / speaking, microphone muted),
  an input level meter, the last utterance's per-stage latency and the latest status or notice
  (device lost/back, fallback voice).
* **--plain**: one line per event, no colours (for logs and pipes; chosen by itself when stdout is
  not a terminal).
* **--jsonl**: one JSON object per utterance on stdout (the :class:`UtteranceRecord` fields, as in
  the ``--transcript`` file); status lines go to stderr.

Threads: the pipeline's stages run on their own threads; one *consumer* thread iterates
:meth:`LiveSession.events`, writes the transcript and queues what it saw; the *main* thread does
all the rendering (about 8 times a second), reads the keyboard and handles signals. Device status
callbacks only queue a message. So nothing on a pipeline thread ever waits for the terminal.

Library messages on stderr: libasound prints "ALSA lib pcm.c:...: underrun occurred" (and, on many
desktops, a screenful of device-probing complaints when PortAudio starts) straight to file
descriptor 2, which would tear the TUI apart. While the TUI runs, fd 2 is redirected to a log file
(:func:`stderr_log_path`, truncated per run) — this catches every C library, not only ALSA, which an
``snd_lib_error_set_handler`` hook would not — and restored before any error is printed.

Keys (when stdin is a terminal, read in cbreak mode without echo): ``q`` stops like Ctrl-C;
with ``--ptt``, hold the space bar to talk. A terminal only reports key presses, not releases;
holding a key makes it auto-repeat (after an initial delay of 250-660 ms, then 25-40 times a
second). So the space bar counts as held while a space arrived within the last
:data:`PTT_HOLD` seconds, or :data:`PTT_FIRST_HOLD` right after the first one of a press (to bridge
the initial repeat delay). The microphone is muted (``MicrophoneSource.muted``) otherwise; muted
audio still flows as silence, so an utterance ends cleanly when the key is let go.

Stopping: Ctrl-C, SIGTERM or ``q`` call :meth:`LiveSession.stop` (the utterance in flight is
recognised, translated, spoken and written to the transcript), then the app exits 0. A second
Ctrl-C (or SIGTERM) exits at once with 130 (143).
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import signal
import statistics
import sys
import termios
import time
import tty
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from translator import config as cfg
from translator.errors import DeviceError, OutputError, TranslatorError
from translator.events import (
    Caption,
    Discarded,
    Event,
    Notice,
    SpeechChunk,
    SpeechGrowing,
    SpeechPaused,
    SpeechStarted,
    StageFailed,
    Transcript,
    Translation,
    UtteranceEnded,
)
from translator.transcript import JsonlWriter, UtteranceRecord

REFRESH_HZ = 8.0
"""How often the main thread redraws (and polls state, level and keys)."""

PTT_HOLD = 0.6
"""Push-to-talk: the space bar counts as held while a space arrived within this many seconds."""

PTT_FIRST_HOLD = 0.8
"""...or within this many seconds of the first space of a press (the keyboard's initial
auto-repeat delay is 250-660 ms: X11's default is 660 ms)."""

METER_FLOOR = -60.0
"""dBFS at the left end of the level meter."""

MODES = ("tui", "plain", "jsonl")


def choose_mode(plain: bool, jsonl: bool, stdout: IO[str] | None = None) -> str:
    """``jsonl`` or ``plain`` when asked; else the TUI on a terminal and ``plain`` otherwise."""
    if jsonl:
        return "jsonl"
    if plain:
        return "plain"
    out = stdout or sys.stdout
    try:
        tty_out = out.isatty()
    except (AttributeError, ValueError):
        tty_out = False
    if not tty_out or os.environ.get("TERM") == "dumb":
        return "plain"
    return "tui"


def stderr_log_path() -> Path:
    """Where fd 2 goes while the TUI runs: ``<user state dir>/translator/run-stderr.log``."""
    import platformdirs  # noqa: PLC0415

    return Path(platformdirs.user_state_dir("translator")) / "run-stderr.log"


@contextlib.contextmanager
def stderr_to_file(path: Path | None) -> Iterator[Path | None]:
    """Point file descriptor 2 (C libraries, Python's stderr) at ``path`` while inside; yields
    the path used (None when it could not be opened: then /dev/null)."""
    sys.stderr.flush()
    saved = os.dup(2)
    used: Path | None = path
    try:
        fd = -1
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            except OSError:
                fd = -1
        if fd < 0:
            used = None
            fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        os.dup2(fd, 2)
        os.close(fd)
        yield used
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


# --- push-to-talk -------------------------------------------------------------------------------


class PushToTalk:
    """Is the space bar held? Terminals report presses (and auto-repeats), never releases."""

    def __init__(self, hold: float = PTT_HOLD, first_hold: float = PTT_FIRST_HOLD) -> None:
        self.hold = hold
        self.first_hold = first_hold
        self._last = -1e9
        self._repeats = 0

    def press(self, now: float) -> None:
        """A space arrived (a press or an auto-repeat)."""
        if self.held(now):
            self._repeats += 1
        else:
            self._repeats = 0
        self._last = now

    def held(self, now: float) -> bool:
        window = self.first_hold if self._repeats == 0 else self.hold
        return now - self._last <= window


# --- what the renderers are given ---------------------------------------------------------------


@dataclass(frozen=True)
class SessionInfo:
    languages: str
    """E.g. ``en → es`` or ``conversation en ⇄ es``."""
    microphone: str
    speaker: str | None
    half_duplex: bool
    ptt: bool
    keys: bool
    """Keys are read (stdin is a terminal)."""


@dataclass(frozen=True)
class Snapshot:
    """Polled by the main thread for each redraw."""

    state: str
    level: float
    talking: bool
    """Push-to-talk: the space bar is held (always True without push-to-talk)."""
    stopping: bool


def describe_languages(config: cfg.Config) -> str:
    lang = config.languages
    if lang.pair:
        a, _, b = lang.pair.partition(":")
        return f"conversation {a.strip()} ⇄ {b.strip()}"
    source = lang.source if lang.source not in ("", "auto") else "auto"
    return f"{source} → {lang.target}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f} ms"


def latency_text(record: UtteranceRecord) -> str:
    """``asr 412 ms · mt 480 ms · speech 620 ms · caption lag 0.35 s (3 captions)``."""
    parts = [f"asr {_ms(record.asr_final)}", f"mt {_ms(record.mt)}"]
    if record.speech_to_speech is not None:
        parts.append(f"speech {_ms(record.speech_to_speech)}")
    if record.caption_lags:
        n = len(record.caption_lags)
        parts.append(f"caption lag {statistics.median(record.caption_lags):.2f} s ({n} caption{'s' if n > 1 else ''})")
    return " · ".join(parts)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class Renderer:
    """Called from the main thread only."""

    def started(self, info: SessionInfo) -> None: ...

    def event(self, event: Event) -> None: ...

    def record(self, record: UtteranceRecord) -> None: ...

    def status(self, message: str, level: str = "info") -> None: ...

    def tick(self, snap: Snapshot) -> None: ...

    def close(self) -> None: ...

    def emergency(self) -> None:
        """Leave the terminal usable before an immediate exit (signal handler)."""


# --- --plain ------------------------------------------------------------------------------------


class PlainRenderer(Renderer):
    """One line per event, time-stamped, no colours."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self._captions: dict[int, str] = {}
        self._muted = False
        self._talking: bool | None = None

    def line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        try:
            self.out.write(f"{stamp} {text}\n")
            self.out.flush()
        except (OSError, ValueError):  # a closed pipe or terminal: go on translating
            pass

    def started(self, info: SessionInfo) -> None:
        speaker = f"speaking on {info.speaker!r}" if info.speaker else "not speaking"
        guard = ""
        if info.speaker:
            guard = "; microphone muted while speaking" if info.half_duplex else "; full duplex (no self-listening guard)"
        keys = "; hold space to talk" if info.ptt else ""
        self.line(f"ready: {info.languages}; microphone {info.microphone!r}; {speaker}{guard}{keys}; Ctrl-C to stop")

    def event(self, event: Event) -> None:
        uid = getattr(event, "utterance_id", None)
        if isinstance(event, SpeechStarted):
            self.line(f"#{uid} speech started at {event.start:.2f} s")
        elif isinstance(event, Caption):
            text = _one_line(f"{event.committed} {event.tentative}")
            if text and text != self._captions.get(event.utterance_id):
                self._captions[event.utterance_id] = text
                stable = f"  (stable: {_one_line(event.committed)})" if event.committed.strip() else ""
                self.line(f"#{uid} caption: {text}{stable}")
        elif isinstance(event, UtteranceEnded):
            cut = ", cut at the length cap" if event.cut else ""
            self.line(f"#{uid} speech ended at {event.t_end:.2f} s ({event.t_end - event.start:.1f} s{cut})")
        elif isinstance(event, Transcript):
            self._captions.pop(event.utterance_id, None)
            self.line(f"#{uid} heard ({event.language}): {_one_line(event.original or event.text) if event.task == 'translate' else _one_line(event.text)}")
        elif isinstance(event, Translation):
            if event.route != "same":
                self.line(f"#{uid} translated ({event.source_language} → {event.target_language}, {event.route}): {_one_line(event.text)}")
        elif isinstance(event, SpeechChunk):
            if event.index == 0:
                self.line(f"#{uid} speaking ({event.voice})")
        elif isinstance(event, Discarded):
            self._captions.pop(event.utterance_id, None)
            self.line(f"#{uid} not speech, discarded")
        elif isinstance(event, Notice):
            self.status(event.message, event.level)
        elif isinstance(event, StageFailed):
            self.line(f"#{uid} error: {event.stage} failed: {_one_line(event.message)}")

    def record(self, record: UtteranceRecord) -> None:
        route = f"{record.language or '?'} → {record.target_language or '?'}"
        error = f" · error: {_one_line(record.error)}" if record.error else ""
        self.line(f"#{record.utterance_id} done ({route}): {latency_text(record)}{error}")

    def status(self, message: str, level: str = "info") -> None:
        prefix = "" if level == "info" else f"{level}: "
        self.line(f"{prefix}{_one_line(message)}")

    def tick(self, snap: Snapshot) -> None:
        muted = snap.state.startswith("speaking (microphone muted")
        if muted != self._muted:
            self._muted = muted
            self.line("microphone muted while speaking" if muted else "microphone open")
        if snap.talking != self._talking:
            if self._talking is not None:
                self.line("push-to-talk: talking" if snap.talking else "push-to-talk: microphone off")
            self._talking = snap.talking


class JsonlRenderer(PlainRenderer):
    """One JSON object per utterance on stdout; status lines (plain) on stderr."""

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        super().__init__(err or sys.stderr)
        self.records = out or sys.stdout

    def event(self, event: Event) -> None:
        if isinstance(event, (Notice, StageFailed)):
            super().event(event)

    def record(self, record: UtteranceRecord) -> None:
        try:
            self.records.write(record.to_json() + "\n")
            self.records.flush()
        except (OSError, ValueError):  # a closed pipe or terminal: go on translating
            pass

    def tick(self, snap: Snapshot) -> None:
        pass


# --- the TUI ------------------------------------------------------------------------------------

_STATE_STYLE = {
    "listening": "green",
    "hearing speech": "yellow",
    "translating": "cyan",
    "speaking": "magenta",
}


@dataclass
class _Utterance:
    committed: str = ""
    tentative: str = ""
    language: str = ""
    final: str = ""
    translation: str = ""
    target: str = ""


@dataclass
class _Line:
    when: float
    text: str
    level: str = "info"


class TuiRenderer(Renderer):
    """rich.live.Live: history printed above, the live panel redrawn at :data:`REFRESH_HZ`."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live: Live | None = None
        self.info: SessionInfo | None = None
        self.current: dict[int, _Utterance] = {}
        self.last: UtteranceRecord | None = None
        self.notes: deque[_Line] = deque(maxlen=2)
        self.snap = Snapshot("starting", METER_FLOOR, True, False)
        self.broken = False

    # history, printed once above the live panel

    def _print(self, renderable: RenderableType) -> None:
        if self.broken:
            return
        try:
            (self.live.console if self.live is not None else self.console).print(renderable)
        except OSError:  # the terminal went away (SIGHUP follows): go on translating, quietly
            self.broken = True

    def started(self, info: SessionInfo) -> None:
        self.info = info
        speaker = f"speaker {escape(info.speaker)!r}" if info.speaker else "no speech output"
        guard = ""
        if info.speaker:
            guard = " · microphone muted while speaking" if info.half_duplex else " · full duplex"
        self._print(Text.from_markup(f"[bold]translator[/bold] · {escape(info.languages)} · microphone "
                                     f"{escape(info.microphone)!r} · {speaker}{guard}", style="dim"))
        self.live = Live(self._render(), console=self.console, auto_refresh=False, transient=False,
                         redirect_stdout=False, redirect_stderr=False, vertical_overflow="crop")
        self.live.start()

    def event(self, event: Event) -> None:
        uid = getattr(event, "utterance_id", None)
        if isinstance(event, SpeechStarted):
            self.current.setdefault(event.utterance_id, _Utterance())
        elif isinstance(event, Caption):
            u = self.current.setdefault(event.utterance_id, _Utterance())
            if not u.final:
                u.committed, u.tentative = event.committed.strip(), event.tentative.strip()
        elif isinstance(event, Transcript):
            u = self.current.setdefault(event.utterance_id, _Utterance())
            u.language = event.language
            u.final = _one_line(event.original if event.task == "translate" and event.original else event.text)
        elif isinstance(event, Translation):
            u = self.current.setdefault(event.utterance_id, _Utterance())
            u.target = event.target_language
            if event.route != "same":
                u.translation = _one_line(event.text)
        elif isinstance(event, Discarded):
            self.current.pop(event.utterance_id, None)
        elif isinstance(event, Notice):
            self.status(event.message, event.level)
        elif isinstance(event, StageFailed):
            self.status(f"#{uid}: {event.stage} failed: {event.message}", "error")

    def record(self, record: UtteranceRecord) -> None:
        self.current.pop(record.utterance_id, None)
        self.last = record
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(style="bold cyan", no_wrap=True)
        grid.add_column(ratio=1)
        stamp = time.strftime("%H:%M:%S")
        route = f"{record.language or '?'}→{record.target_language or '?'}"
        grid.add_row(stamp, route, Text(_one_line(record.source_text)))
        if record.route not in ("same", "") and record.text:
            grid.add_row("", "", Text("→ " + _one_line(record.text), style="green"))
        if record.error:
            grid.add_row("", "", Text("error: " + _one_line(record.error), style="red"))
        self._print(grid)

    def status(self, message: str, level: str = "info") -> None:
        line = _Line(time.monotonic(), _one_line(message), level)
        self.notes.append(line)
        style = {"error": "red", "warning": "yellow"}.get(level, "dim")
        self._print(Text(f"{time.strftime('%H:%M:%S')} {line.text}", style=style))

    def tick(self, snap: Snapshot) -> None:
        self.snap = snap
        if self.live is not None and not self.broken:
            try:
                self.live.update(self._render(), refresh=True)
            except OSError:
                self.broken = True

    # the live panel

    def _caption_lines(self) -> list[Text]:
        lines: list[Text] = []
        for _uid, u in sorted(self.current.items())[-2:]:
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
            if u.translation:
                lines.append(Text(f"  → {u.target} {u.translation}", style="green"))
            elif u.final and not u.translation and u.target == "":
                lines.append(Text("  translating…", style="dim"))
        if not lines:
            hint = "hold space and speak" if (self.info and self.info.ptt and not self.snap.talking) else "speak…"
            lines.append(Text(hint, style="dim italic"))
        return lines

    def _meter(self, level: float, width: int = 16) -> Text:
        frac = min(max((level - METER_FLOOR) / -METER_FLOOR, 0.0), 1.0)
        n = round(frac * width)
        style = "red" if level > -3 else "yellow" if level > -12 else "green"
        t = Text("input ")
        t.append("█" * n, style=style)
        t.append("·" * (width - n), style="grey30")
        t.append(f" {level:4.0f} dBFS" if level > METER_FLOOR else "  silent  ", style="dim")
        return t

    def _state_line(self) -> Text:
        snap = self.snap
        if snap.stopping:
            state, style = "stopping (Ctrl-C again: quit now)", "bold red"
        elif self.info is not None and self.info.ptt and not snap.talking and not snap.state.startswith("speaking"):
            state, style = "microphone off (hold space to talk)", "dim"
        else:
            state = snap.state
            style = "bold " + _STATE_STYLE.get(state.split(" (")[0], "white")
        t = Text()
        t.append("● ", style=style.replace("bold ", ""))
        t.append(state.ljust(28), style=style)
        t.append("  ")
        t.append_text(self._meter(snap.level))
        if self.info is not None and self.info.ptt:
            t.append("   ")
            t.append(" TALK " if snap.talking else " ptt ", style="bold reverse green" if snap.talking else "dim")
        return t

    def _render(self) -> RenderableType:
        rows: list[RenderableType] = [*self._caption_lines(), Text(""), self._state_line()]
        if self.last is not None:
            r = self.last
            rows.append(Text(f"last #{r.utterance_id} {r.language or '?'}→{r.target_language or '?'}: {latency_text(r)}",
                             style="dim"))
        now = time.monotonic()
        for note in self.notes:
            if now - note.when < 30 or note.level != "info":
                style = {"error": "red", "warning": "yellow"}.get(note.level, "dim")
                rows.append(Text(note.text, style=style, overflow="ellipsis", no_wrap=True))
        keys = "Ctrl-C stop"
        if self.info is not None and self.info.keys:
            keys = "q/Ctrl-C stop" + (" · hold space to talk" if self.info.ptt else "")
        title = self.info.languages if self.info else "translator"
        return Panel(Group(*rows), title=escape(title), title_align="left", subtitle=keys, subtitle_align="right",
                     border_style="blue")

    def close(self) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            with contextlib.suppress(OSError):
                if not self.broken:
                    live.update(self._render(), refresh=True)
                live.stop()

    def emergency(self) -> None:
        with contextlib.suppress(Exception):
            os.write(1, b"\x1b[?25h\r\n")  # cursor back on, off the panel


def make_renderer(mode: str, console: Console) -> Renderer:
    if mode == "tui":
        return TuiRenderer(console)
    if mode == "jsonl":
        return JsonlRenderer()
    return PlainRenderer()


# --- signals and keys ---------------------------------------------------------------------------


class Signals:
    """SIGINT/SIGTERM/SIGHUP: the first asks for a graceful stop, the second exits at once (128+signal).

    The handlers only record the signal and wake the main loop through a pipe; ``on_second`` runs
    in the handler to put the terminal back before ``os._exit``.
    """

    def __init__(self, on_second: Callable[[], None]) -> None:
        self.on_second = on_second
        self.received: list[int] = []
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._old: dict[int, Any] = {}

    @property
    def fd(self) -> int:
        return self._r

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal went away
            self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.received:
            self.on_second()
            os._exit(128 + signum)
        self.received.append(signum)
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._w, b"\0")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._r, 512):
                pass

    def restore(self) -> None:
        for sig, old in self._old.items():
            with contextlib.suppress(Exception):
                signal.signal(sig, old)
        self._old.clear()
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)


class Keyboard:
    """stdin in cbreak mode (keys arrive one by one, not echoed; Ctrl-C still signals)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd, termios.TCSANOW)
        self.open = True

    def read(self) -> bytes:
        try:
            data = os.read(self.fd, 64)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:
            self.open = False
        return data

    def restore(self) -> None:
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


def _stdin_tty() -> int | None:
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return None
    return fd if os.isatty(fd) else None


# --- the app ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    mode: str = "tui"
    speak: bool = True
    ptt: bool = False
    transcript: str | None = None


def run_live(config: cfg.Config, options: RunOptions, console: Console) -> int:
    """``translator run``: check devices, load models, run a LiveSession until stopped."""
    if options.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    stdin_fd = _stdin_tty()
    if options.ptt and stdin_fd is None:
        raise TranslatorError("--ptt reads the space bar: run it in a terminal (stdin is not one)")
    log_path: Path | None = None
    with contextlib.ExitStack() as stack:
        if options.mode == "tui":
            try:
                log_path = stderr_log_path()
            except Exception:  # noqa: BLE001 - platformdirs failing: /dev/null then
                log_path = None
            log_path = stack.enter_context(stderr_to_file(log_path))
        code = _run(config, options, console, stack, stdin_fd)
    if log_path is not None and log_path.exists() and log_path.stat().st_size:
        console.print(f"[dim](messages from the audio libraries are in {escape(str(log_path))})[/dim]", highlight=False)
    return code


def _run(config: cfg.Config, options: RunOptions, console: Console, stack: contextlib.ExitStack, stdin_fd: int | None) -> int:
    from translator.audio.lookup import find_device  # noqa: PLC0415 (PortAudio)

    renderer = make_renderer(options.mode, console)
    keyboard: Keyboard | None = None

    def emergency() -> None:
        renderer.emergency()
        if keyboard is not None:
            keyboard.restore()

    signals = Signals(emergency)
    signals.install()
    stack.callback(signals.restore)
    say = renderer.status if options.mode != "tui" else (lambda m, level="info": console.print(
        Text(m, style={"error": "red", "warning": "yellow"}.get(level, "dim"))))

    # Devices first, then the transcript file, then the models: every user error before the long part.
    audio = config.audio
    find_device(audio.input, "input")
    speak = options.speak and config.tts.enabled
    if speak:
        try:
            find_device(audio.output, "output")
        except DeviceError as e:
            if audio.output.strip():
                raise
            say(f"no audio output ({e}); captions only", "warning")
            speak = False
    writer = stack.enter_context(JsonlWriter(options.transcript, append=True)) if options.transcript else None

    from translator.assemble import load_engines  # noqa: PLC0415 (heavy)
    from translator.live import EventThread, LiveSession  # noqa: PLC0415

    what = f"loading models (speech {config.asr.model}) for {describe_languages(config)}…"
    if options.mode == "tui":
        with console.status(what):
            engines = load_engines(config, speak=speak)
    else:
        say(what)
        engines = load_engines(config, speak=speak)
    if signals.received:
        return 0  # stopped while loading
    speak = speak and engines.speaker_stage is not None

    inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()

    def on_status(message: str) -> None:  # device threads: queue only
        bad = any(w in message for w in ("lost", "failed", "cannot", "not played"))
        inbox.put(("status", (message, "warning" if bad else "info")))
        signals.wake()

    session = LiveSession(engines, audio, speak=speak, on_status=on_status)
    mic = session.microphone
    ptt = PushToTalk() if options.ptt else None
    if ptt is not None:
        mic.muted.set()
    if stdin_fd is not None and (options.mode == "tui" or options.ptt):
        keyboard = Keyboard(stdin_fd)
        stack.callback(keyboard.restore)

    info = SessionInfo(
        languages=describe_languages(config),
        microphone=f"{mic.info.name}",
        speaker=session.speaker.info.name if session.speaker is not None else None,
        half_duplex=session.audio.half_duplex,
        ptt=options.ptt,
        keys=keyboard is not None,
    )
    for notice in engines.notices:
        inbox.put(("event", notice))
    def on_event(event: Event) -> None:
        if not isinstance(event, (SpeechGrowing, SpeechPaused)):  # audio snapshots: nothing to show
            inbox.put(("event", event))

    def on_record(record: UtteranceRecord) -> None:
        if writer is not None:
            try:
                writer.write(record)
            except OutputError as e:
                inbox.put(("status", (f"transcript: {e}", "error")))
        inbox.put(("record", record))

    consumer = EventThread(session, on_event=on_event, on_record=on_record, wake=signals.wake)
    renderer.started(info)
    stack.callback(renderer.close)
    consumer.start()

    stopping = False
    period = 1.0 / REFRESH_HZ
    next_draw = 0.0
    while True:
        now = time.monotonic()
        fds = [signals.fd] + ([keyboard.fd] if keyboard is not None and keyboard.open else [])
        wait = max(0.0, min(next_draw - now, period))
        if ptt is not None and ptt.held(now):
            wait = min(wait, 0.05)
        try:
            ready, _, _ = select.select(fds, [], [], wait)
        except InterruptedError:
            ready = []
        signals.drain()
        now = time.monotonic()
        if keyboard is not None and keyboard.fd in ready:
            for key in keyboard.read():
                if key == 0x20 and ptt is not None:
                    ptt.press(now)
                elif key in (ord("q"), ord("Q")) and not stopping:
                    signals.received.append(0)
        if signals.received and not stopping:
            stopping = True
            renderer.status("stopping: finishing the utterance in flight (Ctrl-C again to quit now)")
            if ptt is not None:
                mic.muted.set()
            session.stop()
        if ptt is not None and not stopping:
            talking = ptt.held(now)
            if talking == mic.muted.is_set():
                (mic.muted.clear if talking else mic.muted.set)()
        while True:
            try:
                kind, item = inbox.get_nowait()
            except queue.Empty:
                break
            if kind == "event":
                renderer.event(item)
            elif kind == "record":
                renderer.record(item)
            else:
                renderer.status(*item)
        if now >= next_draw or consumer.done.is_set():
            next_draw = now + period
            renderer.tick(Snapshot(
                state=session.state,
                level=float(session.level),
                talking=ptt.held(now) if ptt is not None else True,
                stopping=stopping,
            ))
        if consumer.done.is_set() and inbox.empty():
            break
    if consumer.error is not None:
        raise consumer.error
    if not stopping:
        renderer.status("the microphone session ended", "warning")
    return 0


# --- translator devices -------------------------------------------------------------------------


def device_table() -> list[str]:
    """``translator devices``: inputs and outputs by name, the defaults starred."""
    from translator.audio.lookup import find_device  # noqa: PLC0415
    from translator.audio.portaudio import list_devices  # noqa: PLC0415

    devices = list_devices()
    lines: list[str] = []
    for kind in ("input", "output"):
        found = [d for d in devices if d.has(kind)]
        try:
            default = find_device("", kind).index  # type: ignore[arg-type]
        except DeviceError:
            default = None
        lines.append(f"{kind}s:")
        if not found:
            lines.append("  (none)")
        for d in found:
            mark = "*" if d.index == default else " "
            channels = d.max_input_channels if kind == "input" else d.max_output_channels
            lines.append(f"  {mark} {d.name}  [{d.index}, {d.host_api}, {channels} ch, {d.default_samplerate:g} Hz]")
    lines.append("* = default. --input/--output take a name or a part of one (the index shifts when devices change).")
    return lines


__all__ = [
    "MODES",
    "PTT_FIRST_HOLD",
    "PTT_HOLD",
    "REFRESH_HZ",
    "JsonlRenderer",
    "PlainRenderer",
    "PushToTalk",
    "RunOptions",
    "TuiRenderer",
    "choose_mode",
    "device_table",
    "run_live",
]
