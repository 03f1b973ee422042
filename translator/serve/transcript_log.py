"""The service's transcript: ``transcript.jsonl`` in the state directory, crash-safe and rotated.

Every finished utterance is one JSON line (:meth:`~translator.transcript.UtteranceRecord.to_json`,
the format of every transcript file), written with a single ``write`` and ``fsync`` ed, so a box
that loses power keeps whole lines only. A torn last line left by a crash of an older version (or
a power cut) is moved aside to ``transcript.jsonl.torn`` on start. When the disk is full the line
is kept in memory (bounded) and written on a later try.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections import deque
from pathlib import Path

from translator.errors import OutputError, is_disk_full

TRANSCRIPT_NAME = "transcript.jsonl"
TORN_SUFFIX = ".torn"


def state_directory(explicit: str | None) -> Path:
    """Where the transcript goes: ``explicit`` (--state-dir), else $STATE_DIRECTORY (systemd's
    StateDirectory=; the first of a list), else the user state directory."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("STATE_DIRECTORY", "")
    if env:
        return Path(env.split(":")[0])
    import platformdirs  # noqa: PLC0415 - only needed when systemd gives no state directory

    return Path(platformdirs.user_state_dir("translator"))


def _valid_line(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


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

    def __init__(self, directory: str | Path, *, max_bytes: int = 10 * 1024 * 1024, keep: int = 5, backlog: int = 1000) -> None:
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

    def append(self, line: str) -> None:
        """Write one JSON line (``UtteranceRecord.to_json``, no newline) after any backlog.
        Raises OutputError; the line is then kept for later."""
        data = (line + "\n").encode()
        if len(self.pending) == self.pending.maxlen:
            self.dropped += 1
        self.pending.append(data)
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
            if is_disk_full(e):
                raise OutputError(
                    f"{self.path}: disk full, transcript not written ({waiting} utterance(s) waiting "
                    "in memory); earlier transcripts are kept"
                ) from None
            raise OutputError(
                f"{self.path}: write failed ({e.strerror}); {waiting} utterance(s) waiting, earlier transcripts are kept"
            ) from None

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
