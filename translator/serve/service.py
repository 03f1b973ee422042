"""``translator serve``: the live translator as a systemd service, and its main loop.

``serve`` is the live translator without a terminal: one :class:`~translator.live.LiveSession`
(microphone -> the pipeline -> speaker, the same code as ``translator run``), plus what a box that
runs unattended for weeks needs (docs/service.md is the guide). The pieces live beside this file:
the journal log (journal.py, eventlog.py), the crash-safe transcript (transcript_log.py),
sd_notify (notify.py), health (health.py), the config with line numbers (settings.py), model
loading and the running session (session.py). This file is the loop that ties them together:

* **Start-up**: the config is read first (a mistake exits 78, EX_CONFIG, so the unit's
  ``RestartPreventExitStatus=78`` keeps systemd from restart-looping; so does a wrong language or
  model); the models load on a thread while STATUS says so; ``READY=1`` once they are warm and the
  microphone is open (or, when no microphone exists yet, once the models are loaded: STATUS then
  says "waiting for microphone").
* **Watchdog**: ``WATCHDOG=1`` every ``WATCHDOG_USEC/2`` only while the pipeline is healthy (audio
  blocks arriving while the microphone is connected, no part stuck on one item longer than
  ``--stall-timeout``); STATUS says what it is doing and the last utterance's latency.
* **Signals**: SIGTERM/SIGINT finish the utterance in flight (recognised, translated, spoken,
  written), then exit 0 (``STOPPING=1``). SIGHUP re-reads the config (``RELOADING=1``): the loaded
  speech model is kept when ``[asr]`` (and the model store) did not change, the rest is rebuilt in
  the background while the old session goes on; the next utterance uses the new settings. A bad
  new config is reported and the old settings stay.
* **Exit codes**: 0 after SIGTERM; 78 for a wrong config, language or model; 1 for a crash
  (systemd restarts the service).
* **Devices**: a missing microphone at start or one that vanishes later never stops the service:
  it retries with backoff (:class:`~translator.audio.microphone.MicrophoneSource` reconnects by
  itself once open), says so in STATUS and the journal, and recovers when the device appears. A
  missing speaker means translating without speech until the next start or SIGHUP.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from translator import config as cfg
from translator.errors import EXIT_CONFIG, ConfigError, DeviceError, LanguageError, ModelError, OutputError, TranslatorError
from translator.serve.eventlog import log_device_status, log_event, log_record
from translator.serve.health import same_problem
from translator.serve.notify import Notifier
from translator.serve.session import Running, Task, load_for
from translator.serve.settings import describe_languages, read_config
from translator.serve.transcript_log import TranscriptLog, state_directory
from translator.text import one_line
from translator.transcript import UtteranceRecord

if TYPE_CHECKING:
    from translator.assemble import Engines

log = logging.getLogger("translator.service")

RETRY_MAX = 30.0
"""Seconds between tries to open a missing microphone, at most (the delay doubles from 1 s)."""


class Service:
    """The ``serve`` main loop: signals, start-up, sessions, reloads, status and the watchdog."""

    TICK = 0.25

    def __init__(self, args: argparse.Namespace, notifier: Notifier | None = None) -> None:
        self.args = args
        self.notifier = notifier or Notifier()
        self.config: cfg.Config | None = None
        self.engines: Engines | None = None
        self.running: Running | None = None
        self.transcript = TranscriptLog(
            state_directory(args.state_dir), max_bytes=int(args.transcript_max_mb * 1024 * 1024), keep=args.transcript_keep
        )
        self.ready = False
        self.stopping = False
        self.stop_deadline = 0.0
        self.loader: Task | None = None
        self.loader_is_reload = False
        self.pending: tuple[cfg.Config, Engines] | None = None
        self.next_attempt = 0.0
        self.attempt_delay = 0.0
        self.waiting: str | None = None
        """Why there is no session (no microphone yet), shown in STATUS."""
        self.no_speaker: str | None = None
        self.transcript_problem: str | None = None
        self.reload_problem: str | None = None
        self.problem: str | None = None
        self.count = 0
        self.last: str = ""
        self.last_status = ""
        self._signals: list[int] = []
        self._rsock, self._wsock = socket.socketpair()
        for s in (self._rsock, self._wsock):
            s.setblocking(False)

    # --- plumbing -------------------------------------------------------------------------------

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wsock.send(b"\0")

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)  # the wakeup fd wakes the main loop; nothing here can block

    def _install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        signal.set_wakeup_fd(self._wsock.fileno(), warn_on_full_buffer=False)

    def _wait(self, timeout: float) -> None:
        with contextlib.suppress(InterruptedError):
            select.select([self._rsock], [], [], max(timeout, 0.0))
        with contextlib.suppress(BlockingIOError, OSError):
            while self._rsock.recv(512):
                pass

    # --- status ---------------------------------------------------------------------------------

    def _activity(self) -> str:
        if self.stopping:
            return "stopping: finishing the utterance in flight"
        if self.loader is not None and not self.loader_is_reload:
            return "loading models"
        if self.running is None:
            return f"waiting for microphone: {self.waiting}" if self.waiting else "starting"
        mic = self.running.session.microphone
        if self.pending is not None:
            return "switching to the new configuration after the utterance in flight"
        if not mic.connected and self.running.health.blocks == 0:
            return f"opening microphone {mic.info.name!r}"
        if not mic.connected:
            return f"microphone lost, retrying: {mic.status}"
        text = f"{self.running.session.state} on {mic.info.name!r}"
        if self.loader is not None:
            text += "; reloading configuration"
        return text

    def status_text(self) -> str:
        parts = [self._activity()]
        if self.no_speaker:
            parts.append(f"no speech output: {self.no_speaker}")
        if self.last:
            parts.append(self.last)
        if self.transcript_problem:
            parts.append(self.transcript_problem)
        if self.reload_problem:
            parts.append(f"last reload refused: {self.reload_problem}")
        if self.problem:
            parts.append(f"UNHEALTHY: {self.problem}; watchdog withheld")
        return one_line("; ".join(parts), 500)

    def _update(self, now: float) -> None:
        """STATUS when it changed; WATCHDOG=1 when due and healthy."""
        problem = None
        if self.running is not None:
            problem = self.running.problem(now, self.args.stall_timeout, self.args.audio_timeout)
        if not same_problem(problem, self.problem):
            if problem:
                log.error("pipeline unhealthy: %s; not pinging the watchdog", problem)
            else:
                log.info("pipeline healthy again")
        self.problem = problem
        text = self.status_text()
        if text != self.last_status:
            self.last_status = text
            self.notifier.send(f"STATUS={text}")
        self.notifier.watchdog(now, healthy=self.problem is None)

    # --- events ---------------------------------------------------------------------------------

    def on_device_status(self, message: str) -> None:
        log_device_status(message)
        self.wake()

    def on_record(self, record: UtteranceRecord) -> None:
        self.count += 1
        latency = record.speech_to_speech if record.speech_to_speech is not None else record.mt
        what = "speech" if record.speech_to_speech is not None else "text"
        log_record(record)
        stamp = time.strftime("%H:%M:%S")
        self.last = (
            f"last utterance at {stamp} {record.language or '?'}->{record.target_language or '?'}"
            + (f", {what} {latency:.2f} s after the speaker stopped" if latency is not None else "")
            + f" ({self.count} since start)"
        )
        self.write_record(record.to_json(finished=datetime.now(UTC)))

    def write_record(self, line: str) -> None:
        try:
            self.transcript.append(line)
        except OutputError as e:
            self.transcript_problem = f"transcript not written: {e}"
            log.error("%s", one_line(e))
        else:
            if self.transcript_problem:
                log.info("transcript written again (%s)", self.transcript.path)
            self.transcript_problem = None
        self.wake()

    # --- sessions -------------------------------------------------------------------------------

    def _start_session(self, now: float) -> None:
        from translator.audio.lookup import find_device  # noqa: PLC0415 - PortAudio loads only when a session starts
        from translator.audio.portaudio import rescan_devices  # noqa: PLC0415 - PortAudio loads only when a session starts
        from translator.live import LiveSession  # noqa: PLC0415 - the pipeline's modules load only when a session starts

        assert self.config is not None and self.engines is not None
        audio = self.config.audio
        rescan_devices()  # no stream of ours is open here: see devices plugged in since the last scan
        speak = self.engines.speaker_stage is not None
        self.no_speaker = None
        try:
            find_device(audio.input, "input")  # before the speaker: LiveSession opens the microphone first
            if speak:
                try:
                    find_device(audio.output, "output")
                except DeviceError as e:
                    speak = False
                    self.no_speaker = str(e)
            session = LiveSession(self.engines, audio, speak=speak, on_status=self.on_device_status)
        except DeviceError as e:
            message = str(e)
            self.attempt_delay = min(max(self.attempt_delay * 2, 1.0), RETRY_MAX)
            self.next_attempt = now + self.attempt_delay
            if message != self.waiting:
                log.warning("waiting for microphone: %s (retrying every %g s at most)", one_line(message), RETRY_MAX)
            self.waiting = message
            if not self.ready:
                # Ready once the models are loaded, so boot is not held up for a device that may
                # never come; STATUS says what is missing.
                self._send_ready()
            return
        if self.waiting:
            log.info("microphone found")
        self.waiting = None
        self.attempt_delay = 0.0
        if self.no_speaker:
            log.warning(
                "no audio output (%s); translating without speech until the next start or reload", one_line(self.no_speaker)
            )
        self.running = Running(session, on_event=log_event, on_record=self.on_record, wake=self.wake)
        mic = session.microphone
        log.info(
            "microphone %r opened (%d Hz, %d ch); %s",
            mic.info.name,
            mic.rate,
            mic.channels,
            f"speaking on {session.speaker.info.name!r}" if session.speaker is not None else "not speaking",
        )
        if not self.ready:
            self._send_ready()

    def _send_ready(self) -> None:
        self.ready = True
        self._update(time.monotonic())
        self.notifier.send("READY=1", f"STATUS={self.status_text()}")
        log.info("ready")

    def _begin_stop(self) -> None:
        if self.stopping:
            log.warning("second stop signal: exiting now")
            self._exit_now(1)
        self.stopping = True
        self.stop_deadline = time.monotonic() + self.args.stop_timeout
        self.notifier.send("STOPPING=1", "STATUS=stopping: finishing the utterance in flight")
        self.last_status = "stopping: finishing the utterance in flight"
        log.info("stopping: finishing the utterance in flight")
        if self.running is not None:
            self.running.stop()

    def _begin_reload(self) -> None:
        if self.loader is not None:
            log.warning("reload requested while %s; ignored", "reloading" if self.loader_is_reload else "loading models")
            return
        if self.stopping:
            return
        self.notifier.reloading("reloading configuration")
        self.last_status = "reloading configuration"
        log.info("reloading configuration from %s", self.args.config)
        try:
            config = read_config(self.args.config, self.args.overrides)
        except ConfigError as e:
            self._reload_refused(str(e))
            return
        previous = self.engines
        self.loader_is_reload = True
        self.loader = Task("reload", lambda: (config, *load_for(config, previous)), self.wake)

    def _loaded(self, now: float) -> int | None:
        """The loader finished: take its engines (an exit code when start-up failed)."""
        task, reload = self.loader, self.loader_is_reload
        assert task is not None
        self.loader = None
        if task.error is not None:
            e = task.error
            if not isinstance(e, TranslatorError):
                raise e
            if not reload:
                log.error("%s", one_line(e, 1000))
                return EXIT_CONFIG if isinstance(e, (ConfigError, LanguageError, ModelError)) else e.exit_code
            self._reload_refused(str(e))
            return None
        if not reload:
            self.engines = loaded = task.result
            log.info(
                "models loaded and warmed up in %.1f s (speech model %s, %s)",
                loaded.load_seconds,
                loaded.config.asr.model,
                "speaking" if loaded.speaker_stage is not None else "no speech output",
            )
            for notice in loaded.notices:
                log.warning("%s", one_line(notice.message))
            return None
        config, engines, how = task.result
        self.reload_problem = None
        log.info("new configuration loaded (%s); switching after the utterance in flight", how)
        for notice in engines.notices:
            log.warning("%s", one_line(notice.message))
        self.pending = (config, engines)
        if self.running is not None:
            self.running.stop()
        return None

    def _reload_refused(self, message: str) -> None:
        log.error("reload failed, keeping the previous settings: %s", one_line(message))
        self.reload_problem = one_line(message, 200)
        self.last_status = self.status_text()
        self.notifier.send("READY=1", f"STATUS={self.last_status}")

    def _swap(self, now: float) -> None:
        assert self.pending is not None
        self.config, self.engines = self.pending
        self.pending = None
        self.running = None
        self.waiting = None
        log.info("reloaded: translating %s", describe_languages(self.config))
        self._start_session(now)
        self.notifier.send("READY=1")

    def _exit_now(self, code: int) -> None:
        """Leave without waiting for stuck threads (or PortAudio) to let go."""
        with contextlib.suppress(Exception):
            self.transcript.close()
        logging.shutdown()
        os._exit(code)

    # --- main -----------------------------------------------------------------------------------

    def run(self) -> int:
        self.config = read_config(self.args.config, self.args.overrides)  # ConfigError -> EXIT_CONFIG
        self._install_signals()
        log.info(
            "starting: config %s, state directory %s, translating %s",
            self.args.config,
            self.transcript.directory,
            describe_languages(self.config),
        )
        try:
            repaired = self.transcript.open()
            if repaired:
                log.warning("%s", repaired)
        except OutputError as e:
            self.transcript_problem = f"transcript not written: {e}"
            log.error("%s", e)
        config = self.config
        self.loader_is_reload = False
        self.loader = Task("load", lambda: load_for(config)[0], self.wake)
        try:
            return self._loop()
        finally:
            self.transcript.close()
            self.notifier.close()

    def _loop(self) -> int:
        while True:
            now = time.monotonic()
            self._update(now)
            self._wait(self.notifier.until_ping(now, self.TICK))
            now = time.monotonic()
            while self._signals:
                sig = self._signals.pop(0)
                if sig in (signal.SIGTERM, signal.SIGINT):
                    self._begin_stop()
                elif sig == signal.SIGHUP:
                    self._begin_reload()
            if self.loader is not None and self.loader.done.is_set():
                code = self._loaded(now)
                if code is not None:
                    return code
            running = self.running
            if running is not None and running.done.is_set():
                if running.error is not None:
                    raise running.error  # a bug: the traceback goes to the journal, systemd restarts us
                self.running = None
                if self.pending is None and not self.stopping:
                    log.warning("the microphone session ended by itself; starting a new one")
            if self.pending is not None and self.running is None and not self.stopping:
                self._swap(now)
            if self.stopping:
                if self.running is None or self.running.done.is_set():
                    self._finish()
                    log.info("stopped")
                    return 0
                if now > self.stop_deadline:
                    log.error(
                        "the utterance in flight did not finish in %g s (%s); exiting",
                        self.args.stop_timeout,
                        self.problem or "still working",
                    )
                    self._finish()
                    self._exit_now(1)
                continue
            if self.engines is not None and self.running is None and self.pending is None and now >= self.next_attempt:
                self._start_session(now)

    def _finish(self) -> None:
        """Last try at a backlog the disk refused earlier."""
        if self.transcript.pending:
            try:
                self.transcript.flush_pending()
                log.info("transcript backlog written")
            except OutputError as e:
                log.error("%s; %d utterance(s) lost", one_line(e), len(self.transcript.pending))
