"""``translator run``: the live translator in the terminal.

A :class:`~translator.live.LiveSession` (microphone -> the pipeline -> speaker, with the
self-listening guard) shown one of three ways (:class:`~translator.run.terminal.Mode`): the TUI
(translator/run/tui.py), ``--plain`` lines or ``--jsonl`` records (translator/run/plain.py).

Threads: the pipeline's stages run on their own threads; one :class:`~translator.live.EventThread`
iterates the session's events, writes the transcript and queues what it saw; the *main* thread
does all the rendering (:data:`REFRESH_HZ` times a second), reads the keyboard and handles
signals. Device status callbacks only queue a message. So nothing on a pipeline thread ever waits
for the terminal.

Push-to-talk: the microphone is muted (``MicrophoneSource.muted``) while the space bar is up; muted
audio still flows as silence, so an utterance ends cleanly when the key is let go.

Stopping: Ctrl-C, SIGTERM or ``q`` call :meth:`LiveSession.stop` (the utterance in flight is
recognised, translated, spoken and written to the transcript), then the app exits 0. A second
Ctrl-C (or SIGTERM) exits at once with 130 (143).
"""

from __future__ import annotations

import contextlib
import functools
import queue
import select
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from translator import config as cfg
from translator.audio.stream import status_level
from translator.errors import DeviceError, OutputError, TranslatorError
from translator.events import Event, NoticeLevel, SpeechGrowing, SpeechPaused
from translator.languages import from_config
from translator.run.plain import JsonlRenderer, PlainRenderer
from translator.run.snapshot import Renderer, SessionInfo, Snapshot
from translator.run.terminal import Keyboard, Mode, PushToTalk, Signals, stderr_log_path, stderr_to_file, stdin_tty
from translator.run.tui import TuiRenderer, level_text
from translator.transcript import JsonlWriter, UtteranceRecord

if TYPE_CHECKING:  # imported where it is used: it loads the models' libraries
    from translator.live import EventThread

REFRESH_HZ = 8.0
"""How often the main thread redraws (and polls state, level and keys)."""

PTT_POLL = 0.05
"""Seconds between looks at the space bar while it is held, so letting go mutes at once."""


@dataclass(frozen=True)
class RunOptions:
    mode: Mode = Mode.TUI
    speak: bool = True
    ptt: bool = False
    transcript: str | None = None
    """Append one JSON line per utterance to this file."""


def make_renderer(mode: Mode, console: Console) -> Renderer:
    if mode is Mode.TUI:
        return TuiRenderer(console)
    if mode is Mode.JSONL:
        return JsonlRenderer()
    return PlainRenderer()


def run_live(config: cfg.Config, options: RunOptions, console: Console) -> int:
    """``translator run``: check devices, load models, run a LiveSession until stopped."""
    mode = Mode(options.mode)
    stdin_fd = stdin_tty()
    if options.ptt and stdin_fd is None:
        raise TranslatorError("--ptt reads the space bar: run it in a terminal (stdin is not one)")
    log_path: Path | None = None
    with contextlib.ExitStack() as stack:
        if mode is Mode.TUI:
            try:
                log_path = stderr_log_path()
            except Exception:  # noqa: BLE001 - platformdirs failing: /dev/null then
                log_path = None
            log_path = stack.enter_context(stderr_to_file(log_path))
        code = _run(config, options, mode, console, stack, stdin_fd)
    if log_path is not None and log_path.exists() and log_path.stat().st_size:
        console.print(f"[dim](messages from the audio libraries are in {escape(str(log_path))})[/dim]", highlight=False)
    return code


def _run(
    config: cfg.Config, options: RunOptions, mode: Mode, console: Console, stack: contextlib.ExitStack, stdin_fd: int | None
) -> int:
    from translator.audio.lookup import find_device  # noqa: PLC0415 - PortAudio loads on first use

    renderer = make_renderer(mode, console)
    keyboard: Keyboard | None = None
    writer: JsonlWriter | None = None
    consumer: EventThread | None = None

    def emergency() -> None:
        renderer.emergency()
        if keyboard is not None:
            keyboard.restore()
        if consumer is not None and writer is not None:  # translated, still being spoken: kept
            with contextlib.suppress(OutputError):
                for record in consumer.unheard():
                    writer.write(record)

    signals = Signals(emergency)
    signals.install()
    stack.callback(signals.restore)

    def say(message: str, level: NoticeLevel = NoticeLevel.INFO) -> None:
        """Before the session shows: the TUI has no panel yet, the others print a line."""
        if mode is Mode.TUI:
            console.print(level_text(message, level))
        else:
            renderer.status(message, level)

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
            say(f"no audio output ({e}); captions only", NoticeLevel.WARNING)
            speak = False
    if options.transcript:
        writer = stack.enter_context(JsonlWriter(options.transcript, append=True))

    from translator.assemble import load_engines  # noqa: PLC0415 - loads the models' libraries
    from translator.live import EventThread, LiveSession  # noqa: PLC0415

    languages = from_config(config).describe()
    what = f"loading models (speech {config.asr.model}) for {languages}…"
    if mode is Mode.TUI:
        with console.status(what):
            engines = load_engines(config, speak=speak)
    else:
        say(what)
        engines = load_engines(config, speak=speak)
    if signals.received:
        return 0  # stopped while loading
    speak = speak and engines.speaker_stage is not None

    # What the other threads saw, for the main thread to show: calls on the renderer.
    inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def on_status(message: str) -> None:  # device threads: queue only
        inbox.put(functools.partial(renderer.status, message, status_level(message)))
        signals.wake()

    session = LiveSession(engines, audio, speak=speak, on_status=on_status)
    mic = session.microphone
    ptt = PushToTalk() if options.ptt else None
    if ptt is not None:
        mic.muted.set()
    if stdin_fd is not None and (mode is Mode.TUI or options.ptt):
        keyboard = Keyboard(stdin_fd)
        stack.callback(keyboard.restore)

    info = SessionInfo(
        languages=languages,
        microphone=mic.info.name,
        speaker=session.speaker.info.name if session.speaker is not None else None,
        duplex=session.duplex if session.speaker is not None else None,
        ptt=options.ptt,
        keys=keyboard is not None,
    )
    for notice in engines.notices:
        inbox.put(functools.partial(renderer.event, notice))

    def on_event(event: Event) -> None:
        if not isinstance(event, (SpeechGrowing, SpeechPaused)):  # audio snapshots: nothing to show
            inbox.put(functools.partial(renderer.event, event))

    def on_record(record: UtteranceRecord) -> None:
        if writer is not None:
            try:
                writer.write(record)
            except OutputError as e:
                inbox.put(functools.partial(renderer.status, f"transcript: {e}", NoticeLevel.ERROR))
        inbox.put(functools.partial(renderer.record, record))

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
            wait = min(wait, PTT_POLL)
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
                call = inbox.get_nowait()
            except queue.Empty:
                break
            call()
        if now >= next_draw or consumer.done.is_set():
            next_draw = now + period
            renderer.tick(
                Snapshot(
                    state=session.state,
                    level=float(session.level),
                    talking=ptt.held(now) if ptt is not None else True,
                    stopping=stopping,
                    now=now,
                )
            )
        if consumer.done.is_set() and inbox.empty():
            break
    if consumer.error is not None:
        raise consumer.error
    if not stopping:
        renderer.status("the microphone session ended", NoticeLevel.WARNING)
    return 0
