"""Builds a ready pipeline from a :class:`~translator.config.Config`: models loaded and warmed up.

The file command, the live app, the service and the benchmark all call :func:`load_engines` and
:func:`build_pipeline`, so there is one pipeline, configured one way.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from translator import languages
from translator.audio.sinks import QueuedSink
from translator.commits import Verdicts
from translator.config import Config
from translator.events import (
    Notice,
    PauseFollowed,
    SpeechGrowing,
    SpeechPaused,
    SpeechStarted,
    Transcript,
    Translation,
    UtteranceEnded,
)
from translator.models import locate as models
from translator.offline import enforce_offline
from translator.pipeline import AudioSink, Pipeline, Stage, StageSpec
from translator.scheduler import Scheduler
from translator.stages import langcheck
from translator.stages.asr import RecognizerStage
from translator.stages.language_prior import LanguagePrior
from translator.stages.recognizer import WhisperRecognizer
from translator.stages.routes import RouteKind
from translator.stages.translate import TextTranslator, TranslatorStage
from translator.stages.tts import PacedSpeaker, SpeakerStage, VoiceProvider, choose_voice
from translator.stages.vad import Segmenter

if TYPE_CHECKING:
    from translator.wyoming.remote_asr import RemoteRecognizer


@dataclass
class Engines:
    """The loaded, warmed-up models and the stages that hold them, shared by every run."""

    config: Config
    recognizer: WhisperRecognizer
    translator_stage: TranslatorStage
    speaker_stage: SpeakerStage | None
    notices: list[Notice]
    load_seconds: float
    remote_asr: RemoteRecognizer | None = None
    """With ``asr.backend``: the final transcripts from a Wyoming server, ``recognizer`` standing by."""


def load_engines(
    config: Config, *, speak: bool = True, warm_up: bool = True, recognizer: WhisperRecognizer | None = None
) -> Engines:
    """Load and warm up every model the config needs, failing early (ModelError, LanguageError).

    Routes are planned and their models loaded here, so a language pair with no route is an error
    before any audio is read, and the first utterance is as fast as the hundredth. ``recognizer``
    is an already loaded (and warm) speech model to use again; it is used when it was loaded with
    the same ``[asr]`` model fields (the decoding fields and the languages are read per call), else
    the speech model is loaded anew.
    """
    enforce_offline()
    t0 = time.monotonic()
    langs = languages.from_config(config)
    store = models.store_dir(config.models.dir or None)
    warm = recognizer is not None and recognizer.serves(config.asr, store=store)
    if recognizer is None or not warm:
        recognizer = WhisperRecognizer(config.asr, store=store)
    recognizer.check(langs.source, allowed=langs.allowed)
    mt_models = models.installed_mt_models(store=store, extra=tuple(Path(p) for p in config.mt.models))
    text_translator = TextTranslator(
        mt_models,
        cpu_threads=config.mt.threads,
        whisper_translate_available=recognizer.multilingual,
        prefer_whisper=config.mt.prefer_whisper,
    )
    translator_stage = TranslatorStage(text_translator, langs)
    routes = translator_stage.prepare(langs.sources, warm_up=warm_up)
    # Whisper's translations are checked for the source language (stages/langcheck.py); a spoken
    # language detected per utterance may need the translate task too.
    translates = any(r.kind is RouteKind.WHISPER for r in routes) or not langs.sources
    checker: Future[None] | None = None
    if warm_up and recognizer.multilingual and translates:
        # Loading the classifier is a second of Python while the models below load and warm up in
        # CTranslate2 and onnxruntime, which release the GIL: side by side, it costs little.
        loader = ThreadPoolExecutor(1, thread_name_prefix="langcheck-load")
        checker = loader.submit(langcheck.warm_up)
        loader.shutdown(wait=False)
    notices: list[Notice] = []
    speaker_stage = None
    if speak and config.tts.enabled:
        voices: VoiceProvider = functools.partial(
            choose_voice, voice=config.tts.voice or None, allow_fallback=config.tts.fallback, store=store
        )
        if config.tts.backend:
            from translator.wyoming.remote_tts import remote_voices  # noqa: PLC0415 - only with a backend

            voices = remote_voices(voices, config.tts)
        speaker_stage = SpeakerStage(voices)
        notices.extend(speaker_stage.prepare(langs.targets))
    if warm_up and not warm:
        recognizer.warm_up(config.asr)
    remote_asr = None
    if config.asr.backend:
        from translator.wyoming.remote_asr import RemoteRecognizer, WyomingAsrClient  # noqa: PLC0415 - only with a backend

        remote_asr = RemoteRecognizer(WyomingAsrClient(config.asr.backend, config.asr.backend_timeout), recognizer)
        if warm_up:
            remote_asr.warm_up()
            notices.extend(remote_asr.take_notices())
    if checker is not None:
        checker.result()  # its error, if any, is raised here
    return Engines(config, recognizer, translator_stage, speaker_stage, notices, time.monotonic() - t0, remote_asr)


def build_pipeline(
    engines: Engines,
    *,
    sink: AudioSink | None = None,
    captions: bool = True,
    translate: bool = True,
    around: Mapping[str, Callable[[Stage], Stage]] | None = None,
) -> Pipeline[Segmenter]:
    """A fresh pipeline (segmenter and per-utterance state) over the loaded engines.

    ``captions`` False skips partial captions: a file read faster than real time has nobody
    watching them, and re-decoding growing audio would only delay the final results. With
    captions, a :class:`~translator.scheduler.Scheduler` gives them only the compute the final
    results do not need. ``translate`` False stops at the transcripts, every utterance
    transcribed as spoken (a speech-to-text service): no translation, and no speech even when
    ``engines`` has a speaker. ``around`` wraps the stages named (``asr``, ``mt``, ``tts``) before
    the pipeline is built: the live session's echo guard and barge-in.
    """
    config = engines.config
    langs = engines.translator_stage.languages
    # A source read faster than real time (no captions) waits for each pause's commit answer, so
    # a file is segmented the same way on every run (translator/commits.py).
    verdicts = Verdicts(wait=not captions) if config.asr.sentence_commit > 0 else None
    segmenter = Segmenter(config.vad, verdicts=verdicts)
    scheduler = Scheduler(pause=config.vad.pause, silence=lambda: segmenter.silence) if captions else None
    options: dict[str, Any] = {
        "language": langs.source,
        "allowed": langs.allowed,
        "task": engines.translator_stage.recognizer_task if translate else "transcribe",
        "provisional": True,
        "prior": LanguagePrior(config.languages.switch_evidence),
        "scheduler": scheduler,
        "verdicts": verdicts,
    }
    recognizer_stage: RecognizerStage
    if engines.remote_asr is not None:
        from translator.wyoming.remote_asr import RemoteRecognizerStage  # noqa: PLC0415 - only with a backend

        recognizer_stage = RemoteRecognizerStage(engines.remote_asr, config.asr, **options)
    else:
        recognizer_stage = RecognizerStage(engines.recognizer, config.asr, **options)
    stages = [
        StageSpec(
            "asr",
            recognizer_stage,
            (SpeechStarted, SpeechPaused, PauseFollowed, UtteranceEnded) + ((SpeechGrowing,) if captions else ()),
            superseded=(SpeechGrowing,),
        ),
    ]
    if translate:
        stages.append(StageSpec("mt", engines.translator_stage, (Transcript,)))
        if engines.speaker_stage is not None:
            speaker: SpeakerStage | PacedSpeaker = engines.speaker_stage
            if isinstance(sink, QueuedSink):  # a speaker, which continuous speech can leave behind
                speaker = PacedSpeaker(speaker, sink.backlog)
            stages.append(StageSpec("tts", speaker, (Translation,)))
    wrappers = around or {}
    stages = [
        dataclasses.replace(spec, stage=wrappers[spec.name](spec.stage)) if spec.name in wrappers else spec for spec in stages
    ]
    return Pipeline(segmenter, stages, sink=sink, scheduler=scheduler)
