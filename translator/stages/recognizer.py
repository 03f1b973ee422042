"""Speech recognition: faster-whisper driven one utterance at a time, on a short encoder window.

``WhisperModel.transcribe()`` always feeds the encoder a padded 30 s window, so a 3 s utterance
costs as much as a 30 s one. Here the encoder sees the utterance plus ``window_margin`` seconds of
silence, language detection reuses that same encoder output, and the decoder runs once (with the
``[asr]`` beam; both tasks in one batch for the translate task), without timestamps.

Measured on the corpus (tiny.en and base, int8, 2 threads): CTranslate2 accepts any frame count,
but below about 8 s of window the decoder loops on short clips ("... all year. She had your dog
suit ...", "1, 2, 3, 3, 1, 2, 3 ...") whatever the margin (0-2 s); from 8 s on, the word error rate
equals or beats the stock window's on every clip tried (tiny.en: 5 English; base: 19 in 10
languages, a word or two differing on some) with the encoder 4-6x faster. Hence ``min_window``
(8 s; see below for English-only models), and a decode that still loops is redone on twice the
window, then on the stock window, unless it read its audio whole before starting over: that first
reading is kept (base on a 5 s sentence: 1.2 s instead of 2.2-2.5 s).

Re-measured on the benchmark's own utterances (cut by the VAD, 0.5 s endpoint; tiny.en, the 5
English clips, 11 utterances): with no minimum (utterance + 1 s), 4 s and 6 s windows, 8, 8 and 6
utterances loop (WER 114%, 125%, 68% where the stock window gives 8.7%); at 8 s, 3 still do ("1. 2
2", a sentence said twice then cut), which neither the token cap nor the compression ratio caught.
:func:`~translator.stages.guards.repeats` catches those; retried on a 16 s window (none loops
there), they bring the WER to the stock window's (8.7%), at a third of the stock window's cost.
Multilingual base (28 utterances, 10 languages) loops less: none at 6 or 8 s, 6 at 4 s; its WER/CER
at 8 s is within noise of the stock window's. tiny.en loops on none at 12 s, which costs less than
a looping 8 s decode and its retry (mean 230 vs 272 ms per utterance). So the minimum is 12 s for
English-only models and 8 s for multilingual ones.

The model is loaded once from the ``[asr]`` model fields; every other ``[asr]`` field, and the
session's languages and task, are read per call, so one loaded model serves any of them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from translator import cores, whisper_api
from translator.config import AsrSettings
from translator.errors import LanguageError, ModelError
from translator.events import SAMPLE_RATE
from translator.languages import check as check_language
from translator.languages import joiner
from translator.models.locate import resolve_asr
from translator.stages.guards import SILENCE_DBFS, first_pass, looped, plausible, rms_dbfs
from translator.stages.langcheck import wrong_language
from translator.stages.language_prior import LanguagePrior
from translator.stages.recognition import Abandoned, Context, Recognition, TaskChoice
from translator.stages.routes import PIVOT
from translator.text import one_line
from translator.whisper_api import STOCK_WINDOW, Decoded, Encoded

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

TASKS = ("transcribe", "translate")

MIN_WINDOW_ENGLISH_ONLY = 12.0
MIN_WINDOW_MULTILINGUAL = 8.0
"""Default shortest encoder windows, measured on the corpus (module docstring)."""

RETRY_BEAM = 5
"""Beam width of the second decode of a translation that came back in the spoken language."""

CONTEXT_UTTERANCE = 2.0
"""Seconds: only an utterance this short is decoded after the one before (``asr.context_gap``). A
phrase alone is where words lose their context (jfk's "ask not", 1.3 s); a longer utterance
carries its own, and the forced prefix goes through the decoder's beam at 0.1-0.3 s a time."""

CONTEXT_TOKENS = 12
"""Only the text of a phrase this short (tokens) is forced before the next one: CTranslate2 forces a
prefix a token per decoder step, through the whole beam, so a sentence's worth costs a sentence's
decode (base, 2 threads: "two" after the 24 tokens of "Mr. Quilter ... his gospel, one." took
1.9 s against 0.2 s alone; the phrases that lose their context, jfk's "And so my fellow
Americans," and "one", "two", are 2-7 tokens)."""

CONTINUATION_TOKENS = 3
"""Tokens :meth:`WhisperRecognizer.continuation` decodes: a full stop, or the start of a word."""

TOKENS_PER_SECOND = 12
"""Decode cap per second of audio, about twice the densest speech in the corpus (Korean, Chinese),
so a decode that reaches it is a loop, and a loop costs a bounded time before the stock retry."""

DEFAULT = AsrSettings()


class WhisperRecognizer:
    """A loaded faster-whisper model. It keeps no per-call state, so stages in different threads
    may share one; CTranslate2 runs their calls one at a time on its single worker."""

    def __init__(self, settings: AsrSettings = DEFAULT, *, store: Path | None = None) -> None:
        self.model_fields = settings.model_fields
        """The ``[asr]`` fields this model was loaded with (:attr:`AsrSettings.model_fields`)."""
        self.model_dir = resolve_asr(settings.model, store=store)
        _check_json(self.model_dir / "config.json")
        try:
            self._model = whisper_api.load(
                str(self.model_dir), compute_type=settings.compute_type, threads=cores.threads(settings.threads)
            )
        except RuntimeError as e:  # CTranslate2, config.json being valid: model.bin is at fault
            raise ModelError(
                f"{self.model_dir / 'model.bin'}: cannot load the Whisper model ({one_line(e)}); reinstall the model"
            ) from e
        except Exception as e:  # the tokenizers library raises bare Exception
            raise ModelError(
                f"{self.model_dir / 'tokenizer.json'}: cannot load the Whisper tokenizer ({one_line(e)}); reinstall the model"
            ) from e
        self.multilingual = whisper_api.is_multilingual(self._model)
        """False for English-only (``.en``) models: no detection, no translate task."""

    def serves(self, settings: AsrSettings, *, store: Path | None = None) -> bool:
        """Whether this loaded model is the one ``settings`` name (in ``store``), so it can be
        used for them without loading it again: only the model fields count."""
        if settings.model_fields != self.model_fields:
            return False
        try:
            return resolve_asr(settings.model, store=store) == self.model_dir
        except ModelError:
            return False

    @property
    def model(self) -> WhisperModel:
        """The loaded faster-whisper model (the benchmark's stock baseline runs on the same one)."""
        return self._model

    def min_window(self, settings: AsrSettings = DEFAULT) -> float:
        """The shortest encoder window: ``settings.min_window``, or this model's default for 0."""
        if settings.min_window:
            return settings.min_window
        return MIN_WINDOW_MULTILINGUAL if self.multilingual else MIN_WINDOW_ENGLISH_ONLY

    def check(self, language: str | None = None, task: str = "transcribe", allowed: tuple[str, ...] | None = None) -> None:
        """Raise LanguageError when this model cannot serve these languages or this task (an
        English-only model asked to translate or to hear another language), ValueError for a task
        that does not exist."""
        if task not in TASKS:
            raise ValueError(f"task: {task!r} is not one of {', '.join(TASKS)}")
        for code in (language,) + (allowed or ()):
            if code is not None:
                check_language(code)
        if self.multilingual:
            return
        name = self.model_fields[0]  # the name the user gave (a bundled model sits in a directory called "model")
        if task == "translate":
            raise LanguageError(
                f"speech model {name} is English-only and cannot translate; use a multilingual model such as base"
            )
        foreign = [code for code in ((language,) + (allowed or ())) if code not in (None, "en")]
        if foreign:
            raise LanguageError(
                f"speech model {name} is English-only and cannot recognise {foreign[0]!r}; use a multilingual model such as base"
            )

    def warm_up(self, settings: AsrSettings = DEFAULT) -> None:
        """Run the first, slow recognitions (allocations, CPU caches) before anyone is waiting.

        Several lengths, because CTranslate2 sizes its buffers per input shape. The steps are called
        directly: the synthetic tone is no speech, and the guards would cut the work short.
        """
        for seconds in (1.0, 3.0, 9.0):
            t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
            voice = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 560), 1))
            audio = (0.05 * voice * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
            encoded = self._encode(audio, settings)
            language = self._detect(encoded, None)[0]
            self._decode(encoded, len(audio), language, "transcribe", None, settings)

    def recognize(
        self,
        audio: np.ndarray,
        settings: AsrSettings = DEFAULT,
        *,
        language: str | None = None,
        allowed: tuple[str, ...] | None = None,
        task: TaskChoice = "transcribe",
        prompt: str | None = None,
        retry: bool = True,
        prior: LanguagePrior | None = None,
        context: Context | None = None,
        abandon: Callable[[], bool] | None = None,
    ) -> Recognition | None:
        """Text of one utterance (16 kHz mono float32), or None for silence, noise or a hallucination.

        ``settings`` are the decoding knobs (its model fields are not read). ``language`` None
        detects it, among ``allowed`` when given (conversation mode). ``task`` may be a function of
        the language, applied once the language is known. ``prompt`` is earlier text that
        conditions the decoder. ``retry`` False takes a looping short-window decode as it is
        instead of redoing it on longer windows: for partial captions, which the next snapshot
        replaces anyway. ``prior`` weighs detection by the conversation's recent languages.
        ``context`` is the utterance before: for a short utterance that fits with it in the
        shortest window, in the same language, both transcribed (:meth:`_fits`), the audio is
        decoded after it (its text forced as the prefix), so the decoder knows how the sentence
        began. With the language given that is one encoder run of the window the encoder runs
        anyway; a detected language is detected on the utterance alone, so the window is encoded
        a second time with the context. ``abandon`` is asked once the encoder has run: True gives
        the recognition up (:class:`Abandoned`) before the decoder does.
        """
        started = time.perf_counter()
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 1:
            raise ValueError(f"recognize expects mono audio (one dimension), got shape {audio.shape}")
        self.check(language, task if isinstance(task, str) else "transcribe", allowed)

        window = int(STOCK_WINDOW * SAMPLE_RATE)
        pieces: list[Decoded] = []
        originals: list[str] = []
        probability = 1.0
        translated = True
        resolved_task = task if isinstance(task, str) else None
        for offset in range(0, len(audio), window):
            chunk = audio[offset : offset + window]
            if rms_dbfs(chunk) < SILENCE_DBFS:
                continue
            prefix = None
            if offset == 0 and language is not None and self._fits(context, chunk, language, task, settings):
                assert context is not None  # language and task known: one encode, with the context
                chunk, prefix = np.concatenate([context.audio, chunk]), context.text
            encoded = self._encode(chunk, settings)
            if abandon is not None and abandon():
                raise Abandoned
            if language is None:
                language, probability = self._detect(encoded, allowed, prior)
            if resolved_task is None:  # task is a function of the language, now known
                resolved_task = task if isinstance(task, str) else task(language)
                self.check(language, resolved_task)
            if offset == 0 and prefix is None and self._fits(context, chunk, language, resolved_task, settings):
                assert context is not None  # detected on the utterance alone, decoded after the context
                chunk, prefix = np.concatenate([context.audio, chunk]), context.text
                encoded = self._encode(chunk, settings)
            first = words_first = None
            if resolved_task == "translate" and not settings.temperature_fallback:  # both decodes at once
                first, words_first = whisper_api.decode_both(
                    self._model,
                    encoded,
                    language=language,
                    prompt=prompt,
                    token_cap=self._decode_cap(encoded, len(chunk)),
                    beam_size=settings.beam_size,
                )
            decoded, encoded = self._decode_checked(
                chunk, encoded, language, resolved_task, prompt, settings, prefix, retry, first
            )
            if plausible(decoded, settings):
                if resolved_task == "translate":
                    if words_first is not None and encoded.seconds != words_first.window_seconds:
                        words_first = None  # the translation was redone on a longer window: so are the words
                    words, _ = self._decode_checked(
                        chunk, encoded, language, "transcribe", prompt, settings, None, retry, words_first
                    )
                    originals.append(words.text)
                    decoded, english = self._english(decoded, encoded, chunk, language, originals[-1], prompt, settings)
                    translated = translated and english
                pieces.append(decoded)
        if not pieces:
            return None
        # A piece was decoded, so the loop above knew the language and the task by then.
        assert language is not None and resolved_task is not None
        text = joiner("en" if resolved_task == "translate" else language).join(p.text for p in pieces)
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
            original=joiner(language).join(originals),
            translated=translated,
        )

    def continuation(self, audio: np.ndarray, text: str, language: str, settings: AsrSettings = DEFAULT) -> str:
        """The first few tokens (:data:`CONTINUATION_TOKENS`, greedy) the decoder hears after ``text``
        in ``audio``, which starts with the speech ``text`` transcribes and goes on past it: does
        the speaker go on with the sentence (a word) or start another (a full stop)?"""
        encoded = self._encode(audio, settings)
        greedy = dataclasses.replace(settings, beam_size=1)
        return self._decode(encoded, len(audio), language, "transcribe", None, greedy, text, CONTINUATION_TOKENS).text

    def _english(
        self,
        decoded: Decoded,
        encoded: Encoded,
        chunk: np.ndarray,
        language: str,
        original: str,
        prompt: str | None,
        settings: AsrSettings,
    ) -> tuple[Decoded, bool]:
        """A translate-task decode, and whether it is English: one that still reads as the spoken
        language is decoded once more with beam search (:data:`RETRY_BEAM`).

        Measured with base on espeak-ng's "Mi número favorito es 3061." (and "... tres mil sesenta
        y uno."), forced to Spanish, where the greedy decode answers in Spanish ("Minumero favorito,
        S6, S61"): beam 5 on the same short window gives English ("My number is 8, this is my 61.")
        for 1.5x a greedy decode and no second encoder pass; the stock 30 s window, greedy, stays
        Spanish, and with beam 5 turns to syllables ("Minu-meo-famo-ito-s-s-mi-u-se-sentai-uno");
        an English prompt on the stock window came back as the translation ("Translated into
        English."), so none is given. A decode that had that beam already is redone on the stock
        window instead.
        """
        if not wrong_language(decoded.text, expected=PIVOT, source=language, original=original):
            return decoded, True
        harder = dataclasses.replace(settings, beam_size=RETRY_BEAM)
        if settings.beam_size >= RETRY_BEAM:
            encoded = whisper_api.encode(self._model, chunk, None)
        retried = self._decode(encoded, len(chunk), language, "translate", prompt, harder)
        if plausible(retried, settings) and not wrong_language(retried.text, expected=PIVOT, source=language, original=original):
            return retried, True
        return decoded, False

    # --- the steps -----------------------------------------------------------------------------

    def _encode(self, chunk: np.ndarray, settings: AsrSettings) -> Encoded:
        """One window of at most 30 s: the chunk plus ``window_margin`` of silence, at least the
        minimum window; the stock window for a negative margin."""
        if settings.window_margin < 0:
            return whisper_api.encode(self._model, chunk, None)
        samples = max(len(chunk) + int(settings.window_margin * SAMPLE_RATE), int(self.min_window(settings) * SAMPLE_RATE))
        return whisper_api.encode(self._model, chunk, samples)

    def _decode_checked(
        self,
        chunk: np.ndarray,
        encoded: Encoded,
        language: str,
        task: str,
        prompt: str | None,
        settings: AsrSettings,
        prefix: str | None,
        retry: bool,
        first: Decoded | None = None,
    ) -> tuple[Decoded, Encoded]:
        """Decode ``chunk``'s encoding (``first``: already decoded); with ``retry``, a loop is redone
        on twice the window, then on the stock window (the longer short window fixes every loop
        seen on the corpus at a third of the stock window's cost), unless it is a transcript that
        started over after whole sentences (:func:`~translator.stages.guards.first_pass`): those
        are kept. Returns the decode and the encoding it was made on."""
        decoded = first or self._decode(encoded, len(chunk), language, task, prompt, settings, prefix)
        if (
            retry
            and task == "transcribe"
            and encoded.seconds < STOCK_WINDOW  # where the retry would come: the short window's loop
            and looped(decoded, self._token_cap(len(chunk)), settings, language, task)
        ):
            head = first_pass(decoded.text, language)
            if head is not None:  # it heard the whole audio before starting over: no retry needed
                return whisper_api.shortened(self._model, decoded, head), encoded
        for longer in (2 * encoded.seconds, None) if retry else ():
            if encoded.seconds >= STOCK_WINDOW or not looped(decoded, self._token_cap(len(chunk)), settings, language, task):
                break
            if longer is not None and longer >= STOCK_WINDOW:
                continue
            encoded = whisper_api.encode(self._model, chunk, None if longer is None else int(longer * SAMPLE_RATE))
            decoded = self._decode(encoded, len(chunk), language, task, prompt, settings, prefix)
        return decoded, encoded

    def _fits(self, context: Context | None, chunk: np.ndarray, language: str, task: TaskChoice, settings: AsrSettings) -> bool:
        """Whether ``context`` can go before ``chunk``: a short chunk (:data:`CONTEXT_UTTERANCE`)
        after a short phrase (:data:`CONTEXT_TOKENS`), the same language, both transcribed (the
        translate task also decodes the words alone, which would need a second encoder run), and
        the two fit in the shortest window, so the encoder runs no longer for the context."""
        return (
            context is not None
            and len(chunk) <= CONTEXT_UTTERANCE * SAMPLE_RATE
            and bool(context.text)
            and context.language == language
            and context.task == task == "transcribe"
            and settings.window_margin >= 0
            and len(context.audio) + len(chunk) + settings.window_margin * SAMPLE_RATE <= self.min_window(settings) * SAMPLE_RATE
            and whisper_api.count_tokens(self._model, context.text) <= CONTEXT_TOKENS
        )

    def _detect(self, encoded: Encoded, allowed: tuple[str, ...] | None, prior: LanguagePrior | None = None) -> tuple[str, float]:
        """Language of an encoded window; with ``allowed`` the best of those, its probability
        renormalised among them; with ``prior`` weighed by the recent languages."""
        if not self.multilingual:
            return "en", 1.0
        scores = whisper_api.detect_language(self._model, encoded)
        if allowed:
            scores = [(code, prob) for code, prob in scores if code in allowed]
            total = sum(prob for _, prob in scores) or 1.0
            scores = [(code, prob / total) for code, prob in scores]
        return scores[0] if prior is None else prior.choose(scores)

    def _decode(
        self,
        encoded: Encoded,
        samples: int,
        language: str,
        task: str,
        prompt: str | None,
        settings: AsrSettings,
        prefix: str | None = None,
        cap: int | None = None,
    ) -> Decoded:
        return whisper_api.decode(
            self._model,
            encoded,
            language=language,
            task=task,
            prompt=prompt,
            prefix=prefix,
            token_cap=self._decode_cap(encoded, samples) if cap is None else cap,
            beam_size=settings.beam_size,
            log_prob_threshold=settings.log_prob_threshold,
            no_speech_threshold=settings.no_speech_threshold,
            compression_ratio_threshold=settings.compression_ratio_threshold,
            temperatures=whisper_api.fallback_temperatures() if settings.temperature_fallback else (0.0,),
        )

    @staticmethod
    def _token_cap(samples: int) -> int:
        return 10 + math.ceil(TOKENS_PER_SECOND * samples / SAMPLE_RATE)

    @classmethod
    def _decode_cap(cls, encoded: Encoded, samples: int) -> int | None:
        """The cap a decode of ``encoded`` gets: the loop bound on a short window, none on the
        stock window (the last retry, which must not be cut short)."""
        return cls._token_cap(samples) if encoded.seconds < STOCK_WINDOW else None


def _check_json(path: Path) -> None:
    """CTranslate2 reports a broken config.json like a broken model.bin: tell them apart first."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: unreadable model configuration ({one_line(e)}); reinstall the model") from e
