"""The faster-whisper internals the translator builds on, in one place.

faster-whisper's public API is ``WhisperModel.transcribe`` over a whole file; the streaming
recognizer needs the pieces below it (the language table, decoding options, the tokenizer, the
fallback decoder). They are not a stable API, so every use goes through this module and
``pyproject.toml`` bounds the faster-whisper version CI tests.
"""

from __future__ import annotations

from faster_whisper.tokenizer import _LANGUAGE_CODES

LANGUAGE_CODES: frozenset[str] = frozenset(_LANGUAGE_CODES)
"""Every language code Whisper knows."""
