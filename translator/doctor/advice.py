"""What ``translator doctor`` recommends from what it measured: pure rules, no models.

The figures are real-time factors (compute seconds per second of audio) measured on this box with
the cores the process may use, so they already say how fast this box is; the rules only compare
them. Steady work per second of speech is the final decode, the translation and the synthesis of
what was said (``load``); captions must fit in what is left. The rules, in order:

1. **Voice.** The voice the config speaks with is kept when it synthesises at RTF 0.25 or less (a
   2 s first sentence ready within half a second) and the steady work fits the budget; otherwise
   the fastest installed voice for the target language (a ``low`` or ``x_low`` voice: 16 kHz, and
   for ``x_low`` a smaller network). With none faster installed, the note names the catalog's
   voices that suit a Raspberry Pi.
2. **Speech model.** The configured model is kept when its load (final-decode RTF + translation +
   synthesis RTF) is at most 0.7 of the box: the other 0.3 is for captions, the VAD and audio, and
   a box that runs at its limit falls behind on the first long sentence. Otherwise the fastest
   measured model that can hear the configured languages (an English-only model only when the
   speech may be English), with a note when none keeps real time.
3. **Caption interval** (``vad.partial_interval``): a caption decode every ``interval`` seconds
   of new speech costs ``caption_seconds / interval`` of the box, which must fit in what the steady
   work leaves (at least 0.1): ``interval = caption_seconds / max(1 - load, 0.1)``, rounded up to a
   quarter second, between 0.5 s (the default) and 2 s (beyond that captions stop being live).
4. **Threads.** 0 (one per usable core, see translator/cores.py) is right on every box; an
   explicit count above the usable cores only makes threads wait on each other, so it is reset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

LOAD_BUDGET = 0.7
"""Share of the box the steady work (final decode, translation, synthesis) may take."""
VOICE_RTF_MAX = 0.25
"""A voice slower than this makes the first sound wait: 2 s of speech take over 0.5 s."""
CAPTION_SHARE_MIN = 0.1
INTERVAL_MIN, INTERVAL_MAX, INTERVAL_STEP = 0.5, 2.0, 0.25
FIRST_AUDIO_SECONDS = 2.0
"""Speech in the first synthesised chunk of a short translation (for the speech-to-speech estimate)."""


@dataclass(frozen=True)
class AsrTiming:
    """One speech model on the clip: load, the final decode (``[asr] beam_size``) and a greedy caption decode."""

    model: str
    load_seconds: float
    final_seconds: float
    caption_seconds: float
    clip_seconds: float
    english_only: bool

    @property
    def rtf(self) -> float:
        return self.final_seconds / self.clip_seconds


@dataclass(frozen=True)
class VoiceTiming:
    """One Piper (or espeak-ng) voice synthesising the test sentence."""

    name: str
    seconds: float
    audio_seconds: float

    @property
    def rtf(self) -> float:
        return self.seconds / self.audio_seconds

    @property
    def quality(self) -> str:
        """Piper's quality from the voice name (``en_US-amy-low``: low), else empty."""
        tail = self.name.rsplit("-", 1)[-1]
        return tail if tail in ("x_low", "low", "medium", "high") else ""


@dataclass(frozen=True)
class Measurements:
    """Everything ``doctor`` measured on this box."""

    cores: float
    threads: int
    clip_seconds: float
    asr: tuple[AsrTiming, ...]
    voices: tuple[VoiceTiming, ...]
    mt_seconds: float | None
    """One translation of the clip's sentence on the configured text route; None without one."""
    seconds: float
    skipped: tuple[str, ...] = ()
    """What was not measured, and why (one line each)."""


@dataclass(frozen=True)
class Current:
    """The settings the recommendation starts from (the user's config)."""

    asr_model: str
    voice: str
    """The voice the config speaks with (its name; empty = no speech output)."""
    partial_interval: float
    asr_threads: int
    mt_threads: int
    english_possible: bool
    """Whether the speech may be English, so an English-only model can serve it."""
    endpoint: float
    pause: float


@dataclass(frozen=True)
class Recommendation:
    asr_model: str
    voice: str
    voice_quality: str
    partial_interval: float
    threads: int
    """What 0 means on this box: one per usable core."""
    reset_threads: bool
    """An explicit ``asr.threads`` or ``mt.threads`` above the usable cores, to be set back to 0."""
    load: float
    keeps_real_time: bool
    speech_to_speech: float
    """Estimated seconds from the end of speech to the first translated sound, captions aside."""
    notes: tuple[str, ...]

    def settings(self, current: Current) -> dict[str, dict[str, Any]]:
        """The config keys to write: those that differ from ``current``."""
        out: dict[str, dict[str, Any]] = {}
        if self.partial_interval != current.partial_interval:
            out["vad"] = {"partial_interval": self.partial_interval}
        if self.asr_model != current.asr_model:
            out["asr"] = {"model": self.asr_model}
        if self.voice and self.voice != current.voice:
            out["tts"] = {"voice": self.voice}
        if self.reset_threads:
            if current.asr_threads:
                out.setdefault("asr", {})["threads"] = 0
            if current.mt_threads:
                out["mt"] = {"threads": 0}
        return out


def _interval(caption_seconds: float, load: float) -> float:
    raw = caption_seconds / max(1.0 - load, CAPTION_SHARE_MIN)
    stepped = math.ceil(raw / INTERVAL_STEP - 1e-9) * INTERVAL_STEP
    return min(max(stepped, INTERVAL_MIN), INTERVAL_MAX)


def recommend(m: Measurements, current: Current, pi_voices: tuple[str, ...] = ()) -> Recommendation:
    """The settings for this box from ``m`` (rules in the module docstring). ``pi_voices`` are
    catalog voices for the target language that suit a Raspberry Pi, named when none is installed."""
    if not m.asr:
        raise ValueError("recommend needs at least one measured speech model")
    notes: list[str] = []
    mt_rtf = (m.mt_seconds or 0.0) / m.clip_seconds
    by_name = {t.model: t for t in m.asr}
    configured = by_name.get(current.asr_model)
    usable = [t for t in m.asr if current.english_possible or not t.english_only]
    fastest_asr = min(usable or list(m.asr), key=lambda t: t.rtf)

    voice = next((v for v in m.voices if v.name == current.voice), None)
    fastest_voice = min(m.voices, key=lambda v: v.rtf) if m.voices else None
    base_asr = configured or fastest_asr
    if voice is None or voice.rtf > VOICE_RTF_MAX or base_asr.rtf + mt_rtf + voice.rtf > LOAD_BUDGET:
        voice = fastest_voice
    if voice is not None and voice.rtf > VOICE_RTF_MAX and voice.quality not in ("low", "x_low") and pi_voices:
        notes.append(f"synthesis is slow here (RTF {voice.rtf:.2f}): install a voice for a Pi: {', '.join(pi_voices)}")
    tts_rtf = voice.rtf if voice is not None else 0.0

    if configured is not None and configured.rtf + mt_rtf + tts_rtf <= LOAD_BUDGET:
        asr = configured
    else:
        asr = fastest_asr
        if asr.english_only and configured is not None and not configured.english_only:
            notes.append(f"{asr.model} hears English only: speech in other languages needs {configured.model}")
    load = asr.rtf + mt_rtf + tts_rtf
    keeps = load < 1.0
    if load > LOAD_BUDGET:
        notes.append(
            f"no installed combination keeps well within real time here (load {load:.2f} of the box); "
            "expect captions to lag and speech to queue on long talks"
        )
    speech = max(current.endpoint, current.pause + asr.final_seconds + (m.mt_seconds or 0.0) + tts_rtf * FIRST_AUDIO_SECONDS)
    limit = math.floor(m.cores + 1e-9) or 1
    return Recommendation(
        asr_model=asr.model,
        voice=voice.name if voice is not None else "",
        voice_quality=voice.quality if voice is not None else "",
        partial_interval=_interval(asr.caption_seconds, load),
        threads=m.threads,
        reset_threads=max(current.asr_threads, current.mt_threads) > limit,
        load=load,
        keeps_real_time=keeps,
        speech_to_speech=speech,
        notes=tuple(notes),
    )
