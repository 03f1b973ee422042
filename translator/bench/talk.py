"""A long talk for the benchmark: corpus clips one after another with pauses, minutes long.

The corpus's clips last seconds; a slow box that keeps up with one clip may still fall behind over
minutes (a backlog that grows a little per utterance). ``translator bench --talk SECONDS`` joins
the selected clips, in order and again from the first, with :data:`PAUSE` of silence between them,
into one recording of at least that length, and runs it as one clip. The recording is written to
a temporary folder for the run and removed after; the corpus is only read.

:func:`figures` says whether the pipeline kept up: every utterance finalised, and the latencies of
the talk's last quarter against its first (a growing backlog shows as a later last quarter).
"""

from __future__ import annotations

import statistics
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from translator.audio.files import FileSource
from translator.bench.corpus import ManifestClip
from translator.bench.runner import ClipRun, final_waits
from translator.errors import InputError
from translator.events import SAMPLE_RATE, UtteranceEnded
from translator.languages import joiner

PAUSE = 1.5
"""Seconds of silence between two clips of the talk: a speaker drawing breath between sentences,
well past the endpoint, so each clip ends its utterances as it would alone."""


def make_talk(clips: Sequence[ManifestClip], seconds: float, folder: Path) -> ManifestClip:
    """``clips`` joined, repeated, to at least ``seconds``, as a 16 kHz WAV in ``folder``."""
    languages = sorted({c.lang for c in clips})
    if len(languages) != 1:
        raise InputError(
            f"--talk: the clips are in {len(languages)} languages ({', '.join(languages)}); a talk is in one, e.g. --clips 'en/*'"
        )
    decoded = [np.concatenate([b.samples for b in FileSource(c.path)]) for c in clips]
    gap = np.zeros(round(PAUSE * SAMPLE_RATE), np.float32)
    pieces: list[np.ndarray] = []
    texts: list[str] = []
    total = 0
    while total < seconds * SAMPLE_RATE:
        for clip, audio in zip(clips, decoded, strict=True):
            pieces += [audio, gap]
            texts.append(clip.transcript)
            total += len(audio) + len(gap)
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
    return ManifestClip(name, path, languages[0], len(samples) / SAMPLE_RATE, joiner(languages[0]).join(texts))


def _median(xs: Sequence[float | None]) -> float | None:
    values = [x for x in xs if x is not None]
    return round(statistics.median(values), 4) if values else None


def figures(run: ClipRun) -> dict[str, Any]:
    """Did the pipeline keep up over the talk: utterances ended and finalised, and the medians of
    its first and last quarter (by when the utterance ended in the talk)."""
    ended = {e.utterance_id: e.t_end for e in run.events if isinstance(e, UtteranceEnded)}
    quarter = run.clip.seconds / 4
    first = [r for r in run.records if ended.get(r.utterance_id, 0.0) < quarter]
    last = [r for r in run.records if ended.get(r.utterance_id, 0.0) >= 3 * quarter]
    waits = final_waits(run)
    return {
        "seconds": round(run.clip.seconds, 1),
        "utterances_ended": len(ended),
        "utterances_finalised": sum(1 for r in run.records if r.asr_final is not None),
        "final_wait_max": max(waits) if waits else None,
        "first_quarter": {
            "asr_final_median": _median([r.asr_final for r in first]),
            "speech_to_speech_median": _median([r.speech_to_speech for r in first]),
        },
        "last_quarter": {
            "asr_final_median": _median([r.asr_final for r in last]),
            "speech_to_speech_median": _median([r.speech_to_speech for r in last]),
        },
    }


__all__ = ["PAUSE", "figures", "make_talk"]
