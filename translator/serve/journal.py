"""The service's log: one line per record on stderr, with the journal's priority prefix under systemd.

Under systemd (stderr is the stream ``$JOURNAL_STREAM`` names) every line starts with an sd-daemon
priority prefix (``<6>``), so ``journalctl -p warning`` works; in a terminal a line carries the
time and the level instead. No colours either way.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import IO

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


def under_journal(stream: IO[str] | None = None) -> bool:
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
    """Send the ``translator`` loggers to stderr, one line per record; returns the handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter(under_journal(sys.stderr)))
    root = logging.getLogger("translator")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
    return handler
