"""Translation of whole transcripts: routes executed over loaded models, and the pipeline's stage.

:class:`TextTranslator` executes a route (:mod:`translator.stages.routes`), loading each model
(:mod:`translator.stages.mt`) once and sharing it between routes; :class:`TranslatorStage` is the
pipeline stage: ``feed(Transcript) -> Translation | Notice``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from translator.errors import LanguageError
from translator.events import Notice, Transcript, Translation
from translator.languages import Languages
from translator.models.locate import MtModel
from translator.stages.langcheck import wrong_language
from translator.stages.mt import CT2Translator
from translator.stages.routes import PIVOT, WHISPER_ROUTE, Route, RouteKind, no_route_message, plan_route, whisper_then
from translator.stages.sentences import join_sentences, split_sentences


class TextTranslator:
    """Translates text along routes; loads each model once (on first use or :meth:`prepare`) and
    shares it between routes (``opus-mt-de-en`` serves both ``de->en`` and the first leg of
    ``de->es``)."""

    def __init__(
        self,
        models: Sequence[MtModel] = (),
        *,
        cpu_threads: int = 0,
        compute_type: str = "int8",
        whisper_translate_available: bool = False,
        prefer_whisper: bool = False,
        loader: Callable[[MtModel], CT2Translator] | None = None,
    ) -> None:
        self.models = list(models)
        self.cpu_threads = cpu_threads
        self.compute_type = compute_type
        self.whisper_translate_available = whisper_translate_available
        self.prefer_whisper = prefer_whisper
        self._loader = loader or (lambda m: CT2Translator(m, cpu_threads=self.cpu_threads, compute_type=self.compute_type))
        self._loaded: dict[Path, CT2Translator] = {}
        self._lock = threading.Lock()

    def translator(self, model: MtModel) -> CT2Translator:
        """The loaded model (loaded now if it is the first use)."""
        key = Path(model.path).resolve()
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is None:
                loaded = self._loaded[key] = self._loader(model)
            return loaded

    def plan(self, source: str, target: str, *, whisper: bool | None = None) -> Route:
        """The route for the pair with the installed models; ``whisper`` False plans as if the
        recognizer could not translate (it transcribed after all)."""
        return plan_route(
            source,
            target,
            self.models,
            whisper_translate_available=self.whisper_translate_available if whisper is None else whisper,
            prefer_whisper=self.prefer_whisper,
        )

    def prepare(self, route: Route, *, warm_up: bool = True) -> None:
        """Load (and warm up) the models a route needs, so its first use is fast."""
        for model in route.models:
            t = self.translator(model)
            if warm_up:
                t.warm_up()

    def translate(self, text: str, source: str, target: str, *, route: Route | None = None) -> tuple[str, Route]:
        """``text`` in ``target`` and the route taken.

        ``same`` returns the text unchanged; ``whisper`` means the text is already Whisper's English
        (translated further by the route's en->target model when the target is not English).
        """
        route = route or self.plan(source, target)
        if route.kind is RouteKind.SAME or not text.strip():
            return text.strip(), route
        if route.kind is RouteKind.WHISPER:
            if not route.models:
                return text.strip(), route
            source = PIVOT
        sentences = split_sentences(text, source)
        language = source
        for i, model in enumerate(route.models):
            nxt = target if i == len(route.models) - 1 else PIVOT
            sentences = self.translator(model).translate_sentences(sentences, language, nxt)
            language = nxt
        return join_sentences(sentences, target), route


# --- the pipeline stage -------------------------------------------------------------------------


@dataclass
class _Plans:
    routes: dict[tuple[str, str, bool], Route] = field(default_factory=dict)
    told: set[tuple[str, str, str]] = field(default_factory=set)


class TranslatorStage:
    """Pipeline stage: ``feed(Transcript) -> Iterator[Translation | Notice]``.

    Each transcript goes into ``languages.target_for`` its language (the target, or in
    conversation mode the other language of the pair). Routes are planned by the text translator
    once per language pair and remembered; :meth:`recognizer_task` asks the same plan, so the
    recognizer runs Whisper's translate task exactly when the route needs it.
    A Notice is emitted the first time a pivot or whisper route is used for a pair. A failure
    (no route, a broken model) raises a TranslatorError for the pipeline to report.

    What comes back in the source language is never passed on as a translation: a transcript whose
    Whisper translation failed (``Transcript.translated`` False) is translated from its original
    words by the text route when one exists, and a model's output that copies its input or is in
    another script than the target's is dropped; either way without a translation the Translation
    is marked ``translated=False`` with no text.
    """

    def __init__(self, text_translator: TextTranslator, languages: Languages) -> None:
        self.text_translator = text_translator
        self.languages = languages
        self._plans = _Plans()
        self._lock = threading.Lock()

    def route_for(self, source: str, target: str | None = None, *, whisper: bool | None = None) -> Route:
        """The planned route for ``source`` (to its target); raises LanguageError when there is none."""
        target = target or self.languages.target_for(source)
        whisper = self.text_translator.whisper_translate_available if whisper is None else whisper
        key = (source, target, whisper)
        with self._lock:
            route = self._plans.routes.get(key)
        if route is None:
            route = self.text_translator.plan(source, target, whisper=whisper)
            with self._lock:
                self._plans.routes[key] = route
        return route

    def recognizer_task(self, source_language: str | None) -> str:
        """``translate`` when the route for ``source_language`` is Whisper's translate task, else
        ``transcribe`` (also when the language is not known yet or no route exists)."""
        if not source_language:
            return "transcribe"
        try:
            return self.route_for(source_language).recognizer_task
        except LanguageError:
            return "transcribe"

    def prepare(self, sources: Iterable[str], *, warm_up: bool = True) -> list[Route]:
        """Plan the routes for these source languages and load (warm up) their models now."""
        routes = [self.route_for(s) for s in sources]
        for route in routes:
            self.text_translator.prepare(route, warm_up=warm_up)
        return routes

    def _effective_route(self, t: Transcript, source: str, target: str) -> Route:
        planned = self.route_for(source, target)
        models = self.text_translator.models
        if t.task == "translate":
            if planned.kind is RouteKind.WHISPER:
                return planned
            # The recognizer translated anyway: its text is English; go on from there.
            after = whisper_then(source, target, models, reason="the recognizer translated to English")
            if after is None:
                raise LanguageError(no_route_message(PIVOT, target, models, True))
            return after
        if planned.kind is RouteKind.WHISPER:
            # The recognizer did not translate: the text is in the source language after all.
            return self.route_for(source, target, whisper=False)
        return planned

    def _text_route(self, source: str, target: str) -> Route | None:
        """The route by text models alone, None when there is none."""
        try:
            return self.route_for(source, target, whisper=False)
        except LanguageError:
            return None

    def feed(self, t: Transcript) -> Iterator[Translation | Notice]:
        text = t.text.strip()
        if not text:
            return
        source = t.language
        target = self.languages.target_for(source)
        if t.translated:
            route = self._effective_route(t, source, target)
        else:
            # Whisper's translate task answered in the spoken language: a text model may still
            # translate the words as spoken; without one nothing is passed off as a translation.
            text = t.original.strip()
            fallback = self._text_route(source, target)
            if fallback is None or not text:
                yield self._translation(t, target, WHISPER_ROUTE, "", 0.0, translated=False)
                return
            route = fallback
        if route.kind in (RouteKind.PIVOT, RouteKind.WHISPER):
            key = (source, target, route.name)
            with self._lock:
                first = key not in self._plans.told
                self._plans.told.add(key)
            if first:
                yield Notice(route.note, time.monotonic())
        t0 = time.perf_counter()
        output, route = self.text_translator.translate(text, source, target, route=route)
        compute = time.perf_counter() - t0
        # A model that fails copies its input or writes another script; the text classifier is
        # left out, as it would judge arbitrary output (the test suite's random-weight models).
        models_from = PIVOT if route.kind is RouteKind.WHISPER else source
        ok = not (route.models and wrong_language(output, expected=target, source=models_from, original=text, classify=False))
        yield self._translation(t, target, route.name, output if ok else "", compute, translated=ok)

    @staticmethod
    def _translation(
        t: Transcript, target: str, route: str, text: str, compute: float, *, translated: bool = True
    ) -> Translation:
        return Translation(
            utterance_id=t.utterance_id,
            source_text=t.original or t.text,
            source_language=t.language,
            text=text,
            target_language=target,
            route=route,
            start=t.start,
            t_end=t.t_end,
            t_end_wall=t.t_end_wall,
            wall=time.monotonic(),
            compute_seconds=compute,
            translated=translated,
        )
