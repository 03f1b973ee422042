"""Speech recognition: faster-whisper driven one utterance at a time, on a short encoder window.

``WhisperModel.transcribe()`` always feeds the encoder a padded 30 s window, so a 3 s utterance
costs as much as a 30 s one. Here the encoder sees the utterance plus ``window_margin`` seconds of
silence, language detection reuses that same encoder output, and the decoder runs once, greedily,
without timestamps.

Measured on the corpus (tiny.en and base, int8, 2 threads): CTranslate2 accepts any frame count,
but below about 8 s of window the decoder loops on short clips ("... all year. She had your dog
suit ...", "1, 2, 3, 3, 1, 2, 3 ...") whatever the margin (0-2 s); from 8 s on, the word error rate
equals or beats the stock window's on every clip tried (tiny.en: 5 English; base: 19 in 10
languages, a word or two differing on some) with the encoder 4-6x faster. Hence ``min_window``
(8 s; see below for English-only models), and a decode that still loops is redone on twice the
window, then on the stock window.

Re-measured on the benchmark's own utterances (cut by the VAD, 0.5 s endpoint; tiny.en, the 5
English clips, 11 utterances): with no minimum (utterance + 1 s), 4 s and 6 s windows, 8, 8 and 6
utterances loop (WER 114%, 125%, 68% where the stock window gives 8.7%); at 8 s, 3 still do ("1. 2
2", a sentence said twice then cut), which neither the token cap nor the compression ratio caught.
:func:`_repeats` catches those; retried on a 16 s window (none loops there), they bring the WER to
the stock window's (8.7%), at a third of the stock window's cost. Multilingual base (28
utterances, 10 languages) loops less: none at 6 or 8 s, 6 at 4 s; its WER/CER at 8 s is within
noise of the stock window's. tiny.en loops on none at 12 s, which costs less than a looping 8 s
decode and its retry (mean 230 vs 272 ms per utterance). So the minimum is 12 s for English-only
models and 8 s for multilingual ones.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from translator.errors import LanguageError, ModelError
from translator.events import (
    SAMPLE_RATE,
    Caption,
    Discarded,
    SegmentEvent,
    SpeechGrowing,
    SpeechPaused,
    SpeechStarted,
    Transcript,
    UtteranceEnded,
)
from translator.languages import check as check_language
from translator.models.locate import resolve_asr
from translator.speculation import Confirm, Provisional, Retract

TASKS = ("transcribe", "translate")
COMPUTE_TYPES = (
    "default", "auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16", "float32",
)

SILENCE_DBFS = -60.0
"""Below this RMS the model is not run: digital silence or a muted microphone. Kept far below quiet
speech (a distant talker is around -40 dBFS), so noise is left to the model's own guards."""

STOCK_WINDOW = 30.0
"""Seconds of audio Whisper's encoder was trained on; longer audio is cut into windows this long."""

MIN_WINDOW_ENGLISH_ONLY = 12.0
MIN_WINDOW_MULTILINGUAL = 8.0
"""Default shortest encoder windows, measured on the corpus (module docstring)."""

TOKENS_PER_SECOND = 12
"""Decode cap per second of audio, about twice the densest speech in the corpus (Korean, Chinese),
so a decode that reaches it is a loop, and a loop costs a bounded time before the stock retry."""

_NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "yue", "th", "lo", "my", "km", "bo"})
"""Written without spaces between words: captions agree on characters, windows join with ''."""

_SILENCE_HALLUCINATIONS = frozenset({
    "thank you", "thank you very much", "thanks for watching", "thank you for watching",
    "thanks for watching and see you next time", "please subscribe", "like and subscribe",
    "subscribe to my channel", "bye", "bye bye", "you", "so", "oh", "uh", "um", "hmm", "the end",
    "vielen dank", "danke", "danke fürs zuschauen", "gracias", "gracias por ver", "merci",
    "merci davoir regardé cette vidéo", "grazie", "grazie per la visione", "obrigado",
    "спасибо", "продолжение следует", "ご視聴ありがとうございました", "谢谢观看", "谢谢",
    "시청해주셔서 감사합니다",
})
"""What Whisper says over silence and noise (caption credits of its training data), lower-cased and
without punctuation. Rejected only on a low-confidence decode: people do say "thank you"."""

_ALWAYS_HALLUCINATED = ("amaraorg", "untertitel im auftrag", "字幕由", "sous-titrage")
"""Subtitle credits nobody says in conversation: rejected whatever the confidence."""

_LOW_CONFIDENCE_NO_SPEECH = 0.15
_LOW_CONFIDENCE_LOGPROB = -0.6


@dataclass(frozen=True)
class RecognizerConfig:
    """How :class:`WhisperRecognizer` loads and runs the model; defaults are the live settings."""

    model: str = "base"
    """``tiny.en``, ``base`` or another size name, or a model directory."""
    compute_type: str = "int8"
    cpu_threads: int = 0
    """0 = ``os.cpu_count()``: stages mostly run one after another, so ASR may use every core."""
    language: str | None = None
    """None: detect per utterance."""
    task: str = "transcribe"
    beam_size: int = 1
    """1 is greedy: the latency budget has no room for a beam."""
    window_margin: float | None = 1.0
    """Seconds of silence after the utterance in the encoder window; None = stock 30 s window."""
    min_window: float | None = None
    """Shortest encoder window in seconds; shorter windows make the decoder loop (module docstring).
    None: by model, 12 s for English-only models (tiny.en loops on 3 of 11 utterances at 8 s, none
    at 12 s), 8 s for multilingual ones (base: none of 28 at 8 s)."""
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    temperature_fallback: bool = False
    """Off for live use: a triggered fallback costs 2.5-5 s on a 3 s utterance (DESIGN.md)."""
    allowed_languages: tuple[str, ...] | None = None
    """Detection chooses among these only (conversation mode, ``--pair en:es``)."""

    def __post_init__(self) -> None:
        if not str(self.model).strip():
            raise ValueError("model: give a size name such as base or tiny.en, or a model directory")
        if self.compute_type not in COMPUTE_TYPES:
            raise ValueError(f"compute_type: {self.compute_type!r} is not one of {', '.join(COMPUTE_TYPES)}")
        if self.cpu_threads < 0:
            raise ValueError(f"cpu_threads: must be 0 (all cores) or more, got {self.cpu_threads}")
        if self.task not in TASKS:
            raise ValueError(f"task: {self.task!r} is not one of {', '.join(TASKS)}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size: must be at least 1, got {self.beam_size}")
        if self.window_margin is not None and not 0 <= self.window_margin <= STOCK_WINDOW:
            raise ValueError(f"window_margin: must be between 0 and {STOCK_WINDOW:g} s (or None), got {self.window_margin}")
        if self.min_window is not None and not 0 <= self.min_window <= STOCK_WINDOW:
            raise ValueError(f"min_window: must be between 0 and {STOCK_WINDOW:g} s, got {self.min_window}")
        if not 0 <= self.no_speech_threshold <= 1:
            raise ValueError(f"no_speech_threshold: must be a probability, got {self.no_speech_threshold}")
        if not self.compression_ratio_threshold > 0:
            raise ValueError(f"compression_ratio_threshold: must be positive, got {self.compression_ratio_threshold}")
        if not math.isfinite(self.log_prob_threshold):
            raise ValueError(f"log_prob_threshold: must be a finite number, got {self.log_prob_threshold}")
        if self.allowed_languages is not None:
            if not isinstance(self.allowed_languages, tuple) or not self.allowed_languages:
                raise ValueError("allowed_languages: give a non-empty tuple of language codes, or None")
            if self.language is not None:
                raise ValueError("allowed_languages: only applies when language is None (auto-detect)")
            for code in self.allowed_languages:
                check_language(code)
        if self.language is not None:
            check_language(self.language)


@dataclass(frozen=True)
class Recognition:
    """One recognised utterance and the scores the guards judged it by."""

    text: str
    language: str
    language_probability: float
    """Among ``allowed_languages`` when those are set; 1.0 when the language was given."""
    task: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    compute_seconds: float
    tokens: int
    window_seconds: float
    """Audio seconds the encoder saw (30 per window when the stock window was used or retried)."""
    original: str = ""
    """With the translate task: the words as spoken, decoded from the same encoder output, so the
    user sees what was said as well as Whisper's English for the price of one more decode."""


TaskChoice = str | Callable[[str], str]
"""A task, or a function of the detected language giving it (the translator's route decides)."""


@dataclass(frozen=True)
class _Decoded:
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    tokens: int
    window_seconds: float


def _rms_dbfs(audio: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def _normalise(text: str) -> str:
    """Lower case, no punctuation or symbols, single spaces: the form hallucinations and caption
    agreement compare."""
    kept = "".join(c for c in text.lower() if not unicodedata.category(c).startswith(("P", "S")))
    return " ".join(kept.split())


class WhisperRecognizer:
    """A loaded faster-whisper model. It keeps no per-call state, so stages in different threads
    may share one; CTranslate2 runs their calls one at a time on its single worker."""

    def __init__(self, config: RecognizerConfig | None = None, *, store: Path | None = None) -> None:
        from faster_whisper import WhisperModel  # noqa: PLC0415 (heavy import, only when loading)

        self.config = config = config or RecognizerConfig()
        self.model_dir = resolve_asr(str(config.model), store=store)
        _check_json(self.model_dir / "config.json")
        try:
            self._model = WhisperModel(
                str(self.model_dir),
                device="cpu",
                compute_type=config.compute_type,
                cpu_threads=config.cpu_threads or os.cpu_count() or 1,
            )
        except RuntimeError as e:  # CTranslate2, config.json being valid: model.bin is at fault
            raise ModelError(
                f"{self.model_dir / 'model.bin'}: cannot load the Whisper model ({_first_line(e)}); reinstall the model"
            ) from e
        except Exception as e:  # noqa: BLE001 - the tokenizers library raises bare Exception
            raise ModelError(
                f"{self.model_dir / 'tokenizer.json'}: cannot load the Whisper tokenizer ({_first_line(e)}); reinstall the model"
            ) from e
        self._check_languages(config.language, config.task, config.allowed_languages)
        self._temperatures = (
            list(inspect.signature(WhisperModel.transcribe).parameters["temperature"].default)
            if config.temperature_fallback
            else [0.0]
        )

    def reconfigured(self, config: RecognizerConfig) -> WhisperRecognizer:
        """This loaded model under other language settings, without loading it again (a service
        reload that only changes languages). ``config`` must name the same model and decoding
        settings; only ``language``/``task``/``allowed_languages`` are read per call."""
        clone = copy.copy(self)
        clone.config = config
        clone._check_languages(config.language, config.task, config.allowed_languages)
        return clone

    @property
    def model(self):  # noqa: ANN201 - faster_whisper.WhisperModel
        """The loaded faster-whisper model (the benchmark's stock baseline runs on the same one)."""
        return self._model

    @property
    def min_window(self) -> float:
        """The shortest encoder window in use (the config's, or the model's default)."""
        if self.config.min_window is not None:
            return self.config.min_window
        return MIN_WINDOW_MULTILINGUAL if self.multilingual else MIN_WINDOW_ENGLISH_ONLY

    @property
    def multilingual(self) -> bool:
        """False for English-only (``.en``) models: no detection, no translate task."""
        return bool(self._model.model.is_multilingual)

    def _check_languages(self, language: str | None, task: str | None, allowed: tuple[str, ...] | None = None) -> None:
        if self.multilingual:
            return
        name = self.model_dir.name
        if task == "translate":
            raise LanguageError(
                f"speech model {name} is English-only and cannot translate; use a multilingual model such as base"
            )
        foreign = [code for code in ((language,) + (allowed or ())) if code not in (None, "en")]
        if foreign:
            raise LanguageError(
                f"speech model {name} is English-only and cannot recognise {foreign[0]!r}; use a multilingual model such as base"
            )

    def warm_up(self) -> None:
        """Run the first, slow recognitions (allocations, CPU caches) before anyone is waiting.

        Several lengths, because CTranslate2 sizes its buffers per input shape. The steps are called
        directly: the synthetic tone is no speech, and the guards would cut the work short.
        """
        for seconds in (1.0, 3.0, 9.0):
            t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
            voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 560), 1))
            audio = (0.05 * voice * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
            encoded, window = self._encode(audio, self.config.window_margin)
            language = self.config.language or self._detect(encoded)[0]
            self._decode(encoded, window, len(audio), language, self.config.task, None)

    def recognize(
        self,
        audio: np.ndarray,
        *,
        language: str | None = None,
        task: TaskChoice | None = None,
        prompt: str | None = None,
        retry: bool = True,
    ) -> Recognition | None:
        """Text of one utterance (16 kHz mono float32), or None for silence, noise or a hallucination.

        ``language``/``task`` default to the config's; ``task`` may be a function of the language,
        applied once the language is known. ``prompt`` is earlier text that conditions the decoder.
        ``retry`` False takes a looping short-window decode as it is instead of redoing it on
        longer windows: for partial captions, which the next snapshot replaces anyway.
        """
        started = time.perf_counter()
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"recognize expects mono audio (one dimension), got shape {audio.shape}")
        language = language or self.config.language
        if language is not None:
            check_language(language)
        choice = task or self.config.task
        if isinstance(choice, str):
            self._check_languages(language, choice)

        window = int(STOCK_WINDOW * SAMPLE_RATE)
        pieces: list[_Decoded] = []
        originals: list[str] = []
        probability = 1.0
        resolved_task = choice if isinstance(choice, str) else None
        for offset in range(0, len(audio), window):
            chunk = audio[offset : offset + window]
            if _rms_dbfs(chunk) < SILENCE_DBFS:
                continue
            encoded, seconds = self._encode(chunk, self.config.window_margin)
            if language is None:
                language, probability = self._detect(encoded)
            if resolved_task is None:
                resolved_task = choice(language)
                self._check_languages(language, resolved_task)
            decoded = self._decode(encoded, seconds, len(chunk), language, resolved_task, prompt)
            # A loop is retried on twice the window, then on the stock window: the longer short
            # window fixes every loop seen on the corpus at a third of the stock window's cost.
            for longer in (2 * seconds, None) if retry else ():
                if seconds >= STOCK_WINDOW or not self._looped(decoded, len(chunk), language, resolved_task):
                    break
                if longer is not None and longer >= STOCK_WINDOW:
                    continue
                encoded, seconds = self._encode(chunk, None if longer is None else 0.0, longer)
                decoded = self._decode(encoded, seconds, len(chunk), language, resolved_task, prompt)
            if self._plausible(decoded):
                pieces.append(decoded)
                if resolved_task == "translate":
                    originals.append(self._decode(encoded, seconds, len(chunk), language, "transcribe", prompt).text)
        if not pieces:
            return None
        joiner = "" if language in _NO_SPACE_LANGUAGES else " "
        text = " ".join(p.text for p in pieces) if resolved_task == "translate" else joiner.join(p.text for p in pieces)
        tokens = sum(p.tokens for p in pieces)
        return Recognition(
            text=text,
            language=language,
            language_probability=probability,
            task=resolved_task,
            avg_logprob=sum(p.avg_logprob * p.tokens for p in pieces) / max(tokens, 1),
            no_speech_prob=min(p.no_speech_prob for p in pieces),
            compression_ratio=max(p.compression_ratio for p in pieces),
            compute_seconds=time.perf_counter() - started,
            tokens=tokens,
            window_seconds=sum(p.window_seconds for p in pieces),
            original=joiner.join(originals),
        )

    # --- the steps -----------------------------------------------------------------------------

    def _encode(self, chunk: np.ndarray, margin: float | None, min_window: float | None = None):  # noqa: ANN202
        """Encoder output (a ctranslate2.StorageView) for one window of at most 30 s, and the
        seconds of window it covers; ``min_window`` overrides the configured minimum."""
        from faster_whisper.audio import pad_or_trim  # noqa: PLC0415

        extract = self._model.feature_extractor
        frames_total = extract.nb_max_frames
        if margin is None:
            features = pad_or_trim(extract(chunk)[:, : len(chunk) // extract.hop_length])
        else:
            shortest = self.min_window if min_window is None else min_window
            wanted = max(len(chunk) + int(margin * SAMPLE_RATE), int(shortest * SAMPLE_RATE))
            wanted = min(wanted, frames_total * extract.hop_length)
            features = extract(chunk, padding=wanted - len(chunk))[:, : wanted // extract.hop_length]
        return self._model.encode(features), features.shape[-1] / extract.nb_max_frames * STOCK_WINDOW

    def _detect(self, encoded) -> tuple[str, float]:  # noqa: ANN001 - ctranslate2.StorageView
        """Language of an encoded window; with ``allowed_languages`` the best of those, its
        probability renormalised among them."""
        if not self.multilingual:
            return "en", 1.0
        scores = [(token[2:-2], prob) for token, prob in self._model.model.detect_language(encoded)[0]]
        allowed = self.config.allowed_languages
        if allowed:
            scores = [(code, prob) for code, prob in scores if code in allowed]
            total = sum(prob for _, prob in scores) or 1.0
            scores = [(code, prob / total) for code, prob in scores]
        return scores[0]

    def _decode(self, encoded, seconds: float, samples: int, language: str, task: str, prompt: str | None) -> _Decoded:  # noqa: ANN001
        from faster_whisper.tokenizer import Tokenizer  # noqa: PLC0415
        from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens  # noqa: PLC0415

        model = self._model
        tokenizer = Tokenizer(model.hf_tokenizer, self.multilingual, task=task, language=language)
        previous = tokenizer.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
        sequence = model.get_prompt(tokenizer, previous, without_timestamps=True)
        cap = self._token_cap(samples) if seconds < STOCK_WINDOW else model.max_length
        cfg = self.config
        options = TranscriptionOptions(
            beam_size=cfg.beam_size,
            best_of=5,
            patience=1.0,
            length_penalty=1.0,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            log_prob_threshold=cfg.log_prob_threshold,
            no_speech_threshold=cfg.no_speech_threshold,
            compression_ratio_threshold=cfg.compression_ratio_threshold,
            condition_on_previous_text=False,
            prompt_reset_on_temperature=0.5,
            temperatures=self._temperatures,
            initial_prompt=None,
            prefix=None,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
            without_timestamps=True,
            max_initial_timestamp=1.0,
            word_timestamps=False,
            prepend_punctuations="",
            append_punctuations="",
            multilingual=False,
            max_new_tokens=max(1, min(cap, model.max_length - len(sequence))),
            clip_timestamps="0",
            hallucination_silence_threshold=None,
            hotwords=None,
        )
        result, avg_logprob, _temperature, compression_ratio = model.generate_with_fallback(
            encoded, sequence, tokenizer, options
        )
        tokens = result.sequences_ids[0]
        return _Decoded(
            text=tokenizer.decode(tokens).strip(),
            avg_logprob=float(avg_logprob),
            no_speech_prob=float(result.no_speech_prob),
            compression_ratio=float(compression_ratio),
            tokens=len(tokens),
            window_seconds=seconds,
        )

    @staticmethod
    def _token_cap(samples: int) -> int:
        return 10 + math.ceil(TOKENS_PER_SECOND * samples / SAMPLE_RATE)

    def _looped(self, decoded: _Decoded, samples: int, language: str = "", task: str = "transcribe") -> bool:
        """A short-window decode that ran into the token cap or repeats itself, over what the model
        takes for speech (a loop over noise is dropped by the guards, not worth a second run).
        Whisper's translate-task English repeats phrases of its own ("at the corner of the corner
        of the song"), so there only the token cap and the compression ratio count."""
        return (
            decoded.tokens >= self._token_cap(samples)
            or decoded.compression_ratio > self.config.compression_ratio_threshold
            or (task == "transcribe" and _repeats(decoded.text, language))
        ) and decoded.no_speech_prob <= self.config.no_speech_threshold and bool(_normalise(decoded.text))

    def _plausible(self, d: _Decoded) -> bool:
        """The hallucination guards: Whisper's own silence rule, repetition, empty text, credits."""
        cfg = self.config
        if d.no_speech_prob > cfg.no_speech_threshold and d.avg_logprob < cfg.log_prob_threshold:
            return False
        if d.compression_ratio > cfg.compression_ratio_threshold:
            return False
        plain = _normalise(d.text)
        if not plain or any(marker in plain for marker in _ALWAYS_HALLUCINATED):
            return False
        unsure = d.no_speech_prob > _LOW_CONFIDENCE_NO_SPEECH or d.avg_logprob < _LOW_CONFIDENCE_LOGPROB
        return not (unsure and plain in _SILENCE_HALLUCINATIONS)


def _check_json(path: Path) -> None:
    """CTranslate2 reports a broken config.json like a broken model.bin: tell them apart first."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: unreadable model configuration ({_first_line(e)}); reinstall the model") from e


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _repeats(text: str, language: str) -> bool:
    """How a short-window decode loops, measured on the corpus: it says a phrase twice in a row
    ("2 2", "and so my fellow americans and so my fellow americans"), or starts over from the
    beginning and is cut by the token cap ("she had your dark suit ... she had your dark ...").
    Both are rare in real speech, and a false alarm only costs a decode on the stock window."""
    units = _units(_normalise(text), language)
    n = len(units)
    shortest = 2 if language in _NO_SPACE_LANGUAGES else 1  # "谢谢", "妈妈" are words
    for size in range(shortest, n // 2 + 1):
        for i in range(n - 2 * size + 1):
            if units[i : i + size] == units[i + size : i + 2 * size]:
                return True
    # Starting over: from some point on, the text is (all but its last unit or two) a copy of its
    # opening. A phrase that merely comes back ("the opposite of ... the opposite is") is not that.
    least = 4 if language in _NO_SPACE_LANGUAGES else 3
    for i in range(least, n - least + 1):
        tail = units[i:]
        same = 0
        while same < len(tail) and tail[same] == units[same]:
            same += 1
        if same >= least and same >= 0.8 * len(tail):
            return True
    return False


def _units(text: str, language: str) -> list[str]:
    """Words, or characters for languages written without spaces: what captions agree on."""
    if language in _NO_SPACE_LANGUAGES:
        return [c for c in text if not c.isspace()]
    return text.split()


def _join(units: list[str], language: str) -> str:
    return ("" if language in _NO_SPACE_LANGUAGES else " ").join(units)


class RecognizerStage:
    """Segmenter events in, captions and transcripts out (see DESIGN.md, "Streaming policy").

    Partial captions use LocalAgreement-2: words two consecutive hypotheses agree on are committed
    and never change. They are always transcriptions (the words being said), in the language
    detected on the utterance's first partial, so later partials skip detection. The final
    recognition starts at the short pause (speculation) and is reused when the endpoint confirms
    the same audio. One instance serves one stream from one thread.

    With ``provisional=True`` the speculative transcript is also emitted at the pause, wrapped in
    :class:`~translator.speculation.Provisional`, so translation and synthesis run during the endpoint
    silence too; the endpoint then yields :class:`~translator.speculation.Confirm` instead of a second
    transcript, and resumed speech yields :class:`~translator.speculation.Retract` (the pipeline holds
    what the speculation produced, then releases or drops it).
    """

    def __init__(
        self,
        recognizer: WhisperRecognizer,
        *,
        language: str | None = None,
        task: TaskChoice = "transcribe",
        provisional: bool = False,
    ) -> None:
        self.recognizer = recognizer
        self.language = language
        self.task = task
        self.provisional = provisional
        self.speculative_hits = 0
        self.speculative_misses = 0
        """Speculative recognitions thrown away: speech resumed, or the endpoint brought other audio."""
        self._utterance: int | None = None
        self._previous: list[str] = []
        self._committed: list[str] = []
        self._caption_language: str | None = None
        self._speculation: tuple[tuple[int, float, int], Recognition | None] | None = None
        self._emitted = False
        """The speculation's transcript went downstream as Provisional, so it must be decided."""

    def feed(self, event: SegmentEvent) -> Iterator[Caption | Transcript | Discarded | Provisional | Confirm | Retract]:
        if isinstance(event, SpeechStarted):
            yield from self._discard_speculation()
            self._start(event.utterance_id)
        elif isinstance(event, SpeechGrowing):
            if self._speculation is not None and self._speculation[0][0] == event.utterance_id:
                yield from self._discard_speculation()  # speech resumed after the pause
            caption = self._caption(event)
            if caption is not None:
                yield caption
        elif isinstance(event, SpeechPaused):
            yield from self._discard_speculation()
            key = (event.utterance_id, event.t_end, len(event.audio))
            recognition = self._final(event.audio)
            self._speculation = (key, recognition)
            if self.provisional and recognition is not None:
                self._emitted = True
                yield Provisional(key, self._transcript(event, recognition))
        elif isinstance(event, UtteranceEnded):
            key = (event.utterance_id, event.t_end, len(event.audio))
            if self._speculation is not None and self._speculation[0] == key:
                self.speculative_hits += 1
                recognition = self._speculation[1]
                self._speculation = None
                if self._emitted:
                    self._emitted = False
                    if event.utterance_id == self._utterance:
                        self._start(None)
                    yield Confirm(key)  # its transcript is already downstream: let it out
                    return
            else:
                yield from self._discard_speculation()
                recognition = self._final(event.audio)
            if event.utterance_id == self._utterance:
                self._start(None)
            if recognition is None:
                yield Discarded(event.utterance_id, event.t_end_wall, time.monotonic())
            else:
                yield self._transcript(event, recognition)

    @staticmethod
    def _transcript(event: SpeechPaused | UtteranceEnded, recognition: Recognition) -> Transcript:
        return Transcript(
            utterance_id=event.utterance_id,
            text=recognition.text,
            language=recognition.language,
            language_probability=recognition.language_probability,
            task=recognition.task,
            start=event.start,
            t_end=event.t_end,
            t_end_wall=event.t_end_wall,
            wall=time.monotonic(),
            compute_seconds=recognition.compute_seconds,
            original=recognition.original,
        )

    def _final(self, audio: np.ndarray) -> Recognition | None:
        return self.recognizer.recognize(audio, language=self.language, task=self.task)

    def _discard_speculation(self) -> Iterator[Retract]:
        if self._speculation is not None:
            self.speculative_misses += 1
            if self._emitted:
                yield Retract(self._speculation[0])
            self._speculation = None
        self._emitted = False

    def _start(self, utterance_id: int | None) -> None:
        self._utterance = utterance_id
        self._previous = []
        self._committed = []
        self._caption_language = self.language

    def _caption(self, event: SpeechGrowing) -> Caption | None:
        if event.utterance_id != self._utterance:
            self._start(event.utterance_id)
        recognition = self.recognizer.recognize(
            event.audio, language=self._caption_language, task="transcribe", retry=False
        )
        if recognition is None:
            self._previous = []
            return None
        language = self._caption_language = recognition.language
        words = _units(recognition.text, language)
        agreed = 0
        for old, new in zip(self._previous, words):
            if _normalise(old) != _normalise(new):
                break
            agreed += 1
        self._committed += words[len(self._committed) : agreed]
        self._previous = words
        return Caption(
            utterance_id=event.utterance_id,
            committed=_join(self._committed, language),
            tentative=_join(words[len(self._committed) :], language),
            audio_end=event.end,
            audio_end_wall=event.wall,
            wall=time.monotonic(),
        )


__all__ = [
    "RecognizerConfig",
    "Recognition",
    "WhisperRecognizer",
    "RecognizerStage",
    "TaskChoice",
    "SILENCE_DBFS",
]
