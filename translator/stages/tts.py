"""Speech synthesis: Piper voices, choosing a voice (espeak-ng, :mod:`translator.stages.espeak`, as the fallback), and the speaker stage.

Speech is produced one sentence at a time so the first sentence can be played while the rest is
still being synthesised: with Piper the first audio of a short sentence is ready in ~100 ms,
whereas a whole paragraph would take several times that, and nothing is heard before it is done.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import onnxruntime
from piper import PiperConfig, PiperVoice, SynthesisConfig

from translator import cores
from translator.errors import ModelError
from translator.events import Notice, NoticeLevel, SpeechChunk, SpeechDone, StageFailed, Translation
from translator.models.locate import VoiceFiles, resolve_voice, voice_for_language
from translator.stages.espeak import EspeakVoice
from translator.stages.sentences import split_sentences
from translator.text import one_line


class Voice(Protocol):
    """What the speaker stage needs from a voice, so Piper, espeak-ng and test fakes are interchangeable."""

    name: str
    language: str
    sample_rate: int

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """float32 mono chunks in [-1, 1], one per sentence, each yielded as soon as it is ready."""
        ...

    def warm_up(self) -> None:
        """Pay the first-call costs now, so the first utterance is as fast as the next ones."""
        ...


@runtime_checkable
class PacedVoice(Protocol):
    """A voice that can speak faster than its own rate (Piper's length scale, espeak-ng's words per minute)."""

    def synthesize_at(self, text: str, pace: float) -> Iterator[np.ndarray]:
        """As ``synthesize``, ``pace`` times the voice's own rate."""
        ...


@runtime_checkable
class NoticingVoice(Protocol):
    """A voice with something to say about itself as it runs (a remote backend lost or back)."""

    def take_notices(self) -> list[Notice]:
        """The notices since the last call."""
        ...


def _voice_notices(voice: Voice) -> list[Notice]:
    return voice.take_notices() if isinstance(voice, NoticingVoice) else []


FIRST_CHUNK_MIN_WORDS = 10
"""A first sentence this long is spoken in two parts, cut at its first clause break."""

_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+|(?<=[，；：、])")


def speech_chunks(text: str, language: str = "") -> list[str]:
    """What to synthesise, in order: the sentences, the first one cut at a clause break when long.

    Nothing is heard until the first chunk is synthesised, so a short first chunk is heard sooner
    (a comma is a pause in speech anyway). Later sentences are synthesised while earlier ones play.
    """
    chunks = split_sentences(text, language)
    if chunks and len(chunks[0].split()) >= FIRST_CHUNK_MIN_WORDS:
        first = chunks[0]
        for m in _CLAUSE_BREAK.finditer(first):
            head, tail = first[: m.start()].strip(), first[m.end() :].strip()
            if len(head.split()) >= 3 and len(tail.split()) >= 3:
                chunks[0:1] = [head, tail]
                break
    return chunks


# --- Piper --------------------------------------------------------------------------------------


class PiperSpeakerVoice:
    """A Piper voice (ONNX model + JSON config).

    ``length_scale`` sets the speaking rate: below 1 is faster, above 1 slower; None keeps the
    voice's own setting. The ONNX session runs one thread per usable core (:mod:`translator.cores`),
    not onnxruntime's own choice of one per physical core, which under a CPU quota (a service's
    ``CPUQuota=``, a container) starts threads the quota cannot run.
    """

    def __init__(self, files: VoiceFiles, *, length_scale: float | None = None) -> None:
        self.name = files.name
        self.language = files.language
        self._files = files
        self._piper = _load_piper(files)
        self.sample_rate: int = self._piper.config.sample_rate
        self._config = SynthesisConfig(length_scale=length_scale)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        # Piper phonemises the whole text up front (fast), then runs the model one sentence per
        # step of its generator; passing chunks straight through keeps that laziness.
        for chunk in self._piper.synthesize(text, self._config):
            yield chunk.audio_float_array

    def synthesize_at(self, text: str, pace: float) -> Iterator[np.ndarray]:
        scale = (self._config.length_scale or self._piper.config.length_scale) / pace
        for chunk in self._piper.synthesize(text, dataclasses.replace(self._config, length_scale=scale)):
            yield chunk.audio_float_array

    def warm_up(self) -> None:
        """Also the check that the ONNX file is a Piper voice: any ONNX model loads, few run."""
        try:
            for _ in self.synthesize("OK."):
                pass
        except Exception as e:  # onnxruntime's error classes derive from Exception only
            raise ModelError(
                f"{self._files.model}: the model does not run as a Piper voice ({one_line(e)}); reinstall the voice"
            ) from e


def _load_piper(files: VoiceFiles) -> PiperVoice:
    """Load a voice, turning every failure into a ModelError that names the file at fault."""
    try:
        with open(files.config, encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cores.threads()
        options.inter_op_num_threads = 1
        # What PiperVoice.load does, with session options (it takes none).
        session = onnxruntime.InferenceSession(str(files.model), sess_options=options, providers=["CPUExecutionProvider"])
        return PiperVoice(session=session, config=config)
    except OSError as e:
        raise ModelError(
            f"{e.filename or files.model}: cannot read the Piper voice ({e.strerror or one_line(e)}); check the file"
        ) from e
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        # JSON syntax, missing keys or a wrong shape: Piper reads the config before the model.
        raise ModelError(
            f"{files.config}: invalid Piper voice config ({type(e).__name__}: {one_line(e)}); reinstall the voice"
        ) from e
    except Exception as e:  # onnxruntime's own error classes derive from Exception only
        raise ModelError(f"{files.model}: not a valid Piper ONNX model ({one_line(e)}); reinstall the voice") from e


# --- choosing a voice ---------------------------------------------------------------------------

_loaded: dict[str, Voice] = {}
_loaded_lock = threading.Lock()


def _cached(key: str, load: Callable[[], Voice]) -> Voice:
    """Load each voice once per process: conversation mode asks for two languages over and over.

    The lock is held during the load (~0.4 s for Piper) so two threads never load the same
    138 MB model twice.
    """
    with _loaded_lock:
        voice = _loaded.get(key)
        if voice is None:
            voice = _loaded[key] = load()
        return voice


def _piper_voice(files: VoiceFiles) -> Voice:
    return _cached(f"piper:{Path(files.model).resolve()}", lambda: PiperSpeakerVoice(files))


def _text_only(language: str) -> Notice:
    return Notice(
        f"no voice for {language}: text only. Install one with: translator models install piper-{language}",
        time.monotonic(),
        NoticeLevel.WARNING,
    )


def choose_voice(
    language: str,
    *,
    voice: str | None = None,
    allow_fallback: bool = True,
    store: Path | None = None,
) -> tuple[Voice | None, Notice | None]:
    """The voice to speak ``language`` with, and what the user should be told about the choice.

    Order: the explicit ``voice`` (name or .onnx path; a ModelError if it is missing or broken,
    since the user asked for it), the installed Piper voice for the language, espeak-ng, nothing.
    A broken installed Piper voice also raises rather than silently falling back to espeak-ng.
    """
    if voice is not None:
        files = resolve_voice(voice, store=store)
        notice = None
        if files.language != language:
            notice = Notice(f"voice {files.name} speaks {files.language}, not {language}", time.monotonic(), NoticeLevel.WARNING)
        return _piper_voice(files), notice
    installed = voice_for_language(language, store=store)
    if installed is not None:
        return _piper_voice(installed), None
    if allow_fallback:
        try:
            fallback = _cached(f"espeak:{language}", lambda: EspeakVoice(language))
        except ModelError:
            return None, _text_only(language)
        return fallback, Notice(
            f"no Piper voice for {language} installed; speaking with espeak-ng (robotic). "
            f"Install one with: translator models install piper-{language}",
            time.monotonic(),
            NoticeLevel.WARNING,
        )
    return None, _text_only(language)


# --- the stage ----------------------------------------------------------------------------------

BEHIND = 3.0
"""Seconds of speech queued for the output beyond which translations are spoken faster: a
sentence behind is what an interpreter's listener expects (an ear-voice span of 2-3 s); more and
the listener drifts away from the speaker."""
FASTER = 1.25
"""Speaking rate while behind, times the voice's own: a quarter faster is still clear speech."""

VoiceProvider = Callable[[str], "Voice | None | tuple[Voice | None, Notice | None]"]
"""Language -> voice: a bare voice (or None), or a ``(voice, notice)`` pair like :func:`choose_voice`."""

TtsOutput = SpeechChunk | SpeechDone | Notice | StageFailed


class SpeakerStage:
    """Translation in, speech chunks out, one sentence at a time.

    ``voices`` is a :data:`VoiceProvider` (default :func:`choose_voice`) or a mapping from
    language to voice; it is asked once per language and its notice is passed on once. The
    silence an output device needs before speech (``[audio] lead_in``) is the speaker sink's.
    """

    def __init__(self, voices: VoiceProvider | Mapping[str, Voice] = choose_voice) -> None:
        if isinstance(voices, Mapping):
            table = voices
            self._provider: VoiceProvider = lambda lang: (table.get(lang), None if lang in table else _text_only(lang))
        else:
            self._provider = voices
        self._voices: dict[str, Voice | None] = {}

    def _resolve(self, language: str) -> tuple[Voice | None, Notice | None]:
        """The voice for ``language``, plus the provider's notice the first time only."""
        if language in self._voices:
            return self._voices[language], None
        choice = self._provider(language)
        voice, notice = choice if isinstance(choice, tuple) else (choice, None)
        if voice is not None:
            voice.warm_up()
        self._voices[language] = voice
        return voice, notice

    def prepare(self, languages: Iterable[str]) -> list[Notice]:
        """Load and warm up the voices at start-up, before reporting ready.

        Errors (a broken voice file) are raised here so the app fails at start-up naming the
        file; the notices returned are not repeated by :meth:`feed`.
        """
        notices: list[Notice] = []
        for lang in languages:
            voice, notice = self._resolve(lang)
            notices.extend([notice] if notice is not None else [])
            notices.extend(_voice_notices(voice) if voice is not None else [])
        return notices

    def feed(self, t: Translation, pace: float = 1.0) -> Iterator[TtsOutput]:
        """Speech for one translation: SpeechChunks as each sentence is ready, then SpeechDone;
        ``pace`` times the voice's own rate where the voice can (:class:`PacedVoice`).

        A failing voice costs this utterance only: a StageFailed (or, when the voice cannot be
        loaded, one error Notice for the language) and the SpeechDone that closes it.

        What is not a translation (``t.translated`` False) is silence and no Notice: its own line in
        every front end already says "not translated", and a listener is better served by nothing
        than by the source language read out in the target's voice.
        """
        text = t.text.strip()
        if not text or not t.translated:
            yield SpeechDone(t.utterance_id, t.t_end_wall, time.monotonic(), "")
            return
        try:
            voice, notice = self._resolve(t.target_language)
        except Exception as e:  # noqa: BLE001 - a voice that cannot load silences its language, not the stage
            self._voices[t.target_language] = None
            voice, notice = None, Notice(one_line(e), time.monotonic(), NoticeLevel.ERROR)
        if notice is not None:
            yield notice
        if voice is None:
            yield SpeechDone(t.utterance_id, t.t_end_wall, time.monotonic(), "")
            return

        chunks = self._sentences(voice, text, t.target_language, pace)
        index = 0
        while True:
            # next() outside the yield so only synthesis errors are caught, not the consumer's.
            try:
                sentence, samples = next(chunks)
            except StopIteration:
                break
            except Exception as e:  # noqa: BLE001 - an onnxruntime or espeak failure must not stop the stage
                yield StageFailed(
                    "tts", t.utterance_id, f"speech synthesis with {voice.name} failed: {one_line(e)}", time.monotonic()
                )
                break
            yield from _voice_notices(voice)
            ready = time.monotonic()
            yield SpeechChunk(t.utterance_id, samples, voice.sample_rate, index, sentence, t.t_end_wall, ready, voice.name)
            index += 1
        yield from _voice_notices(voice)
        yield SpeechDone(t.utterance_id, t.t_end_wall, time.monotonic(), voice.name)

    @staticmethod
    def _sentences(voice: Voice, text: str, language: str, pace: float) -> Iterator[tuple[str, np.ndarray]]:
        """Split here rather than in the voice, so each chunk knows the words it speaks."""
        speak: Callable[[str], Iterator[np.ndarray]] = voice.synthesize
        if pace != 1.0 and isinstance(voice, PacedVoice):
            speak = functools.partial(voice.synthesize_at, pace=pace)
        for chunk in speech_chunks(text, language):
            for samples in speak(chunk):
                yield chunk, samples


class PacedSpeaker:
    """The speaker stage of one pipeline whose output plays in real time and may fall behind.

    In simultaneous interpretation the translation of one sentence is spoken while the speaker says
    the next; when they talk faster than the voice, the output queue grows, and the listener would
    drift further behind with every sentence. While ``backlog()`` (seconds the output has queued)
    exceeds :data:`BEHIND`, translations are spoken :data:`FASTER`, and the first of each such run
    says so. Per pipeline (it holds that episode), over the shared :class:`SpeakerStage`.
    """

    def __init__(self, stage: SpeakerStage, backlog: Callable[[], float]) -> None:
        self.stage = stage
        self.backlog = backlog
        self._hurrying = False

    def feed(self, t: Translation) -> Iterator[TtsOutput]:
        behind = self.backlog()
        hurry = behind > BEHIND
        if hurry and not self._hurrying:
            yield Notice(f"speech is {behind:.0f} s behind: speaking faster until it catches up", time.monotonic())
        self._hurrying = hurry
        yield from self.stage.feed(t, FASTER if hurry else 1.0)
