"""One clip through the live pipeline at real-time pace, and the process figures around it.

Each clip is fed through the very pipeline every command uses (:func:`~translator.assemble.build_pipeline`
over engines loaded once, captions on), paced in real time by :class:`~translator.audio.sources.PacedSource`:
audio arrives on the clock, compute takes what it takes. Latencies are those of
:class:`~translator.transcript.UtteranceRecord`: each event's wall time minus the wall time the
utterance's last voiced sample reached the pipeline. A :class:`~translator.bench.spans.SpanLog`
observes the pipeline's compute. Also here: the CPU used while near-silence goes through the
pipeline (idle), and the process's resident memory.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from translator.assemble import Engines, build_pipeline
from translator.audio.blocks import LIVE_BLOCK_SECONDS
from translator.audio.files import FileSource
from translator.audio.sinks import MemorySink
from translator.audio.sources import PacedSource, with_trailing_silence
from translator.bench.corpus import ManifestClip
from translator.bench.spans import SpanLog
from translator.events import (
    SAMPLE_RATE,
    AudioBlock,
    Caption,
    Event,
    SpeechChunk,
    SpeechGrowing,
    SpeechPaused,
    SpeechStarted,
    StageFailed,
    Transcript,
    Translation,
    UtteranceEnded,
)
from translator.languages import joiner
from translator.stages.asr import RecognizerStage
from translator.transcript import UtteranceCollector, UtteranceRecord

IDLE_NOISE_DBFS = -80.0
"""Level of the noise added to digital silence for the idle figure: a quiet room through a muted
preamp, far below anything the VAD calls speech."""


@dataclass
class ClipRun:
    """What one run of one clip produced: the utterance records, every event, the compute spans."""

    clip: ManifestClip
    repeat: int
    records: list[UtteranceRecord]
    log: SpanLog
    t0: float
    """Wall time of audio time 0 (a block is released when its last sample is due)."""
    audio_seconds: float
    """Audio fed, the trailing silence included."""
    events: list[Event]
    speculative_hits: int
    speculative_misses: int
    tts_seconds: float
    caption_turns: dict[str, int]
    """Caption snapshots by what became of them: ``superseded`` (newer audio was waiting) and the
    scheduler's turns (:class:`~translator.scheduler.CaptionTurn`)."""
    failures: list[str] = field(default_factory=list)

    @property
    def hypothesis(self) -> str:
        """The clip's recognised text, its utterances in order."""
        ordered = sorted(self.records, key=lambda r: r.utterance_id)
        return joiner(self.clip.lang).join(r.source_text.strip() for r in ordered)


class Clock:
    """Passes blocks on and remembers where the audio clock sits on the wall clock."""

    def __init__(self, blocks: Iterable[AudioBlock]) -> None:
        self.blocks = blocks
        self.t0: float | None = None
        """Wall time of audio time 0 (a block is released when its last sample is due)."""
        self.audio_seconds = 0.0

    def __iter__(self) -> Iterator[AudioBlock]:
        for block in self.blocks:
            if self.t0 is None:
                self.t0 = block.wall - block.end
            self.audio_seconds = block.end
            yield block


_NO_AUDIO = np.zeros(0, np.float32)


def _light(event: Event) -> Event:
    """The event without its audio snapshot (the timeline needs times only), so the bench itself
    does not hold every caption's copy of the utterance and inflate the peak RSS it reports."""
    if isinstance(event, (SpeechGrowing, SpeechPaused, UtteranceEnded)):
        return dataclasses.replace(event, audio=_NO_AUDIO)
    return event


def trailing_silence(endpoint: float) -> float:
    """Silence after each clip: the endpoint must be reached as it would be live."""
    return max(1.0, endpoint + 0.5)


def run_clip(engines: Engines, clip: ManifestClip, repeat: int, block_seconds: float = LIVE_BLOCK_SECONDS) -> ClipRun:
    """Feed ``clip`` through a fresh pipeline in blocks of ``block_seconds`` at real-time pace.

    The default block is the microphone's: the endpoint is seen when the block holding it arrives,
    so latency depends on the block size, and the file reader's larger blocks would overstate it.
    """
    source = FileSource(clip.path, block_seconds=block_seconds)
    speaking = engines.speaker_stage is not None
    pipeline = build_pipeline(engines, sink=MemorySink() if speaking else None, captions=True)
    log = SpanLog()
    pipeline.observe(log)
    recognizer = pipeline.stages[0].stage
    assert isinstance(recognizer, RecognizerStage)  # build_pipeline's first stage: its speculation counts
    clock = Clock(
        PacedSource(with_trailing_silence(source, trailing_silence(engines.config.vad.endpoint), block_seconds=block_seconds))
    )
    collector = UtteranceCollector(speaking=speaking)
    records, events, failures = [], [], []
    for event in pipeline.run(clock):
        events.append(_light(event))
        if isinstance(event, StageFailed):
            failures.append(f"{event.stage}: {event.message}")
        record = collector.feed(event)
        if record is not None:
            records.append(record)
    tts_seconds = sum(len(e.samples) / e.sample_rate for e in events if isinstance(e, SpeechChunk))
    return ClipRun(
        clip,
        repeat,
        records,
        log,
        clock.t0 or 0.0,
        clock.audio_seconds,
        events,
        recognizer.speculative_hits,
        recognizer.speculative_misses,
        tts_seconds,
        {"superseded": pipeline.superseded, **(pipeline.scheduler.turns if pipeline.scheduler else {})},
        failures,
    )


def _ended(run: ClipRun, uid: int) -> UtteranceEnded:
    return next(e for e in run.events if isinstance(e, UtteranceEnded) and e.utterance_id == uid)


def from_voice_end(run: ClipRun, record: UtteranceRecord) -> float | None:
    """speech_to_speech counted from when the last voiced sample was spoken (the audio clock), not
    from when its block reached the pipeline: adds the wait for the block to fill."""
    if record.speech_to_speech is None:
        return None
    ended = _ended(run, record.utterance_id)
    return round(ended.t_end_wall + record.speech_to_speech - (run.t0 + ended.t_end), 4)


def final_waits(run: ClipRun) -> list[float]:
    """Seconds each final decode waited for the recognizer after its pause was heard (behind a
    caption decode, or a previous final): from the pause event to the recognizer's first step on it."""
    starts: dict[int, float] = {}
    for span in run.log.spans:
        if span.part == "asr" and span.what == "SpeechPaused" and span.utterance_id is not None:
            starts[span.utterance_id] = min(span.start, starts.get(span.utterance_id, span.start))
    waits = []
    for event in run.events:
        if isinstance(event, SpeechPaused) and event.utterance_id in starts and starts[event.utterance_id] >= event.wall:
            waits.append(round(starts.pop(event.utterance_id) - event.wall, 4))
    return waits


def utterance_timeline(run: ClipRun, uid: int) -> dict[str, Any]:
    """When everything about one utterance happened, in seconds after its ``t_end_wall``."""
    ended = _ended(run, uid)
    zero = ended.t_end_wall

    def rel(t: float) -> float:
        return round(t - zero, 4)

    def of(kind: type) -> list[Any]:
        return [e for e in run.events if isinstance(e, kind) and getattr(e, "utterance_id", None) == uid]

    return {
        "speech": [rel(run.t0 + ended.start), rel(run.t0 + ended.t_end)],
        "t_end_wall": 0.0,
        "paused": [rel(e.wall) for e in of(SpeechPaused)],
        "endpoint": rel(ended.wall),
        "started": [rel(e.wall) for e in of(SpeechStarted)],
        "captions": [[rel(e.audio_end_wall), rel(e.wall)] for e in of(Caption)],
        "transcript": [rel(e.wall) for e in of(Transcript)],
        "translation": [rel(e.wall) for e in of(Translation)],
        "audio_out": [[rel(e.wall), round(len(e.samples) / e.sample_rate, 4), e.text] for e in of(SpeechChunk)],
        "compute": [[s.part, s.what, rel(s.start), rel(s.end)] for s in run.log.spans if s.utterance_id == uid],
    }


def idle_cpu(engines: Engines, seconds: float) -> dict[str, Any]:
    """Process CPU time over wall time while near-silence goes through the paced pipeline."""
    rng = np.random.default_rng(0)
    size = round(LIVE_BLOCK_SECONDS * SAMPLE_RATE)
    amplitude = 10 ** (IDLE_NOISE_DBFS / 20)

    def blocks() -> Iterator[AudioBlock]:
        for i in range(int(seconds * SAMPLE_RATE) // size):
            noise = (rng.standard_normal(size) * amplitude).astype(np.float32)
            yield AudioBlock(noise, i * size / SAMPLE_RATE, time.monotonic())

    pipeline = build_pipeline(engines, sink=MemorySink(), captions=True)
    w0, c0 = time.monotonic(), time.process_time()
    events = list(pipeline.run(PacedSource(blocks())))
    wall, cpu = time.monotonic() - w0, time.process_time() - c0
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 4),
        "percent_of_one_core": round(100 * cpu / wall, 2) if wall > 0 else None,
        "utterances": sum(isinstance(e, UtteranceEnded) for e in events),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float | None:
    """Resident memory of this process now; None where /proc is not there."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None


__all__ = [
    "ClipRun",
    "current_rss_mb",
    "final_waits",
    "from_voice_end",
    "idle_cpu",
    "peak_rss_mb",
    "run_clip",
    "utterance_timeline",
]
