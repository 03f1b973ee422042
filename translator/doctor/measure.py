"""``translator doctor``'s measurements: the real engines, timed on a real sentence, in seconds.

The configured setup is loaded as the app loads it (:func:`translator.assemble.load_engines`);
the other installed speech models (``tiny.en``, ``base``) are loaded the same way, one at a time.
The test clip is speech, not a tone: an English sentence synthesised by the installed English
voice (Piper, else espeak-ng), resampled to 16 kHz. Each speech model first decodes it once
untimed (a fresh model's first call pays for its allocations), then once with the final's beam and
once greedily as a caption. Everything is sized to end in well under 30 s on a Raspberry Pi 4
class box: alternatives and extra voices are skipped once :data:`ALTERNATIVES_UNTIL` seconds
have gone, and the report says what was skipped.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from translator import cores, languages
from translator.assemble import load_engines
from translator.audio.samples import resample
from translator.config import Config
from translator.doctor.advice import AsrTiming, Current, Measurements, Recommendation, VoiceTiming, recommend
from translator.errors import ModelError
from translator.events import SAMPLE_RATE
from translator.models import locate
from translator.models.catalog import Kind, load_catalog
from translator.stages.recognizer import WhisperRecognizer
from translator.stages.routes import RouteKind
from translator.stages.tts import Voice, choose_voice

SENTENCE = "The quick brown fox jumps over the lazy dog, then runs back home before the rain starts."
"""The test sentence: about 5 s of speech, with a clause break like real translations have."""
ALTERNATIVES = ("tiny.en", "base")
"""The speech models compared with the configured one, when installed (fastest first)."""
ALTERNATIVES_UNTIL = 18.0
"""Seconds after which no further alternative model or extra voice is measured."""
MAX_VOICES = 3

Progress = Callable[[str], None]


def _synthesise(voice: Voice) -> tuple[np.ndarray, VoiceTiming]:
    voice.warm_up()
    started = time.perf_counter()
    audio = np.concatenate(list(voice.synthesize(SENTENCE)))
    seconds = time.perf_counter() - started
    return audio, VoiceTiming(voice.name, seconds, len(audio) / voice.sample_rate)


def speech_clip(config: Config) -> tuple[np.ndarray, VoiceTiming]:
    """The test sentence spoken by the installed English voice, at 16 kHz, and that synthesis's timing."""
    store = locate.store_dir(config.models.dir or None)
    voice, _ = choose_voice("en", store=store)
    if voice is None:
        raise ModelError("doctor needs an English voice to speak its test sentence: install espeak-ng or a Piper voice")
    audio, timing = _synthesise(voice)
    return resample(audio, voice.sample_rate, SAMPLE_RATE), timing


def time_recognizer(recognizer: WhisperRecognizer, config: Config, clip: np.ndarray, load_seconds: float) -> AsrTiming:
    """The final decode and a caption decode of ``clip``, after one untimed decode."""
    final = dataclasses.replace(config.asr, model=recognizer.model_fields[0])
    caption = dataclasses.replace(final, beam_size=1)  # captions are always greedy (stages/asr.py)
    recognizer.recognize(clip, caption, language="en", retry=False)
    started = time.perf_counter()
    recognizer.recognize(clip, final, language="en")
    final_seconds = time.perf_counter() - started
    started = time.perf_counter()
    recognizer.recognize(clip, caption, language="en", retry=False)
    caption_seconds = time.perf_counter() - started
    return AsrTiming(
        model=final.model,
        load_seconds=load_seconds,
        final_seconds=final_seconds,
        caption_seconds=caption_seconds,
        clip_seconds=len(clip) / SAMPLE_RATE,
        english_only=not recognizer.multilingual,
    )


def _installed(name: str, store: Path) -> bool:
    try:
        locate.resolve_asr(name, store=store)
    except ModelError:
        return False
    return True


def current_settings(config: Config, voice: str) -> Current:
    langs = languages.from_config(config)
    spoken = [langs.source] if langs.source else list(langs.allowed or ())
    return Current(
        asr_model=config.asr.model,
        voice=voice,
        partial_interval=config.vad.partial_interval,
        asr_threads=config.asr.threads,
        mt_threads=config.mt.threads,
        english_possible=not spoken or "en" in spoken,
        endpoint=config.vad.endpoint,
        pause=config.vad.pause,
    )


def measure(config: Config, progress: Progress = lambda _line: None) -> tuple[Measurements, Current]:
    """Time the configured setup and the installed alternatives on this box."""
    started = time.monotonic()
    store = locate.store_dir(config.models.dir or None)
    skipped: list[str] = []
    progress("making the test sentence")
    clip, clip_voice = speech_clip(config)

    progress(f"loading the configured setup ({config.asr.model})")
    engines = load_engines(config, speak=config.tts.enabled, warm_up=False)
    progress(f"timing {config.asr.model}")
    asr = [time_recognizer(engines.recognizer, config, clip, engines.load_seconds)]
    for name in ALTERNATIVES:
        if name == config.asr.model or not _installed(name, store):
            continue
        if time.monotonic() - started > ALTERNATIVES_UNTIL:
            skipped.append(f"speech model {name}: not timed, the time for alternatives ran out")
            continue
        progress(f"timing {name}")
        t0 = time.monotonic()
        recognizer = WhisperRecognizer(
            dataclasses.replace(config.asr, model=name), store=locate.store_dir(config.models.dir or None)
        )
        asr.append(time_recognizer(recognizer, config, clip, time.monotonic() - t0))
        del recognizer  # one model at a time: a small box has little memory to spare

    langs = engines.translator_stage.languages
    mt_seconds = None
    if langs.source and langs.source != langs.target:
        route = engines.translator_stage.route_for(langs.source)
        if route.kind in (RouteKind.DIRECT, RouteKind.PIVOT):
            progress(f"timing translation ({route.name})")
            text = engines.translator_stage.text_translator
            text.translate("Hello.", langs.source, langs.target, route=route)  # loads and warms the route
            t0 = time.perf_counter()
            text.translate(SENTENCE, langs.source, langs.target, route=route)
            mt_seconds = time.perf_counter() - t0
        elif route.kind is RouteKind.WHISPER:
            skipped.append("translation: Whisper's translate task, timed as part of recognition")

    voices: list[VoiceTiming] = []
    current_voice = ""
    if config.tts.enabled:
        voices, current_voice = _time_voices(config, store, langs.targets[0], clip_voice, started, skipped)
    measured = Measurements(
        cores=cores.usable(),
        threads=cores.threads(config.asr.threads),
        clip_seconds=len(clip) / SAMPLE_RATE,
        asr=tuple(asr),
        voices=tuple(voices),
        mt_seconds=mt_seconds,
        seconds=time.monotonic() - started,
        skipped=tuple(skipped),
    )
    return measured, current_settings(config, current_voice)


def _time_voices(
    config: Config, store: Path, target: str, clip_voice: VoiceTiming, started: float, skipped: list[str]
) -> tuple[list[VoiceTiming], str]:
    """The configured voice for ``target``, then the other installed Piper voices for it."""
    voice, _ = choose_voice(target, voice=config.tts.voice or None, allow_fallback=config.tts.fallback, store=store)
    if voice is None:
        return [], ""
    timings = [clip_voice if voice.name == clip_voice.name else _synthesise(voice)[1]]
    others = [v.name for v in locate.installed_voices(store=store) if v.language == target and v.name != voice.name]
    for name in others[: MAX_VOICES - 1]:
        if time.monotonic() - started > ALTERNATIVES_UNTIL:
            skipped.append(f"voice {name}: not timed, the time for alternatives ran out")
            continue
        other, _ = choose_voice(target, voice=name, store=store)
        assert other is not None  # a named voice is returned or raises
        timings.append(_synthesise(other)[1])
    return timings, voice.name


def pi_voices(language: str) -> tuple[str, ...]:
    """Up to three catalog voices for ``language`` that suit a Raspberry Pi 4."""
    return tuple(m.name for m in load_catalog().models if m.kind == Kind.TTS and language in m.languages and m.pi == 4)[:3]


def advise(config: Config, progress: Progress | None = None) -> tuple[Measurements, Current, Recommendation]:
    """Measure with ``config`` and recommend (what ``doctor`` and ``service install --tune`` run)."""
    measured, current = measure(config, progress or (lambda _line: None))
    target = languages.from_config(config).targets[0]
    return measured, current, recommend(measured, current, pi_voices(target))
