"""The accuracy baseline: stock faster-whisper ``WhisperModel.transcribe()`` on each whole clip.

Run with the model the pipeline already loaded, greedy (beam 1) and with faster-whisper's default
beam of 5 (the pipeline's final beam by default), so the accuracy cost of streaming shows as a
difference between figures scored the same way.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from translator.assemble import Engines
from translator.audio.files import FileSource
from translator.bench import scoring
from translator.bench.corpus import ManifestClip
from translator.events import SAMPLE_RATE
from translator.languages import joiner


def clip_audio(path: Path) -> np.ndarray:
    """The whole clip as 16 kHz mono float32, decoded and resampled as the pipeline's input is."""
    blocks = [b.samples for b in FileSource(path)]
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def baseline(engines: Engines, clips: Sequence[ManifestClip], beams: Sequence[int]) -> dict[str, Any]:
    """Stock ``transcribe()`` (30 s window, its default options) of each clip at each beam size:
    per clip text, error rate, compute time; per beam the error rates summed over the clips."""
    model = engines.recognizer.model
    language = None if engines.recognizer.multilingual else "en"
    per_clip: dict[str, dict[str, Any]] = {}
    for clip in clips:
        audio = clip_audio(clip.path)
        entry: dict[str, Any] = {}
        for beam in beams:
            t0 = time.perf_counter()
            segments, info = model.transcribe(audio, beam_size=beam, language=language, task="transcribe")
            # the segments are a lazy generator: decoding happens while they are joined
            text = joiner(clip.lang).join(s.text.strip() for s in segments)
            seconds = time.perf_counter() - t0
            entry[f"beam{beam}"] = {
                "text": text,
                "language": info.language,
                "metric": scoring.metric_for(clip.lang),
                "error_rate": round(scoring.error_rate(clip.transcript, text, clip.lang), 4),
                "compute_seconds": round(seconds, 4),
                "rtf": round(seconds / max(len(audio) / SAMPLE_RATE, 1e-9), 4),
            }
        per_clip[clip.file] = entry
    summary: dict[str, Any] = {}
    for beam in beams:
        key = f"beam{beam}"
        sums = scoring.total((c.transcript, per_clip[c.file][key]["text"], c.lang) for c in clips)
        summary[key] = {
            **{m: round(e.rate, 4) for m, e in sums.items()},
            "compute_seconds": round(sum(per_clip[c.file][key]["compute_seconds"] for c in clips), 3),
        }
    return {"clips": per_clip, "summary": summary}


__all__ = ["baseline", "clip_audio"]
