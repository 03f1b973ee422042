"""Settings: one frozen dataclass per section, and their defaults.

The section and field names are the TOML keys, and these defaults are the only ones: the stages
take their section as it is. Each section checks its own values in ``__post_init__`` (a
ValueError naming the field). Defaults are updated from a TOML file, then from the command line
(``--set section.key=value``, and the common ones have their own flags), by
:mod:`translator.config_load`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from translator.whisper_api import STOCK_WINDOW

COMPUTE_TYPES = (
    "default",
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)
"""CTranslate2's compute types (``asr.compute_type``)."""


def _require(ok: bool, name: str, rule: str, value: object) -> None:
    """Raise the ValueError :func:`merge` turns into "ORIGIN: section.name: rule, got value"."""
    if not ok:
        raise ValueError(f"{name}: {rule}, got {value!r}")


def _finite(section: object, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        _require(math.isfinite(value), name, "must be a finite number", value)


WYOMING_SCHEME = "wyoming://"


def wyoming_address(uri: str, name: str) -> tuple[str, int]:
    """``wyoming://HOST:PORT`` (HOST may be ``[::1]``) as (host, port); a ValueError naming ``name`` otherwise."""
    rule = "must be wyoming://HOST:PORT, or empty for the local model"
    _require(uri.startswith(WYOMING_SCHEME), name, rule, uri)
    host, sep, port = uri[len(WYOMING_SCHEME) :].rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    _require(bool(sep and host and port.isdigit() and 0 < int(port) < 65536), name, rule, uri)
    return host, int(port)


@dataclass(frozen=True)
class LanguageSettings:
    source: str = "auto"
    """Spoken language, or ``auto`` to detect it per utterance."""
    target: str = "en"
    pair: str = ""
    """Conversation mode ``en:es``: detect between the two, translate each into the other."""
    allowed: tuple[str, ...] = ()
    """The languages detection may choose from (``--languages en,es,de``): the ones the user
    speaks; empty = any Whisper knows. Conversation mode restricts detection to the pair."""
    switch_evidence: float = 10.0
    """How many times likelier than the conversation's recent language another language must be
    for detection to switch to it, so one short phrase does not flip the session while a real
    switch still wins (see stages/language_prior.py for the figures); 1 = every utterance is
    detected on its own."""

    def __post_init__(self) -> None:
        _finite(self, "switch_evidence")
        _require(self.switch_evidence >= 1, "switch_evidence", "must be 1 (no memory) or more", self.switch_evidence)


@dataclass(frozen=True)
class AsrSettings:
    """The speech model (``model``, ``compute_type``, ``threads``: loaded once) and how each
    utterance is decoded (the rest: read per recognition, so changing them keeps the model)."""

    model: str = "base"
    """``tiny.en``, ``base`` (bundled) or another size name / a model directory."""
    compute_type: str = "int8"
    threads: int = 0
    """CPU threads for CTranslate2; 0 = one per usable core, counting the process's affinity and its
    cgroup CPU quota (stages mostly run one after another, so ASR may use every core it has)."""
    beam_size: int = 5
    """Beam of the final transcript (stock faster-whisper's default; 1 = greedy). Partial
    captions are always greedy: the next snapshot replaces them anyway. Measured on the corpus
    (2 threads, 2026-12-01): base WER 13.1 % with beam 5 against 16.8 % greedy, median
    speech-to-speech 1.05 s against 1.09 s (within noise, the translate task's two decodes being
    batched); tiny.en 10.4 % against 9.0 % (a word of 45), 0.66 s against 0.55 s."""
    context_gap: float = 2.0
    """A short utterance (2 s at most) that starts within this many seconds of the previous one's
    end is decoded after it: the previous audio is put before it in the encoder window and its
    text forced as the decoder's prefix, so a pause mid-sentence does not cost the words their
    context (base alone hears jfk's "ask not" as "is not"). Only when both fit in the shortest
    window (so the encoder runs no longer), in the same language, transcribed; the prefix does go
    through the decoder's beam (0.1-0.3 s on an utterance that uses it), and a detected language
    is detected on the utterance alone, so its window is encoded twice (0.2 s with base). Measured
    on the corpus with base: WER 13.1 % against 13.9 % without. 0 = every utterance alone."""
    sentence_commit: float = 1.0
    """Seconds: an utterance at least this long ends at a short pause (``vad.pause``) where its
    text ends a sentence (or a clause, after 5 s), though the speaker goes on, so continuous
    speech is translated sentence by sentence while the speaker talks (translator/commits.py);
    0 = only the endpoint (``vad.endpoint``) or the length cap end an utterance. Measured on a
    60 s corpus talk with 0.2 s gaps (tiny.en): 0.5 s also split jfk's "Ask | not!" (the decoder,
    hearing "Ask me", went on with "!"), WER 8.2 % against 7.5 %; 1 s splits no sentence of under
    a second ("Three." waits for the next one) and none of the talk's phrases; 2 s as 1 s there."""
    window_margin: float = 1.0
    """Seconds of padding after the utterance fed to the encoder; negative = stock 30 s window."""
    min_window: float = 0.0
    """Shortest encoder window in seconds (shorter windows make the decoder loop; see
    stages/recognizer.py); 0 = by model: 12 s for English-only models, 8 s for multilingual ones."""
    temperature_fallback: bool = False
    """Off for live use: a triggered fallback costs 2.5-5 s on a 3 s utterance."""
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    backend: str = ""
    """``wyoming://HOST:PORT``: each utterance's final transcript comes from a Wyoming asr server
    (``translator wyoming``, wyoming-faster-whisper); the local model keeps the live captions and
    stands by; empty = the local model. It transcribes only: Whisper's translate task stays local."""
    backend_timeout: float = 3.0
    """Seconds the backend has to connect, take an utterance and answer; past that (or when it is
    down) the local model recognises it, said once, and the backend is tried again 30 s later.
    wyoming-faster-whisper decodes a 30 s window after the audio: ~0.6 s with tiny.en, ~1 s with
    base on 2 cores."""

    def __post_init__(self) -> None:
        _require(bool(self.model.strip()), "model", "give a size name such as base or tiny.en, or a model directory", self.model)
        _require(
            self.compute_type in COMPUTE_TYPES, "compute_type", f"must be one of {', '.join(COMPUTE_TYPES)}", self.compute_type
        )
        _require(self.threads >= 0, "threads", "must be 0 (all cores) or more", self.threads)
        _require(self.beam_size >= 1, "beam_size", "must be at least 1", self.beam_size)
        _finite(
            self,
            "window_margin",
            "min_window",
            "context_gap",
            "sentence_commit",
            "no_speech_threshold",
            "log_prob_threshold",
            "compression_ratio_threshold",
        )
        _require(
            self.window_margin <= STOCK_WINDOW,
            "window_margin",
            f"must be at most {STOCK_WINDOW:g} s (negative = the stock window)",
            self.window_margin,
        )
        _require(self.context_gap >= 0, "context_gap", "must be 0 s (off) or more", self.context_gap)
        _require(self.sentence_commit >= 0, "sentence_commit", "must be 0 s (off) or more", self.sentence_commit)
        _require(0 <= self.min_window <= STOCK_WINDOW, "min_window", f"must be between 0 and {STOCK_WINDOW:g} s", self.min_window)
        _require(0 <= self.no_speech_threshold <= 1, "no_speech_threshold", "must be a probability", self.no_speech_threshold)
        _require(
            self.compression_ratio_threshold > 0,
            "compression_ratio_threshold",
            "must be positive",
            self.compression_ratio_threshold,
        )
        _finite(self, "backend_timeout")
        _require(self.backend_timeout > 0, "backend_timeout", "must be > 0 s", self.backend_timeout)
        if self.backend:
            wyoming_address(self.backend, "backend")

    @property
    def model_fields(self) -> tuple[str, str, int]:
        """What loading the model reads: equal here means the loaded model serves these settings."""
        return self.model, self.compute_type, self.threads


@dataclass(frozen=True)
class VadSettings:
    """Endpointing policy of the segmenter; durations are seconds of audio."""

    threshold: float = 0.5
    """A frame at or above this speech probability starts (or continues) speech."""
    neg_threshold: float = 0.0
    """Speech continues until a frame falls below this; 0 = ``threshold - 0.15`` (Silero's own
    hysteresis), so a word's weak tail does not flicker between speech and silence."""
    min_speech: float = 0.25
    """Voiced audio needed before an utterance is announced; shorter blips (a click, a cough)
    are dropped silently."""
    pre_roll: float = 0.2
    """Audio kept before the first voiced frame: the VAD fires after the onset of a word."""
    pause: float = 0.1
    """Silence that starts speculation (recognition, translation and speech at once); a wasted
    speculation only costs compute."""
    endpoint: float = 0.4
    """Silence that ends an utterance: on the corpus 0.4 s splits no more than 0.5 s (28 utterances
    for 18 sentences; 0.3 s: 29, 0.6 s: 27, 0.8 s: 23)."""
    max_utterance: float = 15.0
    """Cap: longer speech is cut at its quietest recent point."""
    partial_interval: float = 0.5
    """New speech between two partial-caption snapshots."""
    post_roll: float = 0.1
    """Audio kept after the last voiced frame: Whisper does better with a trailing margin."""

    def __post_init__(self) -> None:
        _finite(
            self,
            "threshold",
            "neg_threshold",
            "min_speech",
            "pre_roll",
            "pause",
            "endpoint",
            "max_utterance",
            "partial_interval",
            "post_roll",
        )
        _require(0 < self.threshold < 1, "threshold", "must be between 0 and 1", self.threshold)
        _require(
            0 <= self.neg_threshold <= self.threshold,
            "neg_threshold",
            f"must be between 0 (automatic) and threshold ({self.threshold})",
            self.neg_threshold,
        )
        _require(0 <= self.min_speech <= 1, "min_speech", "must be 0-1 s", self.min_speech)
        _require(0 <= self.pre_roll <= 1, "pre_roll", "must be 0-1 s", self.pre_roll)
        _require(self.pause > 0, "pause", "must be > 0 s", self.pause)
        _require(self.endpoint >= self.pause, "endpoint", f"must be >= pause ({self.pause} s)", self.endpoint)
        _require(0 <= self.post_roll <= self.pause, "post_roll", f"must be between 0 and pause ({self.pause} s)", self.post_roll)
        _require(self.partial_interval > 0, "partial_interval", "must be > 0 s", self.partial_interval)
        _require(
            self.max_utterance >= max(2.0, 2 * self.endpoint),
            "max_utterance",
            f"must be >= 2 s and >= 2 x endpoint ({self.endpoint} s)",
            self.max_utterance,
        )

    @property
    def release(self) -> float:
        """The probability below which speech stops (``neg_threshold``, or its automatic value)."""
        return self.neg_threshold or max(self.threshold - 0.15, 0.01)


@dataclass(frozen=True)
class MtSettings:
    models: tuple[str, ...] = ()
    """Extra translation model directories, besides those in the store."""
    prefer_whisper: bool = False
    """For X->English, use Whisper's translate task even when a direct model is installed."""
    threads: int = 0
    """CPU threads for CTranslate2; 0 = one per usable core (affinity and cgroup CPU quota, see cores.py)."""

    def __post_init__(self) -> None:
        _require(self.threads >= 0, "threads", "must be 0 (all cores) or more", self.threads)


@dataclass(frozen=True)
class TtsSettings:
    enabled: bool = True
    voice: str = ""
    """A Piper voice name or ``.onnx`` path; empty = the installed voice for the target language."""
    fallback: bool = True
    """Speak with espeak-ng when no Piper voice exists for the language."""
    backend: str = ""
    """``wyoming://HOST:PORT``: synthesise on a Wyoming tts server (``translator wyoming``,
    wyoming-piper), sentence by sentence, the local voice standing by; empty = the local voice."""
    backend_timeout: float = 2.0
    """Seconds the backend has to connect and send a sentence's whole audio; past that (or when it
    is down) the local voice speaks, said once, and the backend is tried again 30 s later."""

    def __post_init__(self) -> None:
        _finite(self, "backend_timeout")
        _require(self.backend_timeout > 0, "backend_timeout", "must be > 0 s", self.backend_timeout)
        if self.backend:
            wyoming_address(self.backend, "backend")


@dataclass(frozen=True)
class ModelSettings:
    dir: str = ""
    """Model store; empty = ``$TRANSLATOR_MODELS`` or the user data directory."""


DUPLEX_SETTINGS = ("auto", "half", "aec", "full")
BARGE_IN = ("stop", "duck", "off")


@dataclass(frozen=True)
class AudioSettings:
    input: str = ""
    """Input device name (or part of it); empty = system default."""
    output: str = ""
    lead_in: float = 0.15
    """Seconds of silence before a burst of speech after a quiet spell: outputs that wake up on
    sound (Bluetooth headsets, PulseAudio) drop the first 35-140 ms."""
    duplex: str = "auto"
    """``half``: the microphone is muted while speech plays; ``aec``: it stays open and the played
    speech is cancelled out of it (a loudspeaker); ``full``: it stays open as it is (a headset);
    ``auto``: full for an output named like a headset, aec where the canceller is installed,
    else half (translator/audio/duplex.py, docs/duplex.md)."""
    guard_tail: float = 0.3
    """Half duplex: seconds the microphone stays muted after speech output ends."""
    turn_gap: float = 0.8
    """Half duplex: speech output waits until the user has been silent this long."""
    echo_window: float = 10.0
    """aec: a final transcript heard while our speech played that repeats what was said in the
    last this many seconds is taken for our own voice and dropped (the last guard against
    residual echo); 0 = off."""

    barge_in: str = "stop"
    """aec and full: when the other person starts speaking over a translation, ``stop`` it,
    ``duck`` it (play the rest ``duck_db`` quieter), or ``off`` (play it out)."""
    duck_db: float = -20.0
    """The level ducked speech is played at, dB."""

    retired: ClassVar[dict[str, str]] = {"half_duplex": 'replaced by duplex = "half" | "aec" | "full"'}
    """Keys of older versions, and what replaced them (named in the unknown-key error)."""

    def __post_init__(self) -> None:
        _require(self.duplex in DUPLEX_SETTINGS, "duplex", f"must be one of {', '.join(DUPLEX_SETTINGS)}", self.duplex)
        _require(self.barge_in in BARGE_IN, "barge_in", f"must be one of {', '.join(BARGE_IN)}", self.barge_in)
        _finite(self, "lead_in", "guard_tail", "turn_gap", "echo_window", "duck_db")
        _require(self.duck_db <= 0, "duck_db", "must be 0 dB or less", self.duck_db)
        for name in ("lead_in", "guard_tail", "turn_gap", "echo_window"):
            _require(getattr(self, name) >= 0, name, "must be 0 s or more", getattr(self, name))


WYOMING_SCHEMES = ("tcp", "unix", "stdio")


@dataclass(frozen=True)
class WyomingSettings:
    """``translator wyoming``, the Wyoming protocol server (docs/home-assistant.md). Everything a
    client sends is bounded: a server on a LAN reads whatever comes."""

    uri: str = "tcp://127.0.0.1:10300"
    """``tcp://HOST:PORT``, ``unix://PATH`` or ``stdio://``; a non-loopback address is logged at start."""
    max_sessions: int = 0
    """Connections served at once; 0 = one per usable core (each runs a pipeline on the shared
    models; more would only queue inside CTranslate2). As many more wait for a place, up to
    ``idle_timeout``; beyond that a client is refused."""
    idle_timeout: float = 30.0
    """Seconds a connection may send nothing (a client that never sends ``audio-stop``)."""
    max_audio: float = 60.0
    """Seconds of audio one ``transcribe`` may stream (60 s of 16 kHz float32: 3.8 MB)."""
    max_header: int = 16384
    """Bytes of one event's JSON header line."""
    max_payload: int = 1048576
    """Bytes of one event's data plus payload (a second of 48 kHz stereo 32-bit audio: 384 kB)."""
    endpoint: float = 2.0
    """Seconds of silence that end an utterance within a request (instead of ``vad.endpoint``). The
    client ends a request (Home Assistant runs its own voice detection and sends ``audio-stop``), so
    the server cuts only at a long silence: at the live 0.4 s a command falls into pieces decoded
    without each other's words (jfk's "And so my fellow Americans" alone came out "And so am I
    fellow"). Must be at most half of ``vad.max_utterance``."""
    translate: bool = False
    """A ``transcribe`` naming no ``translate:LANG`` model is answered with the translation into
    ``languages.to`` (Home Assistant names no model: its speech-to-text step then translates)."""
    transcript_streaming: bool = True
    """Each utterance's final text as a ``transcript-chunk`` as soon as it is known."""
    zeroconf: bool = False
    """Announce the TCP server over mDNS for Home Assistant's discovery (the zeroconf package)."""

    def __post_init__(self) -> None:
        scheme, sep, rest = self.uri.partition("://")
        _require(
            bool(sep) and scheme in WYOMING_SCHEMES and (scheme == "stdio" or bool(rest)),
            "uri",
            "give tcp://HOST:PORT, unix://PATH or stdio://",
            self.uri,
        )
        _finite(self, "endpoint")
        _require(self.endpoint > 0, "endpoint", "must be > 0 s", self.endpoint)
        _require(self.max_sessions >= 0, "max_sessions", "must be 0 (one per core) or more", self.max_sessions)
        _finite(self, "idle_timeout", "max_audio")
        _require(self.idle_timeout > 0, "idle_timeout", "must be > 0 s", self.idle_timeout)
        _require(self.max_audio > 0, "max_audio", "must be > 0 s", self.max_audio)
        _require(self.max_header >= 1024, "max_header", "must be at least 1024 bytes", self.max_header)
        _require(self.max_payload >= 4096, "max_payload", "must be at least 4096 bytes", self.max_payload)


@dataclass(frozen=True)
class Config:
    languages: LanguageSettings = field(default_factory=LanguageSettings)
    asr: AsrSettings = field(default_factory=AsrSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    mt: MtSettings = field(default_factory=MtSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    models: ModelSettings = field(default_factory=ModelSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    wyoming: WyomingSettings = field(default_factory=WyomingSettings)
