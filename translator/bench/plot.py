"""``translator bench --plot``: a PNG timeline of one utterance, speech in to audio out.

One lane per part (speech in, VAD, ASR, MT, TTS, audio out), time in seconds after the utterance's
last voiced sample reached the pipeline, the compute spans coloured by what they worked on.
matplotlib is optional (the ``bench`` extra): only this module needs it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path

from translator.bench.runner import ClipRun, utterance_timeline
from translator.errors import ConfigError, OutputError
from translator.events import SpeechChunk
from translator.text import ms
from translator.transcript import UtteranceRecord

LANES = ("speech in", "VAD", "ASR", "MT", "TTS", "audio out")
_STAGE_LANES = {"asr": "ASR", "mt": "MT", "tts": "TTS"}
_COLOURS = {"SpeechGrowing": "#90caf9", "SpeechPaused": "#1565c0", "UtteranceEnded": "#0d47a1", "SpeechStarted": "#bbdefb"}
"""ASR spans by input: captions light, final decodes dark; MT and TTS have a colour each."""


def pick_utterance(runs: Sequence[ClipRun], clip_glob: str | None) -> tuple[ClipRun, UtteranceRecord] | None:
    """The utterance to draw: of ``clip_glob``'s clip the one with most sentences spoken, else the
    one whose speech_to_speech is the median."""
    candidates = [(run, r) for run in runs for r in run.records if r.speech_to_speech is not None]
    if not candidates:
        candidates = [(run, r) for run in runs for r in run.records]
    if not candidates:
        return None
    if clip_glob:
        chosen = [(run, r) for run, r in candidates if fnmatch.fnmatchcase(run.clip.file, clip_glob)]
        if chosen:
            return max(
                chosen,
                key=lambda c: (
                    sum(isinstance(e, SpeechChunk) and e.utterance_id == c[1].utterance_id for e in c[0].events),
                    -c[0].repeat,
                ),
            )
    ordered = sorted(candidates, key=lambda c: c[1].speech_to_speech or 0.0)
    return ordered[(len(ordered) - 1) // 2]


def plot_timeline(path: Path, run: ClipRun, record: UtteranceRecord, title: str) -> None:
    """Draw ``record``'s timeline into the PNG ``path``."""
    try:
        import matplotlib  # noqa: PLC0415 - optional (the bench extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415 - after matplotlib.use(), which must come first
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install matplotlib (or leave out --plot)") from None
    tl = utterance_timeline(run, record.utterance_id)
    y = {name: len(LANES) - i for i, name in enumerate(LANES)}
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=110)
    s0, s1 = tl["speech"]
    ax.broken_barh([(s0, s1 - s0)], (y["speech in"] - 0.35, 0.7), color="#9e9e9e")
    ax.text(s0, y["speech in"] + 0.42, f"utterance {record.start:.2f}-{record.end:.2f} s of {run.clip.file}", fontsize=8)
    for part, what, a, b in tl["compute"]:
        lane = _STAGE_LANES.get(part)
        if lane is None:
            continue
        colour = _COLOURS.get(what, "#ef6c00" if part == "mt" else "#2e7d32")
        ax.broken_barh([(a, max(b - a, 0.004))], (y[lane] - 0.3, 0.6), color=colour, edgecolor="black", linewidth=0.3)
    for when, seconds, _text in tl["audio_out"]:
        ax.broken_barh([(when, seconds)], (y["audio out"] - 0.3, 0.6), color="#a5d6a7", edgecolor="black", linewidth=0.3)
    for when in tl["paused"]:
        ax.axvline(when, color="#1565c0", linestyle=":", linewidth=1)
        ax.text(when, y["VAD"] + 0.2, " pause", fontsize=8, color="#1565c0")
    ax.axvline(tl["endpoint"], color="#b71c1c", linestyle="--", linewidth=1)
    ax.text(tl["endpoint"], y["VAD"] - 0.3, " endpoint", fontsize=8, color="#b71c1c")
    ax.axvline(0.0, color="black", linewidth=1)
    ax.text(0.0, 0.35, " last voiced sample in", fontsize=8)
    if tl["audio_out"]:
        first = tl["audio_out"][0][0]
        ax.axvline(first, color="#2e7d32", linewidth=1.5)
        ax.text(first, y["audio out"] + 0.38, f" first audio out: {ms(first)}", fontsize=8, color="#2e7d32")
    ax.set_yticks([y[name] for name in LANES], LANES)
    ax.set_xlabel("seconds after the last voiced sample reached the pipeline (t_end)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0.2, len(LANES) + 0.9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as e:
        raise OutputError(f"{path}: cannot write the plot ({e.strerror or e})") from None
    finally:
        plt.close(fig)


__all__ = ["pick_utterance", "plot_timeline"]
