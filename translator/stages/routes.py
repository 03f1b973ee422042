"""Route planning: *how* a language pair is translated with what is installed.

:func:`plan_route` chooses between nothing to do, one model, two models through English, and
Whisper's own translate task. It is the only place that decision is made; the translator stage and
the recognizer (which must run the translate task exactly when the route needs it) both ask it.
Planning reads model descriptions only, never the files.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from translator.errors import LanguageError
from translator.languages import check as check_language
from translator.models.locate import MtModel
from translator.stages.mt import NLLB_CODES

NLLB_NAME = "nllb-200-distilled-600M"
"""The catalog name suggested when a multilingual model would make a route."""

WHISPER_ROUTE = "whisper-translate"
"""The route name of Whisper's translate task (``Translation.route``)."""
PIVOT = "en"
"""The language two-model routes go through, and the only one Whisper translates into."""


def opus_mt_name(source: str, target: str) -> str:
    """The catalog name of the OPUS-MT model for a pair (``opus-mt-de-en``)."""
    return f"opus-mt-{source}-{target}"


class RouteKind(enum.StrEnum):
    """How a pair is translated."""

    SAME = "same"
    """Source and target are the same language: nothing to do."""
    DIRECT = "direct"
    """One model serves the pair."""
    PIVOT = "pivot"
    """Two models: source->en, then en->target."""
    WHISPER = "whisper"
    """The recognizer runs Whisper's translate task, so its text is already English (then one
    en->target model when the target is not English)."""


@dataclass(frozen=True)
class Route:
    """How one language pair is translated: ``kind``, and the models it runs in order.

    ``name`` goes into :attr:`Translation.route`; ``note`` is one line for the UI.
    """

    kind: RouteKind
    name: str
    models: tuple[MtModel, ...] = ()
    note: str = ""
    source: str = ""
    target: str = ""

    @property
    def recognizer_task(self) -> str:
        """The Whisper task the recognizer must run for this route."""
        return "translate" if self.kind is RouteKind.WHISPER else "transcribe"


_FAMILY_ORDER = {"marian": 0, "m2m100": 1, "nllb": 2}
"""Preference among models serving a pair: Marian is ~10x faster than NLLB-600M per token."""


def best_model(source: str, target: str, models: Iterable[MtModel]) -> MtModel | None:
    """The fastest installed model serving the pair (Marian first, then M2M100, then NLLB)."""
    serving = [m for m in models if m.serves(source, target)]
    serving.sort(key=lambda m: _FAMILY_ORDER.get(m.family, 9))
    return serving[0] if serving else None


def _whisper_to_english(source: str, reason: str) -> Route:
    note = f"translating {source}->en with Whisper's translate task ({reason})"
    return Route(RouteKind.WHISPER, WHISPER_ROUTE, (), note, source, PIVOT)


def whisper_then(source: str, target: str, models: Sequence[MtModel], *, reason: str) -> Route | None:
    """Whisper's English, then (if the target is not English) one en->target model."""
    if target == PIVOT:
        return _whisper_to_english(source, reason)
    second = best_model(PIVOT, target, models)
    if second is None:
        return None
    note = f"translating {source}->{target} through Whisper's English translation and {second.name} ({reason})"
    return Route(RouteKind.WHISPER, f"{WHISPER_ROUTE}+{second.name}", (second,), note, source, target)


def plan_route(
    source: str,
    target: str,
    models: Sequence[MtModel],
    *,
    whisper_translate_available: bool,
    prefer_whisper: bool = False,
) -> Route:
    """Choose how to translate ``source`` into ``target`` with what is installed.

    In order: same language -> ``same``; with ``prefer_whisper`` and a multilingual recognizer,
    X->en -> ``whisper``; a model serving the pair (Marian preferred) -> ``direct``; X->en with a
    multilingual recognizer -> ``whisper``; source->en and en->target models -> ``pivot``; a
    multilingual recognizer and an en->target model -> ``whisper`` followed by that model.
    Raises LanguageError for an unknown code or when nothing makes a route, naming what to install.
    """
    check_language(source)
    check_language(target)
    if source == target:
        return Route(RouteKind.SAME, "same", (), "", source, target)
    if whisper_translate_available and prefer_whisper and target == PIVOT:
        return _whisper_to_english(source, "preferred in the config")
    direct = best_model(source, target, models)
    if direct is not None:
        note = f"translating {source}->{target} with {direct.name}"
        return Route(RouteKind.DIRECT, direct.name, (direct,), note, source, target)
    if whisper_translate_available and target == PIVOT:
        return _whisper_to_english(source, f"no {opus_mt_name(source, target)} installed")
    whisper_mt = None
    if whisper_translate_available and source != PIVOT:
        whisper_mt = whisper_then(source, target, models, reason=f"no {opus_mt_name(source, target)} installed")
        if whisper_mt is not None and prefer_whisper:
            return whisper_mt
    if PIVOT not in (source, target):
        first, second = best_model(source, PIVOT, models), best_model(PIVOT, target, models)
        if first is not None and second is not None:
            note = f"translating {source}->{target} through English (two models: {first.name}, {second.name})"
            return Route(RouteKind.PIVOT, f"pivot:{first.name}+{second.name}", (first, second), note, source, target)
    if whisper_mt is not None:
        return whisper_mt
    raise LanguageError(no_route_message(source, target, models, whisper_translate_available))


def no_route_message(source: str, target: str, models: Sequence[MtModel], whisper: bool) -> str:
    options = [opus_mt_name(source, target)]
    if PIVOT not in (source, target):
        first, second = best_model(source, PIVOT, models), best_model(PIVOT, target, models)
        if first is not None:
            options.append(f"{opus_mt_name(PIVOT, target)} (to pivot through the installed {first.name})")
        elif second is not None:
            options.append(f"{opus_mt_name(source, PIVOT)} (to pivot through the installed {second.name})")
        else:
            options.append(f"{opus_mt_name(source, PIVOT)} + {opus_mt_name(PIVOT, target)}")
    if source in NLLB_CODES and target in NLLB_CODES:
        options.append(NLLB_NAME)
    message = f"no translation route from {source} to {target}: install " + ", or ".join(options)
    if target == PIVOT and not whisper:
        message += ", or use a multilingual Whisper model (not *.en) for its translate task"
    return message
