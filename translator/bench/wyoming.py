"""``translator bench --wyoming``: this translator's Wyoming services beside Home Assistant's stock ones.

In one run, on loopback, with the same model files: ``translator wyoming`` (asr and tts in one
server) and the peers Home Assistant users run, wyoming-faster-whisper and wyoming-piper. Each is
driven as Home Assistant's Assist pipeline drives it: ``transcribe``, 128 ms ``audio-chunk``\\ s
at real-time pace, ``audio-stop``, the ``transcript``; then, on a new connection, ``synthesize``
of that text and its first ``audio-chunk``. The requests go one at a time, the servers taking
turns clip by clip, so both see the same machine.

Two endpoints: ``audio-stop`` at the last voiced sample (an oracle: the clip's trailing silence
trimmed, :func:`last_voiced`), and Home Assistant's default, 0.7 s of silence later
(``assist_pipeline/vad.py``). Figures, per server and endpoint: the transcript after
``audio-stop`` and after the end of speech, the first synthesised audio after the end of speech
(medians and p95), and the WER against the manifest (the bench's own scoring).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.tts import Synthesize

from translator import cliargs, cores
from translator.audio.files import FileSource
from translator.audio.samples import speech_span
from translator.bench import corpus, scoring
from translator.bench.corpus import ManifestClip
from translator.bench.report import stats
from translator.errors import ConfigError, ModelError, OutputError, TranslatorError
from translator.events import SAMPLE_RATE
from translator.models.locate import resolve_asr, resolve_voice, store_dir, voice_for_language
from translator.text import ms, one_line
from translator.wyoming.pcm import encode

CHUNK_SECONDS = 0.128
"""Audio per ``audio-chunk``, as Home Assistant streams a satellite's microphone (2048 samples)."""
HA_ENDPOINT = 0.7
"""Seconds of silence Home Assistant's speech-to-text step waits for before ``audio-stop``."""
ENDPOINTS = {"oracle": 0.0, "ha": HA_ENDPOINT}
"""``audio-stop`` this long after the last voiced sample."""
READY_TIMEOUT = 300.0
ANSWER_TIMEOUT = 120.0
"""Seconds a server has to start, and to answer one request, before the bench gives up on it."""


def last_voiced(samples: np.ndarray) -> float:
    """Seconds to the end of the clip's last voiced 10 ms frame (within 35 dB of its loudest: the
    trailing silence trimmed, as the bench's talks trim theirs)."""
    return speech_span(samples)[1] / SAMPLE_RATE


@dataclass(frozen=True)
class Services:
    """One side of the comparison: where its asr and its tts listen."""

    name: str
    asr_port: int
    tts_port: int


class Process:
    """A server started by the bench; its stderr kept, to wait for its ready line and to explain a failure."""

    def __init__(self, name: str, cmd: list[str], ready: str, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        self._ready = re.compile(ready)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not any(self._ready.search(line) for line in list(self.lines)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = " / ".join(self.lines[-3:]) or "no output"
                raise TranslatorError(f"bench --wyoming: {self.name} did not start ({tail})")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_services(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[list[Services], dict[str, Any]]:
    """Our server and the two peers, ready, on the same model files and threads; what they run."""
    config = cliargs.settings(args)
    store = store_dir(config.models.dir or None)
    model = resolve_asr(config.asr.model, store=store)
    voice = resolve_voice(config.tts.voice, store=store) if config.tts.voice else voice_for_language("en", store=store)
    if voice is None:
        raise ModelError("bench --wyoming: no English Piper voice is installed for the tts services to share")
    threads = cores.threads(config.asr.threads)
    data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="translator-bench-wyoming-")))
    ours, whisper, piper = _port(), _port(), _port()
    offline = {"HF_HUB_OFFLINE": "1"}
    processes = [
        Process(
            "translator wyoming",
            [sys.executable, "-m", "translator.cli", "wyoming", "--uri", f"tcp://127.0.0.1:{ours}", "--asr", config.asr.model]
            + [f"--set=asr.threads={threads}", f"--set=asr.beam_size={config.asr.beam_size}", f"--set=tts.voice={voice.model}"]
            + [f"--set=asr.compute_type={config.asr.compute_type}"]
            + (["--models-dir", config.models.dir] if config.models.dir else [])
            + (["--config", args.config] if args.config else [])
            + [f"--set={override}" for override in args.overrides],  # e.g. a vad setting to try on our side
            r"ready on tcp://",
        ),
        Process(
            "wyoming-faster-whisper",
            [sys.executable, "-m", "wyoming_faster_whisper", "--uri", f"tcp://127.0.0.1:{whisper}", "--model", str(model)]
            + ["--data-dir", str(data), "--local-files-only", "--compute-type", config.asr.compute_type]
            + ["--cpu-threads", str(threads), "--beam-size", str(config.asr.beam_size), "--language", "en"],
            r"Ready",
            offline,
        ),
        Process(
            "wyoming-piper",
            [sys.executable, "-m", "wyoming_piper", "--uri", f"tcp://127.0.0.1:{piper}", "--voice", str(voice.model)]
            + ["--data-dir", str(data), "--download-dir", str(data), "--local-files-only"],
            r"Ready",
            offline,
        ),
    ]
    for p in processes:
        stack.callback(p.stop)
    for p in processes:
        p.wait_ready()
    setup = {
        "servers": {"translator": "translator wyoming (asr, tts)", "peers": "wyoming-faster-whisper (asr), wyoming-piper (tts)"},
        "asr_model": config.asr.model,
        "asr_model_dir": str(model),
        "compute_type": config.asr.compute_type,
        "beam_size": config.asr.beam_size,
        "threads": threads,
        "voice": str(voice.model),
    }
    return [Services("translator", ours, ours), Services("peers", whisper, piper)], setup


async def _until(client: AsyncTcpClient, wanted: str) -> Event:
    while True:
        event = await asyncio.wait_for(client.read_event(), ANSWER_TIMEOUT)
        if event is None:
            raise TranslatorError(f"bench --wyoming: the server closed the connection before its {wanted}")
        if event.type == "error":
            raise TranslatorError(f"bench --wyoming: the server answered with an error: {event.data.get('text')}")
        if event.type == wanted:
            return event


async def request(services: Services, samples: np.ndarray, voice_end: float, endpoint: float) -> dict[str, Any]:
    """One Home Assistant-style turn: the clip at real-time pace up to ``endpoint`` s after its last
    voiced sample, the transcript, then its synthesis's first audio; times from the end of speech."""
    stop_at = voice_end + endpoint
    audio = np.concatenate([samples, np.zeros(max(0, int(stop_at * SAMPLE_RATE) - len(samples)), np.float32)])
    audio = audio[: int(stop_at * SAMPLE_RATE)]
    step = int(CHUNK_SECONDS * SAMPLE_RATE)
    async with AsyncTcpClient("127.0.0.1", services.asr_port) as asr:
        await asr.write_event(Transcribe(language="en").event())
        await asr.write_event(AudioStart(rate=SAMPLE_RATE, width=2, channels=1).event())
        t0 = time.monotonic()
        for k in range(0, len(audio), step):
            chunk = audio[k : k + step]
            # a microphone has the chunk once its last sample is spoken
            await asyncio.sleep(max(0.0, t0 + (k + len(chunk)) / SAMPLE_RATE - time.monotonic()))
            await asr.write_event(AudioChunk(rate=SAMPLE_RATE, width=2, channels=1, audio=encode(chunk)).event())
        await asr.write_event(AudioStop().event())
        stopped = time.monotonic()
        text = Transcript.from_event(await _until(asr, "transcript")).text.strip()
        transcribed = time.monotonic()
    spoke = None
    if text:
        async with AsyncTcpClient("127.0.0.1", services.tts_port) as tts:
            await tts.write_event(Synthesize(text=text).event())
            await _until(tts, "audio-chunk")
            spoke = time.monotonic()
    speech_end = t0 + voice_end
    return {
        "text": text,
        "transcript_after_stop": round(transcribed - stopped, 4),
        "transcript_after_speech": round(transcribed - speech_end, 4),
        "first_speech_after_speech": None if spoke is None else round(spoke - speech_end, 4),
    }


def _clip_audio(clip: ManifestClip) -> np.ndarray:
    return np.concatenate([block.samples for block in FileSource(clip.path)])


def run(args: argparse.Namespace, console: Console) -> int:
    """The comparison as ``args`` say (``--clips``, ``--repeat``, ``--json``, ``--quiet``, the settings)."""
    if args.talk or args.plot or args.block_ms is not None:
        raise ConfigError("--wyoming: --talk, --plot and --block-ms do not apply (Home Assistant streams 128 ms chunks)")
    if args.repeat < 1:
        raise ConfigError(f"--repeat: must be at least 1, got {args.repeat}")
    manifest = corpus.read_manifest(corpus.speech_dir(args.corpus))
    clips = corpus.select_clips(manifest, args.clips, english_only=True)  # the peer is told --language en
    with contextlib.ExitStack() as stack:
        if not args.quiet:
            console.print("[dim]starting translator wyoming, wyoming-faster-whisper and wyoming-piper[/dim]", highlight=False)
        services, setup = start_services(args, stack)
        audio = {c.file: _clip_audio(c) for c in clips}
        ends = {name: last_voiced(samples) for name, samples in audio.items()}
        for side in services:  # first requests load and warm up what the servers load lazily
            asyncio.run(request(side, audio[clips[0].file], ends[clips[0].file], 0.0))
        records: list[dict[str, Any]] = []
        for repeat in range(args.repeat):
            for clip in clips:
                for endpoint_name, endpoint in ENDPOINTS.items():
                    for side in services:
                        figures = asyncio.run(request(side, audio[clip.file], ends[clip.file], endpoint))
                        records.append(
                            {"server": side.name, "endpoint": endpoint_name, "clip": clip.file, "repeat": repeat}
                            | {"voice_end": round(ends[clip.file], 3)}
                            | figures
                        )
                        if not args.quiet:
                            console.print(
                                f"[dim]{side.name}, {endpoint_name}, {clip.file}: transcript "
                                f"{ms(figures['transcript_after_speech'])}, speech "
                                f"{ms(figures['first_speech_after_speech'])}[/dim]",
                                highlight=False,
                            )
    references = {c.file: c.transcript for c in clips}
    out = {
        "date": datetime.date.today().isoformat(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "setup": setup | {"clips": [c.file for c in clips], "repeat": args.repeat, "chunk_ms": CHUNK_SECONDS * 1000},
        "summary": summarise(records, references, [s.name for s in services]),
        "requests": records,
    }
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        except OSError as e:
            raise OutputError(f"{args.json}: cannot write ({one_line(e.strerror or e)})") from None
    print_table(console, out)
    return 0


FIGURES = ("transcript_after_stop", "transcript_after_speech", "first_speech_after_speech")


def summarise(records: list[dict[str, Any]], references: dict[str, str], servers: list[str]) -> list[dict[str, Any]]:
    """Per server and endpoint: each figure's stats (:func:`~translator.bench.report.stats`) and the WER."""
    rows = []
    for server in servers:
        for endpoint in ENDPOINTS:
            mine = [r for r in records if r["server"] == server and r["endpoint"] == endpoint]
            errors = scoring.total((references[r["clip"]], r["text"], "en") for r in mine)["wer"]
            rows.append(
                {"server": server, "endpoint": endpoint, "requests": len(mine)}
                | {name: stats([r[name] for r in mine]) for name in FIGURES}
                | {"wer": round(errors.rate, 4)}
            )
    return rows


def print_table(console: Console, out: dict[str, Any]) -> None:
    setup = out["setup"]
    table = Table(
        title=f"Wyoming services, {setup['asr_model']} ({setup['compute_type']}, beam {setup['beam_size']}, "
        f"{setup['threads']} threads), {len(setup['clips'])} clip(s) x {setup['repeat']}; ms after the end of speech "
        "unless said, median / p95",
    )
    for column in ("server", "audio-stop at", "transcript after audio-stop", "transcript", "first speech", "WER"):
        table.add_column(column, no_wrap=column == "server")
    for row in out["summary"]:
        cells = [f"{ms(row[name]['median'], '')} / {ms(row[name]['p95'], '')}" for name in FIGURES]
        endpoint = "last voiced sample" if row["endpoint"] == "oracle" else f"+{HA_ENDPOINT:g} s (HA)"
        table.add_row(row["server"], endpoint, *cells, f"{100 * row['wer']:.1f} %")
    console.print(table)
    console.print(f"[dim]{'; '.join(f'{k}: {v}' for k, v in setup['servers'].items())}[/dim]", highlight=False)


__all__ = ["last_voiced", "run"]
