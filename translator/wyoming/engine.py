"""The models behind the Wyoming server: loaded once, shared by every connection.

How sessions share them: each ``transcribe`` request builds its own pipeline
(:func:`~translator.assemble.build_pipeline`: a segmenter and a recognizer stage, whose state
belongs to one stream and one thread) over the one loaded speech model, translation models and
voices. No lock of ours is needed around them: the speech model keeps no per-call state and
CTranslate2 runs concurrent calls one at a time on its worker (so decodes of two sessions queue
there, in order, instead of fighting for the cores), a text model likewise, Piper's onnxruntime
session runs calls from several threads, and the text translator and the voice cache lock their
loading. What needs bounding is how many pipelines exist at once (threads, audio in memory,
decodes waiting): the server's session limit does that.

:class:`LocalEngine` is the one backend today; the handlers use only its public methods, so a
remote one (another Wyoming server on the LAN) can stand in for it later.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from translator import languages as langs_mod
from translator.assemble import build_pipeline, load_engines
from translator.config import Config
from translator.errors import ConfigError, LanguageError
from translator.events import Transcript as TranscriptEvent
from translator.events import Translation
from translator.languages import Languages
from translator.models import locate
from translator.pipeline import Pipeline
from translator.stages.translate import TranslatorStage
from translator.stages.tts import Voice, choose_voice, speech_chunks
from translator.stages.vad import Segmenter
from translator.whisper_api import language_codes

TRANSLATE = "translate:"
"""An asr model name ``translate:LANG``: the transcript is the translation into LANG."""


def _code(language: str) -> str:
    """A client's language as a code: Home Assistant may send a locale (``en-US``, ``de_DE``)."""
    return language.replace("_", "-").split("-")[0].lower()


class LocalEngine:
    """The loaded, warmed-up models of one configuration, and what a request may ask of them."""

    def __init__(self, config: Config) -> None:
        config = _served(config)
        self.config = config
        self.engines = load_engines(config, speak=config.tts.enabled)
        self.store: Path = locate.store_dir(config.models.dir or None)
        self.base = langs_mod.from_config(config)
        self._stages: dict[Languages, TranslatorStage] = {self.base: self.engines.translator_stage}
        self._lock = threading.Lock()
        self.targets = self._targets()
        self._prepare()

    def _prepare(self) -> None:
        """Load and warm up the text models of every target's routes from the configured spoken
        languages, so no client's first request pays for it (a pair without a route is left to the
        request that asks for it)."""
        text_translator = self.engines.translator_stage.text_translator
        for target in self.targets:
            stage = self.stage(dataclasses.replace(self.base, target=target, pair=None))
            for source in self.base.sources:
                try:
                    route = stage.route_for(source)
                except LanguageError:
                    continue
                text_translator.prepare(route)

    # --- what is offered ------------------------------------------------------------------------

    @property
    def model_name(self) -> str:
        """The speech model as the config names it (``base``, ``tiny.en``)."""
        return self.config.asr.model

    @property
    def heard(self) -> list[str]:
        """The languages the speech model is asked to recognise."""
        if not self.engines.recognizer.multilingual:
            return ["en"]
        return list(self.base.allowed or sorted(language_codes()))

    def _targets(self) -> list[str]:
        """The languages a ``translate:LANG`` model may name: the configured target, English when
        Whisper translates, and every installed text model's targets."""
        found = {self.base.target} | ({"en"} if self.engines.recognizer.multilingual else set())
        for model in self.engines.translator_stage.text_translator.models:
            found.update(model.targets)
        return sorted(found)

    def voices(self) -> list[locate.VoiceFiles]:
        return locate.installed_voices(store=self.store) if self.config.tts.enabled else []

    # --- speech to text -------------------------------------------------------------------------

    def target_for(self, model: str | None) -> str | None:
        """The language a ``transcribe`` naming ``model`` is translated into; None = transcribed as spoken."""
        if not model or model == self.model_name:
            return self.base.target if self.config.wyoming.translate else None
        if model.startswith(TRANSLATE):
            target = model.removeprefix(TRANSLATE)
            if target in self.targets:
                return target
            offered = ", ".join(TRANSLATE + t for t in self.targets)
            raise LanguageError(
                f"no route to translate into {target!r} here; the models offered are {self.model_name}, {offered}"
            )
        raise LanguageError(f"unknown model {model!r}; ask for {self.model_name} or translate:LANG")

    def languages(self, spoken: str | None, target: str | None) -> Languages:
        """A request's languages: the client's spoken language when it gives one, else the config's.

        A spoken language equal to the translation's target is no hint: Home Assistant sends its
        pipeline's language, which in a pipeline that translates is the target (its voice speaks it).
        """
        spoken = _code(spoken) if spoken else None
        if spoken and spoken != target:
            langs_mod.check(spoken)
            self.engines.recognizer.check(spoken)
            langs = Languages(spoken, target or self.base.target)
        else:
            langs = dataclasses.replace(self.base, target=target or self.base.target, pair=None if target else self.base.pair)
        if target is not None and langs.source is not None:
            self.stage(langs).route_for(langs.source)  # no route: the request is refused now, not after the audio
        return langs

    def stage(self, langs: Languages) -> TranslatorStage:
        """The translator stage for these languages (routes planned once each; the models are shared)."""
        with self._lock:
            stage = self._stages.get(langs)
            if stage is None:
                stage = self._stages[langs] = TranslatorStage(self.engines.translator_stage.text_translator, langs)
            return stage

    def pipeline(self, langs: Languages, *, translate: bool) -> Pipeline[Segmenter]:
        """A fresh pipeline for one audio stream (the server's settings, :func:`_served`): nobody
        watches captions, nothing is spoken."""
        engines = dataclasses.replace(self.engines, translator_stage=self.stage(langs), speaker_stage=None)
        return build_pipeline(engines, captions=False, translate=translate)

    # --- text to text ---------------------------------------------------------------------------

    def translate(self, text: str, source: str | None) -> Translation | None:
        """``text`` (in ``source``, or the configured spoken language) into the configured target;
        None for a text with no words."""
        spoken = _code(source) if source else self.base.source
        if spoken is None:
            raise LanguageError("the transcript names no language and languages.from is auto; send its language")
        langs_mod.check(spoken)
        langs = Languages(spoken, self.base.target)
        now = time.monotonic()
        transcript = TranscriptEvent(0, text, spoken, 1.0, "transcribe", 0.0, 0.0, now, now, 0.0)
        return next((e for e in self.stage(langs).feed(transcript) if isinstance(e, Translation)), None)

    # --- text to speech -------------------------------------------------------------------------

    def voice(self, name: str | None, language: str | None) -> Voice:
        """A voice by its name, else the one for ``language``, else the configured one.

        A client names voices from the ``info`` list only: a name is never taken as a path, so no
        client makes the server load a file of its choosing."""
        if not self.config.tts.enabled:
            raise LanguageError("speech output is off here (tts.enabled = false)")
        installed = [v.name for v in self.voices()]
        if name and name not in installed:
            raise LanguageError(f"no voice named {name!r} here; installed: {', '.join(installed) or 'none'}")
        language = _code(language) if language else None
        voice, _notice = choose_voice(
            language or self.base.target,
            voice=name or (None if language else self.config.tts.voice or None),
            allow_fallback=self.config.tts.fallback,
            store=self.store,
        )
        if voice is None:
            raise LanguageError(
                f"no voice speaks {language or self.base.target!r} here; install one: translator models install piper-LANG"
            )
        return voice

    @staticmethod
    def speech(voice: Voice, text: str) -> Iterator[np.ndarray]:
        """``text`` spoken, a piece per sentence as each is ready (the first sentence cut short when long)."""
        for sentence in speech_chunks(text, voice.language):
            yield from voice.synthesize(sentence)


def _served(config: Config) -> Config:
    """The settings the server's pipelines run with.

    The backends are a client's settings, and the config may be the one translator.service reads:
    a server that forwarded its requests to a backend could be forwarding to itself. An utterance
    ends only at a long silence (``wyoming.endpoint``): the client ends the request. And none ends
    at a sentence while the speaker goes on: a request is answered with one transcript at its
    ``audio-stop``, and sentence commits would only add decodes before it.
    """
    endpoint, vad = config.wyoming.endpoint, config.vad
    if not vad.pause <= endpoint <= vad.max_utterance / 2:
        raise ConfigError(
            f"wyoming.endpoint: must be between vad.pause ({vad.pause:g} s) and half of vad.max_utterance "
            f"({vad.max_utterance / 2:g} s), got {endpoint:g}"
        )
    return dataclasses.replace(
        config,
        asr=dataclasses.replace(config.asr, backend="", sentence_commit=0.0),
        tts=dataclasses.replace(config.tts, backend=""),
        vad=dataclasses.replace(vad, endpoint=endpoint),
    )
