"""Small text helpers every part shares: messages on one line, durations for people."""

from __future__ import annotations

MESSAGE_LIMIT = 300
"""Characters of a library's message kept in ours (a journal line, a notice, an error)."""


def one_line(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` (an exception, or anything) on one line, cut at ``limit`` characters.

    Library errors can span many lines; our messages must stay on one (see errors.py). An
    exception with no message is named by its type.
    """
    words = " ".join(str(text).split())
    if not words and isinstance(text, BaseException):
        words = type(text).__name__
    return words if len(words) <= limit else words[: limit - 1] + "…"


def ms(seconds: float | None, unit: str = " ms") -> str:
    """``0.4123`` -> ``"412 ms"``; ``None`` (not measured) -> ``"-"``."""
    return "-" if seconds is None else f"{seconds * 1000:.0f}{unit}"
