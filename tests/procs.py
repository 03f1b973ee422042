"""A translator subprocess watched from a test: its output lines with the time each arrived.

``translator run`` (tests/test_live.py) and ``translator serve`` (tests/test_service.py) are both
driven this way. A wait that times out first asks the process for its thread stacks (``kill -USR1``,
see translator/cli.py), so a hang in CI says where it hangs.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO


class Watched:
    """``lines`` are read from ``out``; ``err`` (when given) is kept apart, as the stderr of an app."""

    label = "process"

    def __init__(self, proc: subprocess.Popen[str], out: IO[str], err: IO[str] | None = None) -> None:
        self.t0 = time.monotonic()
        self.proc = proc
        self.lines: list[tuple[float, str]] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(out, True), daemon=True)]
        if err is not None:
            self._threads.append(threading.Thread(target=self._read, args=(err, False), daemon=True))
        for t in self._threads:
            t.start()

    def _read(self, stream: IO[str], timed: bool) -> None:
        with stream:
            for line in stream:
                if timed:
                    self.lines.append((time.monotonic(), line.rstrip("\n")))
                else:
                    self.err.append(line.rstrip("\n"))

    def log(self, lines: int | None = None) -> str:
        """The output, then stderr apart; with ``lines``, the last that many of each."""
        out, err = (self.lines, self.err) if lines is None else (self.lines[-lines:], self.err[-lines:])
        text = "\n".join(line for _, line in out)
        return text + ("\nstderr:\n" + "\n".join(err) if err else "")

    def wait(self, what: str, found: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not found():
            if time.monotonic() > deadline:
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGUSR1)
                    time.sleep(1.0)
                # 200 lines of stderr: the stack dump alone is ~80, and what the libraries printed
                # before it says why it hung
                raise AssertionError(f"timed out waiting for {what}; output:\n{self.log(200)}")
            if self.proc.poll() is not None:
                time.sleep(0.3)
                if not found():
                    raise AssertionError(
                        f"{self.label} exited ({self.proc.returncode}) waiting for {what}; output:\n{self.log(200)}"
                    )
            time.sleep(0.05)

    def hits(self, pattern: str, after: float = 0.0) -> list[tuple[float, str]]:
        return [(t, line) for t, line in list(self.lines) if t >= after and re.search(pattern, line)]

    def wait_line(self, pattern: str, timeout: float = 60, count: int = 1, after: float = 0.0) -> float:
        """Wall time of the ``count``-th line (after ``after``) matching ``pattern``."""
        self.wait(f"line {pattern!r} x{count}", lambda: len(self.hits(pattern, after)) >= count, timeout)
        return self.hits(pattern, after)[count - 1][0]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for t in self._threads:
            t.join(5)


def read_jsonl(path: Path) -> list[dict]:
    """A transcript's records; a torn last line fails the test."""
    if not path.exists():
        return []
    text = path.read_text()
    assert not text or text.endswith("\n"), f"torn last line: {text[-200:]!r}"
    return [json.loads(line) for line in text.splitlines()]
