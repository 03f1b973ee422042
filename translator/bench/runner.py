"""``translator bench``: latency and accuracy of the live pipeline on real recordings.

Each clip of the speech corpus is fed through the very pipeline every command uses
(:func:`~translator.assemble.load_engines` once, then :func:`~translator.assemble.build_pipeline`
per clip, captions on), paced in real time by :class:`~translator.audio.PacedSource`: audio arrives
on the clock, compute takes what it takes. Latencies are those of
:class:`~translator.transcript.UtteranceRecord` (DESIGN.md, "Latency"): each event's wall time
minus the wall time the utterance's last voiced sample reached the pipeline.

Also measured: WER/CER against the manifest (:mod:`translator.scoring`), the compute time of each
stage over the audio it handled (real-time factor), peak RSS, model load + warm-up time, the CPU
used while 10 s of near-silence go through the pipeline, and a baseline: stock faster-whisper
``WhisperModel.transcribe()`` on each whole clip with the same loaded model, so the accuracy cost of
streaming shows as a difference. Results go to a table, a JSON file and a PNG timeline of one
utterance.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fnmatch
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from translator import cliargs
from translator.bench import scoring
from translator.errors import ConfigError, InputError, OutputError, TranslatorError
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

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
"""``../shared/corpus`` beside the project checkout."""

LIVE_BLOCK_SECONDS = 0.128
"""Block size the live microphone delivers (``translator.devices``: four 32 ms VAD frames). Latency
depends on it: the endpoint is seen when the block holding it arrives, so the bench feeds blocks
of this size rather than the file reader's 256 ms."""

IDLE_SECONDS = 10.0
IDLE_NOISE_DBFS = -80.0
"""Level of the noise added to digital silence for the idle figure: a quiet room through a muted
preamp, far below anything the VAD calls speech."""

TARGETS_S2S = {"tiny.en": (0.6, 1.0), "base": (0.8, None)}
"""speech_to_speech (median, p95) targets of issue 6, per model."""
TARGET_CAPTION = 0.5
TARGET_RSS_MB = 600.0
TARGET_LOAD = 3.0
TARGET_IDLE = 3.0
TARGET_WER_POINTS = 1.0


# --- command line -------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``translator bench`` on the CLI's sub-parsers."""
    b = subparsers.add_parser(
        "bench",
        help="latency and accuracy on real recordings, paced in real time",
        description=(
            "Feed the speech corpus through the live pipeline in real time and report latencies "
            "(median, p95), WER/CER against the references and a stock faster-whisper baseline, the "
            "real-time factor of each stage, peak memory, load time and idle CPU."
        ),
        epilog=cliargs.EPILOG,
    )
    b.add_argument("--corpus", metavar="DIR", help=f"corpus folder holding speech/manifest.tsv (default: {DEFAULT_CORPUS})")
    b.add_argument("--clips", metavar="GLOB", nargs="+",
                   help="only these clips: globs on the manifest paths, e.g. 'en/*' de/picovoice_leopard_test_de.wav")
    b.add_argument("--repeat", metavar="N", type=int, default=1, help="runs of every clip (default: 1)")
    b.add_argument("--json", metavar="FILE", help="write every figure, per clip and per utterance, as JSON")
    b.add_argument("--plot", metavar="FILE.png", help="draw a timeline of one utterance (needs matplotlib)")
    b.add_argument("--plot-clip", metavar="GLOB",
                   help="draw the utterance of this clip with the most sentences (default: the median speech_to_speech)")
    b.add_argument("--idle", metavar="SECONDS", type=float, default=IDLE_SECONDS,
                   help=f"seconds of near-silence for the idle CPU figure, 0 to skip (default: {IDLE_SECONDS:g})")
    b.add_argument("--baseline", choices=("both", "greedy", "none"), default="both",
                   help="stock transcribe() baseline: beam 1 and beam 5 (both), beam 1 only, or none (default: both)")
    b.add_argument("--block-ms", metavar="MS", type=float, default=None,
                   help=f"audio block size in ms (default: {LIVE_BLOCK_SECONDS * 1000:g}, as the live microphone delivers it)")
    b.add_argument("--quiet", action="store_true", help="print only the summary")
    cliargs.add_settings_args(b)
    b.set_defaults(func=cmd_bench)
    return b


# --- clips --------------------------------------------------------------------------------------


def corpus_speech_dir(corpus: str | None) -> Path:
    """The folder holding ``manifest.tsv``: ``DIR/speech`` or ``DIR`` itself."""
    root = Path(corpus) if corpus else DEFAULT_CORPUS
    for candidate in (root / "speech", root):
        if (candidate / "manifest.tsv").is_file():
            return candidate
    if corpus:
        raise InputError(f"{root}: no speech/manifest.tsv in the corpus folder; give the folder that holds it")
    raise InputError(f"{root}: the default corpus is missing; give one with --corpus DIR")


def select_clips(
    clips: Sequence[scoring.ManifestClip], globs: Sequence[str] | None, *, english_only: bool
) -> list[scoring.ManifestClip]:
    """Clips matching ``globs`` (all when None), one of each derived-copy pair, English only for
    an English-only model. A glob that matches nothing is an error, as is an empty selection."""
    chosen = list(clips)
    if globs:
        for g in globs:
            if not any(fnmatch.fnmatchcase(c.file, g) for c in clips):
                raise InputError(f"--clips {g}: matches no clip of the manifest (e.g. en/jfk.flac, 'de/*')")
        chosen = [c for c in clips if any(fnmatch.fnmatchcase(c.file, g) for g in globs)]
    chosen = scoring.dedupe_derived(chosen)
    if english_only:
        chosen = [c for c in chosen if c.lang == "en"]
        if not chosen:
            raise InputError("the speech model is English-only and no English clip is selected; use --asr base or pick en/ clips")
    if not chosen:
        raise InputError("no clip selected")
    return chosen


# --- instrumentation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """A stretch of compute: one step of a stage on one input event."""

    stage: str
    what: str
    """The input event's type (``SpeechGrowing`` = a caption decode, ``UtteranceEnded`` = ...)."""
    utterance_id: int | None
    start: float
    end: float


class SpanLog:
    def __init__(self) -> None:
        self.spans: list[Span] = []

    def add(self, *args: Any) -> None:
        self.spans.append(Span(*args))  # list.append is atomic under the GIL

    def seconds(self, stage: str, what: Iterable[str] | None = None) -> float:
        kinds = set(what) if what is not None else None
        return sum(s.end - s.start for s in self.spans if s.stage == stage and (kinds is None or s.what in kinds))


class TimedStage:
    """Wraps a stage and logs the time each step of its generator takes (not the time its output
    waits on the next queue)."""

    def __init__(self, name: str, inner: Any, log: SpanLog) -> None:
        self.name, self.inner, self.log = name, inner, log

    def feed(self, event: Any) -> Iterator[Event]:
        what, uid = type(event).__name__, getattr(event, "utterance_id", None)
        steps = iter(self.inner.feed(event))
        try:
            while True:
                t0 = time.monotonic()
                try:
                    out = next(steps)
                except StopIteration:
                    t1 = time.monotonic()
                    if t1 - t0 > 0.0005:
                        self.log.add(self.name, what, uid, t0, t1)
                    return
                self.log.add(self.name, what, uid, t0, time.monotonic())
                yield out
        finally:
            close = getattr(steps, "close", None)
            if close is not None:
                close()


class TimedSegmenter:
    def __init__(self, inner: Any, log: SpanLog) -> None:
        self.inner, self.log = inner, log

    def feed(self, block: AudioBlock) -> Iterator[Event]:
        t0 = time.monotonic()
        events = list(self.inner.feed(block))
        self.log.add("vad", "AudioBlock", None, t0, time.monotonic())
        return iter(events)

    def flush(self, wall: float | None = None) -> Iterator[Event]:
        return self.inner.flush(wall)


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


def instrument(pipeline: Any, log: SpanLog) -> Any:
    """The recognizer stage of ``pipeline`` after wrapping every stage and the segmenter in timers."""
    recognizer = pipeline.stages[0].stage
    pipeline.stages = [dataclasses.replace(s, stage=TimedStage(s.name, s.stage, log)) for s in pipeline.stages]
    pipeline.segmenter = TimedSegmenter(pipeline.segmenter, log)
    return recognizer


# --- one clip -----------------------------------------------------------------------------------


@dataclass
class ClipRun:
    clip: scoring.ManifestClip
    repeat: int
    records: list[Any]
    log: SpanLog
    t0: float
    audio_seconds: float
    events: list[Event]
    speculative_hits: int
    speculative_misses: int
    tts_seconds: float
    captions_skipped: int
    failures: list[str] = field(default_factory=list)

    @property
    def hypothesis(self) -> str:
        joiner = "" if self.clip.lang in scoring.CHARACTER_LANGUAGES else " "
        return joiner.join(r.source_text.strip() for r in sorted(self.records, key=lambda r: r.utterance_id))


def live_block_seconds() -> float:
    """The microphone's block size when the live audio module is there, else the same figure."""
    try:
        from translator.audio.blocks import LIVE_BLOCK_SECONDS as DEFAULT_BLOCK_SECONDS  # noqa: PLC0415
    except Exception:  # noqa: BLE001 - ImportError, or OSError when PortAudio is missing
        return LIVE_BLOCK_SECONDS
    return float(DEFAULT_BLOCK_SECONDS)


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


def run_clip(engines: Any, clip: scoring.ManifestClip, repeat: int, block_seconds: float | None = None) -> ClipRun:
    from translator.assemble import build_pipeline  # noqa: PLC0415 - heavy imports
    from translator.audio.files import FileSource  # noqa: PLC0415
    from translator.audio.sinks import MemorySink  # noqa: PLC0415
    from translator.audio.sources import PacedSource, with_trailing_silence  # noqa: PLC0415
    from translator.transcript import UtteranceCollector  # noqa: PLC0415

    block_seconds = block_seconds or live_block_seconds()
    source = FileSource(clip.path, block_seconds=block_seconds)
    speaking = engines.speaker_stage is not None
    pipeline = build_pipeline(engines, sink=MemorySink() if speaking else None, captions=True)
    log = SpanLog()
    recognizer = instrument(pipeline, log)
    clock = Clock(PacedSource(with_trailing_silence(
        source, trailing_silence(engines.config.vad.endpoint), block_seconds=block_seconds
    )))
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
        clip, repeat, records, log, clock.t0 or 0.0, clock.audio_seconds, events,
        getattr(recognizer, "speculative_hits", 0), getattr(recognizer, "speculative_misses", 0), tts_seconds,
        getattr(pipeline, "superseded", 0), failures,
    )


def from_voice_end(run: ClipRun, record: Any) -> float | None:
    """speech_to_speech counted from when the last voiced sample was spoken (the audio clock), not
    from when its block reached the pipeline: adds the wait for the block to fill."""
    if record.speech_to_speech is None:
        return None
    ended = next(e for e in run.events if isinstance(e, UtteranceEnded) and e.utterance_id == record.utterance_id)
    return round(ended.t_end_wall + record.speech_to_speech - (run.t0 + ended.t_end), 4)


def utterance_timeline(run: ClipRun, uid: int) -> dict[str, Any]:
    """When everything about one utterance happened, in seconds after its ``t_end_wall``."""
    ended = next(e for e in run.events if isinstance(e, UtteranceEnded) and e.utterance_id == uid)
    zero = ended.t_end_wall

    def rel(t: float) -> float:
        return round(t - zero, 4)

    out: dict[str, Any] = {
        "speech": [rel(run.t0 + ended.start), rel(run.t0 + ended.t_end)],
        "t_end_wall": 0.0,
        "paused": [rel(e.wall) for e in run.events if isinstance(e, SpeechPaused) and e.utterance_id == uid],
        "endpoint": rel(ended.wall),
        "started": [rel(e.wall) for e in run.events if isinstance(e, SpeechStarted) and e.utterance_id == uid],
        "captions": [[rel(e.audio_end_wall), rel(e.wall)] for e in run.events if isinstance(e, Caption) and e.utterance_id == uid],
        "transcript": [rel(e.wall) for e in run.events if isinstance(e, Transcript) and e.utterance_id == uid],
        "translation": [rel(e.wall) for e in run.events if isinstance(e, Translation) and e.utterance_id == uid],
        "audio_out": [
            [rel(e.wall), round(len(e.samples) / e.sample_rate, 4), e.text]
            for e in run.events if isinstance(e, SpeechChunk) and e.utterance_id == uid
        ],
        "compute": [[s.stage, s.what, rel(s.start), rel(s.end)] for s in run.log.spans if s.utterance_id == uid],
    }
    return out


# --- figures ------------------------------------------------------------------------------------


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    xs = [float(v) for v in values if v is not None]
    if not xs:
        return {"n": 0, "median": None, "p95": None, "mean": None, "min": None, "max": None}
    return {
        "n": len(xs),
        "median": round(statistics.median(xs), 4),
        "p95": round(float(np.percentile(xs, 95)), 4),
        "mean": round(statistics.fmean(xs), 4),
        "min": round(min(xs), 4),
        "max": round(max(xs), 4),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return round(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None


def idle_cpu(engines: Any, seconds: float) -> dict[str, Any]:
    """Process CPU time over wall time while near-silence goes through the paced pipeline."""
    from translator.assemble import build_pipeline  # noqa: PLC0415
    from translator.audio.sinks import MemorySink  # noqa: PLC0415
    from translator.audio.sources import PacedSource  # noqa: PLC0415

    rng = np.random.default_rng(0)
    size = round(live_block_seconds() * SAMPLE_RATE)
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


def clip_audio(path: Path) -> np.ndarray:
    from translator.audio.files import FileSource  # noqa: PLC0415

    blocks = [b.samples for b in FileSource(path)]
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def baseline(engines: Any, clips: Sequence[scoring.ManifestClip], beams: Sequence[int]) -> dict[str, Any]:
    """Stock ``WhisperModel.transcribe()`` (30 s window, its default options) on each whole clip,
    with the model the pipeline uses, greedy (like the pipeline) and with the default beam of 5."""
    model = engines.recognizer.model
    language = None if engines.recognizer.multilingual else "en"
    per_clip: dict[str, dict[str, Any]] = {}
    for clip in clips:
        audio = clip_audio(clip.path)
        entry: dict[str, Any] = {}
        for beam in beams:
            t0 = time.perf_counter()
            segments, info = model.transcribe(audio, beam_size=beam, language=language, task="transcribe")
            text = ("" if clip.lang in scoring.CHARACTER_LANGUAGES else " ").join(s.text.strip() for s in segments)
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


def machine(config: Any, engines: Any) -> dict[str, Any]:
    cpu_model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu_model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu_model)
    except OSError:
        pass
    versions = {}
    for package in ("faster-whisper", "ctranslate2", "onnxruntime", "piper-tts", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    cores = os.cpu_count() or 1
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cores": cores,
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "asr_model": config.asr.model,
        "asr_model_dir": str(engines.recognizer.model_dir),
        "compute_type": config.asr.compute_type,
        "threads": {
            "asr": config.asr.threads or cores,
            "mt": config.mt.threads or cores,
            "tts": "onnxruntime default",
            "vad": 1,
        },
        "versions": versions,
    }


def summarise(runs: Sequence[ClipRun], clips: Sequence[scoring.ManifestClip], model: str) -> dict[str, Any]:
    records = [r for run in runs for r in run.records]
    latency = {
        "caption_lag": stats([x for r in records for x in r.caption_lags]),
        "asr_final": stats([r.asr_final for r in records]),
        "mt": stats([r.mt for r in records]),
        "speech_to_speech": stats([r.speech_to_speech for r in records]),
        "speech_to_speech_from_voice_end": stats([from_voice_end(run, r) for run in runs for r in run.records]),
    }
    audio = sum(run.clip.seconds for run in runs)
    fed = sum(run.audio_seconds for run in runs)
    spoken = sum(run.tts_seconds for run in runs)
    rtf = {
        "vad": round(sum(run.log.seconds("vad") for run in runs) / max(fed, 1e-9), 5),
        "asr": round(sum(run.log.seconds("asr") for run in runs) / max(audio, 1e-9), 4),
        "asr_final_only": round(
            sum(run.log.seconds("asr", ("SpeechPaused", "UtteranceEnded")) for run in runs) / max(audio, 1e-9), 4
        ),
        "asr_captions_only": round(sum(run.log.seconds("asr", ("SpeechGrowing",)) for run in runs) / max(audio, 1e-9), 4),
        "mt": round(sum(run.log.seconds("mt") for run in runs) / max(audio, 1e-9), 4),
        "tts": round(sum(run.log.seconds("tts") for run in runs) / max(spoken, 1e-9), 4) if spoken else None,
        "basis": "compute seconds / input audio seconds (vad: all audio fed; tts: synthesised speech seconds)",
    }
    first = [run for run in runs if run.repeat == 0]
    sums = scoring.total((run.clip.transcript, run.hypothesis, run.clip.lang) for run in first)
    sentences = sum(_sentences(run.clip) for run in first)
    utterances = sum(len(run.records) for run in first)
    return {
        "utterances": len(records),
        "latency": latency,
        "rtf": rtf,
        "accuracy": {m: round(e.rate, 4) for m, e in sums.items()},
        "reference_sentences": sentences,
        "utterances_per_run": utterances,
        "speculative_hits": sum(run.speculative_hits for run in runs),
        "speculative_misses": sum(run.speculative_misses for run in runs),
        "captions_skipped": sum(run.captions_skipped for run in runs),
        "captions": sum(sum(isinstance(e, Caption) for e in run.events) for run in runs),
        "failures": [f for run in runs for f in run.failures],
        "targets": targets_for(model),
    }


def _sentences(clip: scoring.ManifestClip) -> int:
    from translator.stages.translate import split_sentences  # noqa: PLC0415

    return max(1, len(split_sentences(clip.transcript, clip.lang)))


def targets_for(model: str) -> dict[str, float | None]:
    median, p95 = TARGETS_S2S.get(Path(model).name, (None, None))
    return {
        "speech_to_speech_median": median,
        "speech_to_speech_p95": p95,
        "caption_lag_median": TARGET_CAPTION,
        "peak_rss_mb": TARGET_RSS_MB,
        "load_seconds": TARGET_LOAD,
        "idle_cpu_percent": TARGET_IDLE,
        "wer_points_above_baseline": TARGET_WER_POINTS,
    }


def clip_report(run: ClipRun) -> dict[str, Any]:
    clip = run.clip
    return {
        "file": clip.file,
        "lang": clip.lang,
        "seconds": clip.seconds,
        "repeat": run.repeat,
        "reference": clip.transcript,
        "hypothesis": run.hypothesis,
        "metric": scoring.metric_for(clip.lang),
        "error_rate": round(scoring.error_rate(clip.transcript, run.hypothesis, clip.lang), 4),
        "reference_sentences": _sentences(clip),
        "speculative_hits": run.speculative_hits,
        "speculative_misses": run.speculative_misses,
        "compute_seconds": {
            stage: round(run.log.seconds(stage), 4) for stage in ("vad", "asr", "mt", "tts")
        },
        "speech_out_seconds": round(run.tts_seconds, 3),
        "failures": run.failures,
        "utterances": [
            {
                **dataclasses.asdict(r),
                "speech_to_speech_from_voice_end": from_voice_end(run, r),
                "timeline": utterance_timeline(run, r.utterance_id),
            }
            for r in sorted(run.records, key=lambda r: r.utterance_id)
        ],
    }


# --- the plot -----------------------------------------------------------------------------------


def pick_utterance(runs: Sequence[ClipRun], clip_glob: str | None) -> tuple[ClipRun, Any] | None:
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
            return max(chosen, key=lambda c: (sum(isinstance(e, SpeechChunk) and e.utterance_id == c[1].utterance_id
                                                  for e in c[0].events), -c[0].repeat))
    ordered = sorted(candidates, key=lambda c: c[1].speech_to_speech or 0.0)
    return ordered[(len(ordered) - 1) // 2]


def plot_timeline(path: Path, run: ClipRun, record: Any, title: str) -> None:
    try:
        import matplotlib  # noqa: PLC0415 - optional

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install matplotlib (or leave out --plot)") from None
    tl = utterance_timeline(run, record.utterance_id)
    lanes = ["speech in", "VAD", "ASR", "MT", "TTS", "audio out"]
    y = {name: len(lanes) - i for i, name in enumerate(lanes)}
    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=110)
    s0, s1 = tl["speech"]
    ax.broken_barh([(s0, s1 - s0)], (y["speech in"] - 0.35, 0.7), color="#9e9e9e")
    ax.text(s0, y["speech in"] + 0.42, f"utterance {record.start:.2f}-{record.end:.2f} s of {run.clip.file}", fontsize=8)
    colours = {"SpeechGrowing": "#90caf9", "SpeechPaused": "#1565c0", "UtteranceEnded": "#0d47a1",
               "SpeechStarted": "#bbdefb"}
    for stage, what, a, b in tl["compute"]:
        lane = {"asr": "ASR", "mt": "MT", "tts": "TTS"}.get(stage)
        if lane is None:
            continue
        colour = colours.get(what, "#ef6c00" if stage == "mt" else "#2e7d32")
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
        ax.text(first, y["audio out"] + 0.38, f" first audio out: {first * 1000:.0f} ms", fontsize=8, color="#2e7d32")
    ax.set_yticks([y[name] for name in lanes], lanes)
    ax.set_xlabel("seconds after the last voiced sample reached the pipeline (t_end)")
    ax.set_title(title, fontsize=10)
    ax.set_ylim(0.2, len(lanes) + 0.9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path)
    except OSError as e:
        raise OutputError(f"{path}: cannot write the plot ({e.strerror or e})") from None
    finally:
        plt.close(fig)


# --- output -------------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}"


def print_report(console: Console, report: dict[str, Any], *, quiet: bool) -> None:
    summary = report["summary"]
    base = report.get("baseline") or {}
    if not quiet:
        t = Table(title="per clip", title_justify="left")
        for col in ("clip", "s", "utts", "metric", "stream %", "stock b1 %", "stock b5 %", "s2s med ms"):
            t.add_column(col, overflow="fold", justify="left" if col == "clip" else "right")
        for c in report["clips"]:
            if c["repeat"] != 0:
                continue
            s2s = stats([u["speech_to_speech"] for u in c["utterances"]])["median"]
            b = base.get("clips", {}).get(c["file"], {})
            t.add_row(
                escape(c["file"]), f"{c['seconds']:.1f}", str(len(c["utterances"])), c["metric"], _pct(c["error_rate"]),
                _pct(b.get("beam1", {}).get("error_rate")), _pct(b.get("beam5", {}).get("error_rate")), _ms(s2s),
            )
        console.print(t)
    targets = summary["targets"]
    t = Table(title=f"{report['machine']['asr_model']} · {report['machine']['date']} · {report['machine']['cores']} cores",
              title_justify="left")
    for col in ("figure", "median", "p95", "n", "target"):
        t.add_column(col, justify="left" if col == "figure" else "right")
    lat = summary["latency"]
    for name in ("caption_lag", "asr_final", "mt", "speech_to_speech", "speech_to_speech_from_voice_end"):
        s = lat[name]
        target = ""
        if name == "speech_to_speech" and targets["speech_to_speech_median"] is not None:
            target = f"≤ {targets['speech_to_speech_median'] * 1000:.0f} med"
            if targets["speech_to_speech_p95"] is not None:
                target += f", ≤ {targets['speech_to_speech_p95'] * 1000:.0f} p95"
        if name == "caption_lag":
            target = f"≤ {targets['caption_lag_median'] * 1000:.0f} med"
        t.add_row(f"{name} (ms)", _ms(s["median"]), _ms(s["p95"]), str(s["n"]), target)
    for metric, rate in summary["accuracy"].items():
        stock = " / ".join(
            f"stock b{k[-1]} {_pct(v.get(metric))}" for k, v in sorted(base.get("summary", {}).items())
        )
        t.add_row(f"{metric.upper()} streaming (%)", _pct(rate), "", "", stock or "-")
    rtf = summary["rtf"]
    t.add_row("RTF vad / asr / mt / tts",
              f"{rtf['vad']:.4f} / {rtf['asr']:.3f} / {rtf['mt']:.3f} / {rtf['tts'] if rtf['tts'] is None else round(rtf['tts'], 3)}",
              "", "", f"asr final only {rtf['asr_final_only']:.3f}")
    t.add_row("peak RSS (MB)", f"{report['peak_rss_mb']:.0f}", "", "", f"≤ {targets['peak_rss_mb']:.0f}")
    t.add_row("load + warm-up (s)", f"{report['load_seconds']:.2f}", "", "", f"≤ {targets['load_seconds']:g}")
    idle = report.get("idle") or {}
    t.add_row("idle CPU (% of a core)", "-" if not idle else f"{idle['percent_of_one_core']:.2f}", "", "",
              f"≤ {targets['idle_cpu_percent']:g}")
    t.add_row("speculation hits / misses", f"{summary['speculative_hits']} / {summary['speculative_misses']}", "", "", "")
    t.add_row("utterances / ref. sentences", f"{summary['utterances_per_run']} / {summary['reference_sentences']}", "", "", "")
    console.print(t)
    for failure in summary["failures"]:
        console.print(f"[red]failure: {escape(failure)}[/red]", highlight=False)


# --- the command --------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from translator.assemble import load_engines  # noqa: PLC0415

    if args.repeat < 1:
        raise ConfigError(f"--repeat: must be at least 1, got {args.repeat}")
    if args.block_ms is not None and not 1 <= args.block_ms <= 2000:
        raise ConfigError(f"--block-ms: give 1 to 2000 ms, got {args.block_ms:g}")
    if args.idle < 0:
        raise ConfigError(f"--idle: must be 0 (skip) or more seconds, got {args.idle}")
    config = cliargs.settings(args)
    speech_dir = corpus_speech_dir(args.corpus)
    manifest = scoring.read_manifest(speech_dir)
    if args.json:
        _check_writable(Path(args.json))
    if args.plot:
        _check_writable(Path(args.plot))

    started = time.monotonic()
    engines = load_engines(config, speak=True)
    clips = select_clips(manifest, args.clips, english_only=not engines.recognizer.multilingual)
    missing = [c.file for c in clips if not c.path.is_file()]
    if missing:
        raise InputError(f"{speech_dir / missing[0]}: clip listed in the manifest is missing")
    t0 = time.monotonic()
    engines.translator_stage.prepare(sorted({c.lang for c in clips}))
    load_seconds = engines.load_seconds + (time.monotonic() - t0)
    rss_after_load = current_rss_mb()
    for notice in engines.notices:
        console.print(f"[yellow]{escape(notice.message)}[/yellow]", highlight=False)
    info = machine(config, engines)
    if not args.quiet:
        console.print(
            f"[dim]{len(clips)} clip(s) x {args.repeat}, model {escape(config.asr.model)}, to {config.languages.target}, "
            f"loaded in {load_seconds:.2f} s, load average {info['load_average_at_start']}[/dim]",
            highlight=False,
        )

    runs: list[ClipRun] = []
    for repeat in range(args.repeat):
        for clip in clips:
            run = run_clip(engines, clip, repeat, None if args.block_ms is None else args.block_ms / 1000)
            runs.append(run)
            if not args.quiet:
                s2s = [r.speech_to_speech for r in run.records if r.speech_to_speech is not None]
                console.print(
                    f"[dim]{escape(clip.file)}: {len(run.records)} utterance(s), "
                    f"speech_to_speech {', '.join(_ms(x) for x in s2s) or '-'} ms[/dim]",
                    highlight=False,
                )
    idle = idle_cpu(engines, args.idle) if args.idle > 0 else None
    peak = peak_rss_mb()
    beams = {"both": (1, 5), "greedy": (1,), "none": ()}[args.baseline]
    stock = baseline(engines, clips, beams) if beams else None
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report: dict[str, Any] = {
        "machine": info,
        "config": dataclasses.asdict(config),
        "command": {"clips": [c.file for c in clips], "repeat": args.repeat, "corpus": str(speech_dir),
                    "block_ms": args.block_ms or round(live_block_seconds() * 1000, 3)},
        "load_seconds": round(load_seconds, 3),
        "rss_after_load_mb": rss_after_load,
        "peak_rss_mb": peak,
        "peak_rss_mb_with_baseline": peak_rss_mb(),
        "idle": idle,
        "summary": summarise(runs, clips, config.asr.model),
        "baseline": stock,
        "clips": [clip_report(run) for run in runs],
        "bench_seconds": None,
    }
    report["bench_seconds"] = round(time.monotonic() - started, 1)
    if stock:
        points = {
            metric: round(100 * (rate - stock["summary"]["beam1"].get(metric, rate)), 2)
            for metric, rate in report["summary"]["accuracy"].items()
        }
        report["summary"]["accuracy_points_above_baseline_beam1"] = points
    if args.plot:
        picked = pick_utterance(runs, args.plot_clip)
        if picked is None:
            raise InputError("--plot: no utterance was recognised, nothing to draw")
        run, record = picked
        title = (f"{config.asr.model}: speech_to_speech {_ms(record.speech_to_speech)} ms, "
                 f"asr_final {_ms(record.asr_final)} ms ({run.clip.file}, utterance {record.utterance_id})")
        plot_timeline(Path(args.plot), run, record, title)
        report["plot"] = {"file": args.plot, "clip": run.clip.file, "utterance_id": record.utterance_id}
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        except OSError as e:
            raise OutputError(f"{args.json}: cannot write ({e.strerror})") from None
    print_report(console, report, quiet=args.quiet)
    return 0


def _check_writable(path: Path) -> None:
    """Fail before minutes of benchmarking, not after."""
    if not path.parent.is_dir():
        raise OutputError(f"{path}: the folder {path.parent} does not exist; choose a path in an existing folder")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give a file name")


__all__ = ["add_parser", "cmd_bench", "select_clips", "stats", "TranslatorError"]
