"""``translator bench --wyoming`` on one clip: the real servers started, driven, and reported.

The figures are timings of a loaded machine, so only their presence and their shape are checked:
one row per server and endpoint, a transcript of the clip from each, the end-of-speech figures
counted from where they say.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import CORPUS, REPO, clip

from translator.bench.scoring import wer
from translator.bench.wyoming import ENDPOINTS, HA_ENDPOINT, last_voiced
from translator.events import SAMPLE_RATE

CLIP = "en/LDC93S1.wav"


def test_the_trailing_silence_is_trimmed_to_the_last_voiced_frame() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    hiss = np.random.default_rng(0).normal(0, 1e-4, SAMPLE_RATE).astype(np.float32)  # a quiet room, 60 dB down
    assert last_voiced(np.concatenate([tone, hiss])) == 1.0
    assert last_voiced(np.concatenate([hiss, tone])) == 2.0


def test_one_clip_is_run_through_both_sides_as_home_assistant_would(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "wyoming.json"
    cmd = [sys.executable, "-m", "translator.cli", "bench", "--wyoming", "--corpus", str(CORPUS), "--clips", CLIP]
    r = subprocess.run(cmd + ["--asr", "tiny.en", "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.read_text())
    assert report["setup"]["clips"] == [CLIP] and report["setup"]["asr_model"] == "tiny.en"
    rows = report["summary"]
    assert [(row["server"], row["endpoint"]) for row in rows] == [
        (server, endpoint) for server in ("translator", "peers") for endpoint in ENDPOINTS
    ]
    for row in rows:
        assert row["requests"] == 1
        for figure in ("transcript_after_stop", "transcript_after_speech", "first_speech_after_speech"):
            assert row[figure]["n"] == 1 and row[figure]["median"] is not None, (row["server"], figure)
        assert 0 <= row["wer"] <= 0.3, row
    requests = report["requests"]
    assert len(requests) == 4
    for request in requests:
        assert wer(clip(CLIP).transcript, request["text"]) <= 0.3, request
        assert request["first_speech_after_speech"] > request["transcript_after_speech"]  # speech follows its text
        if request["endpoint"] == "ha":  # audio-stop came 0.7 s of audio after the end of speech
            assert request["transcript_after_speech"] - request["transcript_after_stop"] >= HA_ENDPOINT - 0.01
    assert "translator" in r.stdout and "peers" in r.stdout and "WER" in r.stdout
