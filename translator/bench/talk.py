"""A long talk for the benchmark: corpus clips one after another with gaps, minutes long.

The corpus's clips last seconds; a slow box that keeps up with one clip may still fall behind over
minutes (a backlog that grows a little per utterance). ``translator bench --talk SECONDS`` joins
the selected clips, in order and again from the first, with ``--gap`` seconds of silence after
each (:data:`PAUSE` unless told), into one recording of at least that length, and runs it as one
clip. The recording is written to a temporary folder for the run and removed after; the corpus is
only read. Each clip is cut to its speech (its leading and trailing silence, up to 0.5 s on the
corpus's English clips, would lengthen every gap), so a gap shorter than the endpoint makes
*continuous speech*: the speaker goes on without a pause the segmenter would end an utterance at.

:func:`figures` says whether the pipeline kept up: every utterance finalised, the latencies of
the talk's last quarter against its first (a growing backlog shows as a later last quarter), the
talk's error rate, and the ear-voice lag (:func:`ear_voice_lags`).

The reference sentence ends are the clips' ends, known to the sample when the talk is built. A
clip holding two sentences counts as one: where its first sentence ends is not known without
aligning the audio to the words, so only the end of its last one is measured.
"""

from __future__ import annotations

import statistics
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from translator.audio.files import FileSource
from translator.audio.samples import speech_span
from translator.bench import scoring
from translator.bench.corpus import ManifestClip
from translator.bench.report import TARGET_EAR_VOICE_LAG, stats
from translator.bench.runner import ClipRun, final_waits
from translator.config import VadSettings
from translator.errors import InputError
from translator.events import SAMPLE_RATE, Event, SpeechChunk, Translation, UtteranceEnded
from translator.languages import joiner

PAUSE = 1.5
"""Default seconds of silence between two clips of the talk: a speaker drawing breath between
sentences, well past the endpoint, so each clip ends its utterances as it would alone."""

LEAD = 0.5
"""Seconds of silence before the talk's first word, as a recording starts (Whisper drops words
that start at the very first sample)."""
MARGIN = 0.05
"""Seconds kept before a clip's first word and after its last, so no word's onset or tail is cut."""

GAPS = (0.1, 5.0)
"""The gaps ``--gap`` accepts (seconds): from less than a pause to a long silence."""

SENTENCE_END_TOLERANCE = 0.6
"""How far before a clip's end the carrier's last voiced sample may lie (seconds). The
segmenter's ``t_end`` is the end of the last frame it heard as voice, and a clip's last word may
fade out below the VAD's threshold before the recording (cut to its speech, plus
:data:`MARGIN`) ends. Kept short because an utterance (or, with sentence commits, a segment)
that ends this close before the clip's end leaves no room for another of its words: the endpoint
alone takes 0.4 s of silence."""


LAST_WORDS = 3
"""How many of a clip's last reference words are looked for in the carrier's transcript: one of
them recognised says the sentence's end came out (tiny.en drops whole sentences of a long
utterance; one word of three still holds when the others are misheard, "thereunder" as "there
under")."""


@dataclass(frozen=True)
class Sentence:
    """A reference sentence of the talk: one clip."""

    end: float
    """Audio time of the clip's end in the talk (where its gap begins)."""
    text: str
    """The clip's reference transcript."""


@dataclass(frozen=True)
class Talk:
    """The talk as one clip of the corpus, and where its reference sentences end."""

    clip: ManifestClip
    gap: float
    """Seconds of silence after each clip."""
    sentences: tuple[Sentence, ...]
    """One per clip of the talk, in order."""


def make_talk(clips: Sequence[ManifestClip], seconds: float, folder: Path, gap: float = PAUSE) -> Talk:
    """``clips`` joined with ``gap`` seconds of silence after each, repeated to at least
    ``seconds``, as a 16 kHz WAV in ``folder``."""
    languages = sorted({c.lang for c in clips})
    if len(languages) != 1:
        raise InputError(
            f"--talk: the clips are in {len(languages)} languages ({', '.join(languages)}); a talk is in one, e.g. --clips 'en/*'"
        )
    decoded = [_spoken(np.concatenate([b.samples for b in FileSource(c.path)])) for c in clips]
    silence = np.zeros(round(gap * SAMPLE_RATE), np.float32)
    pieces: list[np.ndarray] = [np.zeros(round(LEAD * SAMPLE_RATE), np.float32)]
    texts: list[str] = []
    sentences: list[Sentence] = []
    total = len(pieces[0])
    while total < seconds * SAMPLE_RATE:
        for clip, audio in zip(clips, decoded, strict=True):
            pieces += [audio, silence]
            texts.append(clip.transcript)
            sentences.append(Sentence((total + len(audio)) / SAMPLE_RATE, clip.transcript))
            total += len(audio) + len(silence)
            if total >= seconds * SAMPLE_RATE:
                break
    samples = np.concatenate(pieces)
    path = folder / "talk.wav"
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    name = f"talk of {len(texts)} clips ({len(samples) / SAMPLE_RATE:.0f} s)"
    clip = ManifestClip(name, path, languages[0], len(samples) / SAMPLE_RATE, joiner(languages[0]).join(texts))
    return Talk(clip, gap, tuple(sentences))


def _spoken(audio: np.ndarray) -> np.ndarray:
    """A clip from its first word to its last, with :data:`MARGIN` on either side: the silence a
    recording starts and ends with would lengthen every gap of the talk."""
    a, b = speech_span(audio)
    margin = round(MARGIN * SAMPLE_RATE)
    return audio[max(0, a - margin) : b + margin]


def _words(text: str, language: str) -> list[str]:
    """``text`` as scored (:func:`~translator.bench.scoring.units`), each word normalised alone so
    that successive digits stay apart ("one two three" gives "3" as its last word, as "Three."
    does: a run of digits would be joined into "123")."""
    if scoring.metric_for(language) == "cer":
        return scoring.units(text, language)
    words = (w for word in text.split() for w in scoring.normalise(word, language).split())
    return [w for w in words if any(c.isalnum() for c in w)]  # "regard..." leaves a "." behind


def ear_voice_lags(
    events: Sequence[Event],
    t0: float,
    sentences: Sequence[Sentence],
    language: str,
    *,
    lead_in: float,
    tolerance: float = SENTENCE_END_TOLERANCE,
) -> list[float | None]:
    """For each sentence, seconds from when its end reached the pipeline (``t0`` + the end,
    ``t0`` being the wall time of audio time 0) to the first translated audio of the utterance
    that carries it; None when its words never came out as speech: no carrier, a carrier that
    spoke nothing, or whose transcript holds none of the sentence's :data:`LAST_WORDS` last words.

    The carrier is the first utterance whose last voiced sample reaches the end, less
    ``tolerance``, among those that started ``lead_in`` before it or earlier: the segmenter starts
    an utterance ``vad.pre_roll`` before its first voiced frame, so with a gap that short the
    *next* clip's utterance may start just before this clip's end. With sentence commits an
    utterance comes out as several, each with its own id: the carrier is then the segment that
    holds the sentence's end, so the figure measures them as they are."""
    utterances = sorted((e for e in events if isinstance(e, UtteranceEnded)), key=lambda e: e.start)
    first_audio: dict[int, float] = {}
    heard: dict[int, set[str]] = {}
    for e in events:
        if isinstance(e, SpeechChunk):
            first_audio.setdefault(e.utterance_id, e.wall)
        elif isinstance(e, Translation):
            heard[e.utterance_id] = set(_words(e.source_text, language))
    lags: list[float | None] = []
    for sentence in sentences:
        end = sentence.end
        carrier = next((u for u in utterances if u.start <= end - lead_in and u.t_end >= end - tolerance), None)
        uid = carrier.utterance_id if carrier else None
        ending = _words(sentence.text, language)[-LAST_WORDS:]
        if uid is None or uid not in first_audio or not heard.get(uid, set()).intersection(ending):
            lags.append(None)
        else:
            lags.append(round(first_audio[uid] - (t0 + end), 4))
    return lags


def _median(xs: Sequence[float | None]) -> float | None:
    values = [x for x in xs if x is not None]
    return round(statistics.median(values), 4) if values else None


def _lag_figures(sentences: Sequence[Sentence], lags: Sequence[float | None], *, continuous: bool) -> dict[str, Any]:
    """Median, p95 and max of the lags, how many sentences had none, the issue's targets met or
    missed (None with pauses between the clips: the targets are for continuous speech), and each
    sentence's end and lag, to find the slow ones."""
    s = stats(lags)
    median, p95 = TARGET_EAR_VOICE_LAG

    def met(value: float | int | None, target: float) -> bool | None:
        return None if value is None or not continuous else value <= target

    return {
        "sentences": len(lags),
        "n": s["n"],
        "missing": sum(1 for x in lags if x is None),
        "median": s["median"],
        "p95": s["p95"],
        "max": s["max"],
        "target_median": median,
        "target_p95": p95,
        "median_met": met(s["median"], median),
        "p95_met": met(s["p95"], p95),
        "per_sentence": [{"end": round(sentence.end, 4), "lag": lag} for sentence, lag in zip(sentences, lags, strict=True)],
    }


def figures(run: ClipRun, talk: Talk, vad: VadSettings) -> dict[str, Any]:
    """Did the pipeline keep up over the talk: utterances ended and finalised, the medians of its
    first and last quarter (by when the utterance ended in the talk), its error rate against the
    joined references, and the ear-voice lag; continuous speech when the gap is shorter than the
    segmenter's endpoint."""
    ended = {e.utterance_id: e.t_end for e in run.events if isinstance(e, UtteranceEnded)}
    quarter = run.clip.seconds / 4
    first = [r for r in run.records if ended.get(r.utterance_id, 0.0) < quarter]
    last = [r for r in run.records if ended.get(r.utterance_id, 0.0) >= 3 * quarter]
    waits = final_waits(run)
    continuous = talk.gap < vad.endpoint
    lags = ear_voice_lags(run.events, run.t0, talk.sentences, run.clip.lang, lead_in=vad.pre_roll)
    return {
        "seconds": round(run.clip.seconds, 1),
        "gap": talk.gap,
        "speech": "continuous" if continuous else "pauses",
        "utterances_ended": len(ended),
        "utterances_finalised": sum(1 for r in run.records if r.asr_final is not None),
        "final_wait_max": max(waits) if waits else None,
        "metric": scoring.metric_for(run.clip.lang),
        "error_rate": round(scoring.error_rate(run.clip.transcript, run.hypothesis, run.clip.lang), 4),
        "first_quarter": {
            "asr_final_median": _median([r.asr_final for r in first]),
            "speech_to_speech_median": _median([r.speech_to_speech for r in first]),
        },
        "last_quarter": {
            "asr_final_median": _median([r.asr_final for r in last]),
            "speech_to_speech_median": _median([r.speech_to_speech for r in last]),
        },
        "ear_voice_lag": _lag_figures(talk.sentences, lags, continuous=continuous),
    }


__all__ = ["GAPS", "LAST_WORDS", "PAUSE", "SENTENCE_END_TOLERANCE", "Sentence", "Talk", "ear_voice_lags", "figures", "make_talk"]
