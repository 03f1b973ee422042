"""Language codes: which exist, how a config names the languages of a session, how words join.

Every stage is keyed on Whisper's language codes (ISO 639-1 where one exists), so Whisper's table
is the one list of languages; this module is the only place that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from translator.errors import ConfigError, LanguageError

if TYPE_CHECKING:
    from translator.config import Config
from translator.whisper_api import language_codes

AUTO = "auto"
"""``languages.from`` value (or empty) meaning: detect the spoken language per utterance."""

NO_SPACE = frozenset({"zh", "ja", "yue", "th", "lo", "my", "km", "bo"})
"""Scripts written without spaces between words: text pieces join with "" and a "word" is a
character for loop checks and scoring."""


def check(code: str) -> str:
    """Return ``code`` if Whisper knows it, else raise :class:`LanguageError`."""
    if code not in language_codes():
        raise LanguageError(f"unknown language code {code!r}; use an ISO 639-1 code such as en, de, es, fr, zh")
    return code


def joiner(language: str) -> str:
    """What goes between two pieces of text in ``language``."""
    return "" if language in NO_SPACE else " "


@dataclass(frozen=True)
class Languages:
    """The languages of a session, checked: what is spoken, and what it is translated into."""

    source: str | None
    """The forced spoken language; None = detect."""
    target: str
    """The language to translate into; in conversation mode the first of the pair (each
    utterance goes to the other one, see :meth:`target_for`)."""
    pair: tuple[str, str] | None = None
    """Conversation mode: detection chooses between these two, each is translated into the other."""
    spoken: tuple[str, ...] | None = None
    """``[languages] allowed``: the languages the user speaks, detection chooses among them."""

    @property
    def allowed(self) -> tuple[str, ...] | None:
        """The languages detection may choose from (None = any)."""
        return self.pair or self.spoken

    @property
    def sources(self) -> list[str]:
        """Spoken languages known in advance (to prepare routes for), empty when detected freely."""
        return [self.source] if self.source else list(self.allowed or ())

    @property
    def targets(self) -> list[str]:
        """Every language speech may be produced in."""
        return list(self.pair) if self.pair else [self.target]

    def target_for(self, source: str) -> str:
        """The language speech in ``source`` is translated into."""
        if self.pair is None:
            return self.target
        return self.pair[1] if source == self.pair[0] else self.pair[0]

    def describe(self) -> str:
        if self.pair:
            return f"conversation {self.pair[0]} ⇄ {self.pair[1]}"
        return f"{self.source or AUTO} → {self.target}"


def parse_pair(text: str) -> tuple[str, str]:
    """``"en:es"`` -> ``("en", "es")``, checked; errors start with ``languages.pair:``."""
    parts = tuple(p.strip() for p in text.split(":"))
    if len(parts) != 2 or parts[0] == parts[1] or not all(parts):
        raise ConfigError(f"languages.pair: expected two different codes like en:es, got {text!r}")
    for code in parts:
        _check_key("pair", code)
    return parts[0], parts[1]


def _check_key(key: str, code: str) -> str:
    try:
        return check(code)
    except LanguageError as e:
        raise LanguageError(f"languages.{key}: {e}") from None


def from_settings(source: str, target: str, pair: str, allowed: tuple[str, ...] = ()) -> Languages:
    """The ``[languages]`` settings, checked; errors name the key (:class:`ConfigError` for a
    malformed pair or contradicting keys, :class:`LanguageError` for an unknown code)."""
    spoken = tuple(dict.fromkeys(_check_key("allowed", code.strip()) for code in allowed)) or None
    if pair:
        if spoken:
            raise ConfigError(
                "languages.allowed: conversation mode (languages.pair) already restricts detection to the pair; leave allowed empty"
            )
        a, b = parse_pair(pair)
        return Languages(None, a, (a, b))
    forced = None if source in ("", AUTO) else _check_key("from", source)
    if forced and spoken and forced not in spoken:
        raise ConfigError(
            f"languages.from: {forced!r} is not among languages.allowed ({', '.join(spoken)}); add it or detect with auto"
        )
    return Languages(forced, _check_key("to", target), spoken=spoken)


def parse_list(text: str) -> list[str]:
    """``"en, es,de"`` -> ``["en", "es", "de"]`` (the ``--languages`` flag); codes checked later."""
    return [code.strip() for code in text.split(",") if code.strip()]


def from_config(config: Config) -> Languages:
    """The config's ``[languages]``, checked."""
    lang = config.languages
    return from_settings(lang.source, lang.target, lang.pair, lang.allowed)
