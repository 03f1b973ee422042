"""The terminal around ``translator run``: which renderer fits stdout, signals, the keyboard,
push-to-talk, and library messages on stderr kept off the TUI.

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
the initial repeat delay).
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

PTT_HOLD = 0.6
"""Push-to-talk: the space bar counts as held while a space arrived within this many seconds."""

PTT_FIRST_HOLD = 0.8
"""...or within this many seconds of the first space of a press (the keyboard's initial
auto-repeat delay is 250-660 ms: X11's default is 660 ms)."""


class Mode(enum.StrEnum):
    """How ``translator run`` shows the session."""

    TUI = "tui"
    PLAIN = "plain"
    JSONL = "jsonl"


def choose_mode(plain: bool, jsonl: bool, stdout: IO[str] | None = None) -> Mode:
    """``jsonl`` or ``plain`` when asked; else the TUI on a terminal and ``plain`` otherwise."""
    if jsonl:
        return Mode.JSONL
    if plain:
        return Mode.PLAIN
    out = stdout or sys.stdout
    try:
        tty_out = out.isatty()
    except (AttributeError, ValueError):
        tty_out = False
    if not tty_out or os.environ.get("TERM") == "dumb":
        return Mode.PLAIN
    return Mode.TUI


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


class Signals:
    """SIGINT/SIGTERM/SIGHUP: the first asks for a graceful stop, the second exits at once (128+signal).

    The handlers only record the signal and wake the main loop through a pipe; ``on_second`` runs
    in the handler to put the terminal back before ``os._exit``.
    """

    def __init__(self, on_second: Callable[[], None]) -> None:
        self.on_second = on_second
        self.received: list[int] = []
        """Signals so far; ``q`` on the keyboard adds 0."""
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._old: dict[int, Any] = {}

    @property
    def fd(self) -> int:
        """Readable when the main loop should look again (a signal, an event, a status)."""
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
        """Safe from any thread and from a signal handler."""
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
        """False once stdin reached its end (then it is no longer polled)."""

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


def stdin_tty() -> int | None:
    """stdin's file descriptor when it is a terminal (keys can be read), else None."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):
        return None
    return fd if os.isatty(fd) else None
