"""`translator bench` on real models and two short recordings, and the speculation it measures.

The bench run checks that every figure is there and consistent with the others; it never checks a
timing threshold (the machine is shared: timings are for the README, not for CI). Scoring and the
corpus manifest are tested in test_scoring.py.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import time
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from conftest import SPEECH, skip_or_fail

from translator.audio.sinks import MemorySink
from translator.bench import scoring
from translator.bench.report import stats
from translator.bench.spans import SpanLog
from translator.cli import main
from translator.events import (
    AudioBlock,
    SpeechChunk,
    SpeechDone,
    SpeechGrowing,
    SpeechPaused,
    Transcript,
    Translation,
    UtteranceEnded,
)
from translator.pipeline import Pipeline, StageSpec
from translator.stages.asr import Recognition, RecognizerStage
from translator.transcript import UtteranceCollector


def test_stats() -> None:
    s = stats([0.1, 0.2, 0.3, None])
    assert s["n"] == 3 and s["median"] == pytest.approx(0.2) and 0.2 < s["p95"] <= 0.3
    assert s["min"] == pytest.approx(0.1) and s["max"] == pytest.approx(0.3) and s["mean"] == pytest.approx(0.2)
    assert stats([])["median"] is None and stats([None])["n"] == 0


# --- the command --------------------------------------------------------------------------------


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _has_matplotlib() -> bool:
    """matplotlib comes with the bench extra; without it the plot is tested only outside CI."""
    return importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> tuple[int, dict, Path, str]:
    out = tmp_path_factory.mktemp("bench")
    report, plot = out / "out.json", out / "t.png"
    argv = [
        "bench",
        "--corpus",
        str(corpus),
        "--clips",
        "en/LDC93S1.wav",
        "en/uberi_english.wav",
        "--asr",
        "tiny.en",
        "--repeat",
        "1",
        "--json",
        str(report),
        "--idle",
        "2",
    ]
    if _has_matplotlib():
        argv += ["--plot", str(plot)]
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(argv)
    return code, json.loads(report.read_text(encoding="utf-8")), plot, buf.getvalue()


def test_bench_report_has_every_figure(bench_run) -> None:
    code, r, _, printed = bench_run
    assert code == 0
    assert "speech_to_speech" in printed and "peak RSS" in printed
    m = r["machine"]
    assert m["cores"] >= 1 and m["cpu_model"] and m["date"] and m["asr_model"] == "tiny.en"
    assert m["threads"]["asr"] >= 1 and m["versions"]["faster-whisper"]
    # the summary's title says the cores a CPU quota leaves (the edge budgets), when fewer
    assert f"{m['cores']} cores" in printed
    assert (f"({m['usable_cores']:g} usable)" in printed) == (m["usable_cores"] != m["cores"])
    assert r["command"]["clips"] == ["en/LDC93S1.wav", "en/uberi_english.wav"]
    assert r["command"]["corpus"] == str(SPEECH)
    assert _positive(r["load_seconds"]) and _positive(r["peak_rss_mb"]) and _positive(r["rss_after_load_mb"])
    assert r["rss_after_load_mb"] <= r["peak_rss_mb"] <= r["peak_rss_mb_with_baseline"]
    assert r["idle"]["utterances"] == 0 and 0 < r["idle"]["percent_of_one_core"] < 100

    s = r["summary"]
    for name in ("caption_lag", "asr_final", "mt", "speech_to_speech", "speech_to_speech_from_voice_end"):
        figure = s["latency"][name]
        assert figure["n"] >= 1, name
        assert _positive(figure["median"]) and _positive(figure["p95"]) and figure["p95"] >= figure["min"], name
    assert s["latency"]["speech_to_speech"]["median"] >= s["latency"]["asr_final"]["min"]
    assert s["latency"]["speech_to_speech"]["n"] == s["utterances"]
    # accuracy: the first run of each clip, errors summed over the clips (not a mean of rates)
    summed = scoring.total((c["reference"], c["hypothesis"], c["lang"]) for c in r["clips"] if c["repeat"] == 0)
    assert set(s["accuracy"]) == {"wer"} and s["accuracy"]["wer"] == pytest.approx(summed["wer"].rate, abs=1e-4)

    # each real-time factor is its stage's compute over the audio it handled, summed over the clips
    clips = r["clips"]
    audio = sum(c["seconds"] for c in clips)
    for stage in ("asr", "mt"):
        assert s["rtf"][stage] == pytest.approx(sum(c["compute_seconds"][stage] for c in clips) / audio, abs=2e-4), stage
    spoken = sum(c["speech_out_seconds"] for c in clips)
    assert s["rtf"]["tts"] == pytest.approx(sum(c["compute_seconds"]["tts"] for c in clips) / spoken, rel=0.01, abs=2e-4)
    assert _positive(s["rtf"]["vad"]) and _positive(s["rtf"]["asr"]) and _positive(s["rtf"]["tts"])
    # each of the three is rounded to 4 decimals: the two parts may exceed the whole by 1.5e-4
    assert s["rtf"]["asr_final_only"] + s["rtf"]["asr_captions_only"] <= s["rtf"]["asr"] + 2e-4
    assert _positive(s["rtf"]["asr_final_only"]) and _positive(s["rtf"]["asr_captions_only"])

    assert s["utterances"] >= 2 and s["reference_sentences"] == 2
    assert s["speculative_hits"] + s["speculative_misses"] >= 1
    # every caption snapshot is skipped as superseded, or given one turn by the scheduler; only a
    # decoded one may become a caption
    turns = s["caption_turns"]
    assert sum(turns.values()) == s["caption_snapshots"] and s["captions_skipped"] == s["caption_snapshots"] - turns["decoded"]
    assert 1 <= s["captions"] <= turns["decoded"]
    wait = s["latency"]["final_wait"]
    assert wait["n"] >= 2 and wait["min"] >= 0 and wait["max"] < s["latency"]["asr_final"]["max"]
    assert r["talk"] is None
    assert r["command"]["block_ms"] == pytest.approx(128)
    assert s["failures"] == []
    assert set(s["targets"]) >= {"speech_to_speech_median", "peak_rss_mb", "idle_cpu_percent"}

    b = r["baseline"]
    references = {c["file"]: c["reference"] for c in r["clips"]}
    for clip in r["command"]["clips"]:
        for beam in ("beam1", "beam5"):
            entry = b["clips"][clip][beam]
            assert _positive(entry["compute_seconds"]) and entry["text"] and entry["language"] == "en"
            assert entry["error_rate"] == pytest.approx(scoring.error_rate(references[clip], entry["text"], "en"), abs=1e-4)
    # one language here, so its figures are the overall ones; tiny.en detects no language
    en = s["per_language"]["en"]
    assert (en["metric"], en["clips"], en["utterances"]) == ("wer", 2, s["utterances_per_run"])
    assert en["streaming"] == s["accuracy"]["wer"]
    assert (en["beam1"], en["beam5"]) == (b["summary"]["beam1"]["wer"], b["summary"]["beam5"]["wer"])
    assert s["language_id"]["pinned"] == "en (model is English-only)" and s["language_id"]["streaming"] is None
    assert "per language" in printed and "en (model is English-only)" in printed
    points = s["accuracy_points_above_baseline_beam1"]["wer"]
    assert points == pytest.approx(100 * (s["accuracy"]["wer"] - b["summary"]["beam1"]["wer"]), abs=0.01)


def test_bench_reports_each_utterance(bench_run) -> None:
    _, r, _, _ = bench_run
    assert [c["file"] for c in r["clips"]] == ["en/LDC93S1.wav", "en/uberi_english.wav"]
    for c in r["clips"]:
        assert c["metric"] == "wer" and c["hypothesis"]
        assert c["error_rate"] == pytest.approx(scoring.error_rate(c["reference"], c["hypothesis"], "en"), abs=1e-4)
        assert c["compute_seconds"]["asr"] > 0 and c["compute_seconds"]["vad"] > 0 and c["speech_out_seconds"] > 0
        assert c["utterances"], c["file"]
        for u in c["utterances"]:
            assert u["route"] == "same" and u["voice"] == "en_US-joe-medium" and u["source_text"]
            for key in ("asr_final", "mt", "speech_to_speech"):
                assert _positive(u[key]), (c["file"], key)
            assert u["speech_to_speech"] >= u["mt"] >= u["asr_final"] - 1e-3
            assert all(_positive(x) for x in u["caption_lags"])
            tl = u["timeline"]
            # voice, then its endpoint; counted from the spoken end of speech (the audio clock),
            # the wait for the block holding it to fill is added
            assert tl["speech"][0] < tl["speech"][1] < tl["endpoint"] and tl["endpoint"] > 0
            assert u["speech_to_speech_from_voice_end"] == pytest.approx(u["speech_to_speech"] - tl["speech"][1], abs=2e-4)
            assert tl["audio_out"] and tl["audio_out"][0][0] == pytest.approx(u["speech_to_speech"], abs=0.02)
            compute = tl["compute"]
            assert {part for part, *_ in compute} >= {"asr", "mt", "tts", "sink"}
            assert all(start <= end for _, _, start, end in compute)
            # the spans come from the pipeline's observer: the final decode before its translation,
            # the translation before its synthesis, the synthesis before the speech is written
            first = {part: min(start for p, _, start, _ in compute if p == part) for part in ("mt", "tts", "sink")}
            final = min(start for p, what, start, _ in compute if p == "asr" and what in ("SpeechPaused", "UtteranceEnded"))
            assert final < first["mt"] < first["tts"] < first["sink"]
    assert r["clips"][0]["error_rate"] <= 0.3  # LDC93S1 is clean speech


def test_bench_plot(bench_run) -> None:
    if not _has_matplotlib():
        skip_or_fail("matplotlib is missing: pip install -e '.[bench]'")
    _, r, plot, _ = bench_run
    assert plot.is_file() and plot.stat().st_size > 10_000
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert r["plot"]["clip"] in r["command"]["clips"]


def test_bench_talk_keeps_up(tmp_path: Path, corpus: Path) -> None:
    """A talk of a clip said again and again, with pauses, runs as one clip: every utterance
    ended is finalised, and the figures of its first and last quarter are there."""
    report = tmp_path / "talk.json"
    argv = ["bench", "--corpus", str(corpus), "--clips", "en/LDC93S1.wav", "--asr", "tiny.en", "--talk", "12"]
    with redirect_stdout(io.StringIO()) as printed:
        code = main([*argv, "--idle", "0", "--baseline", "none", "--json", str(report)])
    assert code == 0 and "talk 13 s:" in printed.getvalue() and "finalised" in printed.getvalue()
    r = json.loads(report.read_text(encoding="utf-8"))
    talk = r["talk"]
    # 0.5 s of lead silence, then three times LDC cut to its speech (2.8 s) and a 1.5 s pause
    assert r["command"]["clips"] == ["talk of 3 clips (13 s)"] and talk["seconds"] == pytest.approx(13.2, abs=0.1)
    assert talk["utterances_ended"] >= 3 and talk["utterances_finalised"] == talk["utterances_ended"]
    assert _positive(talk["first_quarter"]["speech_to_speech_median"]) and _positive(talk["last_quarter"]["asr_final_median"])
    assert r["clips"][0]["hypothesis"].lower().count("greasy") >= 3


def test_bench_user_errors(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    def one_line_error(*needles: str) -> None:
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert all(n in err for n in needles), err

    monkeypatch.delenv("TRANSLATOR_CORPUS", raising=False)
    assert main(["bench", "--asr", "tiny.en"]) == 2
    one_line_error("--corpus", "TRANSLATOR_CORPUS")
    assert main(["bench", "--corpus", str(tmp_path), "--asr", "tiny.en"]) == 2
    one_line_error("manifest.tsv", str(tmp_path))
    monkeypatch.setenv("TRANSLATOR_CORPUS", str(tmp_path))
    assert main(["bench", "--asr", "tiny.en"]) == 2
    one_line_error("$TRANSLATOR_CORPUS", "manifest.tsv")
    assert main(["bench", "--repeat", "0"]) == 78
    one_line_error("--repeat")
    assert main(["bench", "--talk", "-5"]) == 78
    one_line_error("--talk")
    assert (
        main(["bench", "--corpus", str(SPEECH.parent), "--clips", "en/LDC93S1.wav", "de/*", "--asr", "base", "--talk", "9"]) == 2
    )
    one_line_error("--talk: the clips are in 2 languages")
    assert main(["bench", "--corpus", str(SPEECH.parent), "--json", str(tmp_path / "no" / "out.json")]) == 2
    one_line_error("does not exist")


# --- the latency machinery the bench measures: speculation through MT and TTS -------------------


class _FakeRecognizer:
    """Stands in for WhisperRecognizer: the audio's length as text."""

    def __init__(self) -> None:
        self.calls = 0

    def recognize(
        self,
        audio,
        settings=None,
        *,
        language=None,
        allowed=None,
        task=None,
        prompt=None,
        retry=True,
        prior=None,
        context=None,
        abandon=None,
    ):
        self.calls += 1
        return Recognition(f"len {len(audio)}. second sentence. third", "en", 1.0, "transcribe", -0.1, 0.0, 1.0, 0.001, 3, 8.0)


class _ScriptedSegmenter:
    """Emits a scripted list of segment events, one per block, then nothing."""

    def __init__(self, script) -> None:
        self.script = list(script)

    def feed(self, block):
        if self.script:
            item = self.script.pop(0)
            if item is not None:
                yield item(block)

    def flush(self, wall=None):
        return iter(())


class _SlowTts:
    """A sentence every 30 ms, like Piper; counts the sentences it synthesised."""

    def __init__(self) -> None:
        self.sentences = 0

    def feed(self, t):
        for i, sentence in enumerate(t.text.split(". ")):
            time.sleep(0.03)
            self.sentences += 1
            yield SpeechChunk(t.utterance_id, np.ones(10, np.float32), 16000, i, sentence, t.t_end_wall, time.monotonic(), "fake")
        yield SpeechDone(t.utterance_id, t.t_end_wall, time.monotonic(), "fake")


def _speculation_run(script):
    class _Mt:
        def feed(self, t):
            yield Translation(
                t.utterance_id, t.text, "en", t.text, "en", "same", t.start, t.t_end, t.t_end_wall, time.monotonic(), 0.0
            )

    recognizer, tts, sink, log = _FakeRecognizer(), _SlowTts(), MemorySink(), SpanLog()
    stage = RecognizerStage(recognizer, provisional=True)
    pipeline = Pipeline(
        _ScriptedSegmenter(script),
        [
            StageSpec("asr", stage, (SpeechPaused, UtteranceEnded, SpeechGrowing)),
            StageSpec("mt", _Mt(), (Transcript,)),
            StageSpec("tts", tts, (Translation,)),
        ],
        sink=sink,
        observers=[log],
    )

    def blocks():
        for i in range(len(script) + 2):
            time.sleep(0.15)  # the endpoint comes well after the speculation has finished
            yield AudioBlock(np.zeros(160, np.float32), i * 0.01, time.monotonic())

    events = list(pipeline.run(blocks()))
    return events, stage, tts, sink, log


def test_speculative_translation_and_speech_are_held_until_the_endpoint() -> None:
    audio = np.zeros(1600, np.float32)
    t_end = {}
    script = [
        lambda b: SpeechPaused(1, audio, 0.0, 0.1, t_end.setdefault(1, b.wall), b.wall),
        None,
        lambda b: UtteranceEnded(1, audio, 0.0, 0.1, t_end[1], b.wall),
    ]
    events, stage, tts, sink, log = _speculation_run(script)
    kinds = [type(e).__name__ for e in events]
    ended = next(e for e in events if isinstance(e, UtteranceEnded))
    # nothing of the speculation came out before the endpoint, though it was all computed by then
    assert kinds.index("UtteranceEnded") < kinds.index("Transcript") < kinds.index("Translation") < kinds.index("SpeechChunk")
    assert tts.sentences == 3 and (stage.speculative_hits, stage.speculative_misses) == (1, 0)
    first = next(e for e in events if isinstance(e, SpeechChunk))
    # all three sentences were synthesised before the endpoint, and released only after it: the
    # speech had nothing left to wait for
    synthesis = [span for span in log.spans if span.part == "tts"]
    assert max(span.end for span in synthesis) <= ended.wall <= first.wall
    assert len([e for e in events if isinstance(e, Transcript)]) == 1 and len(sink.chunks) == 3
    records = []
    collector = UtteranceCollector()
    for e in events:
        if (r := collector.feed(e)) is not None:
            records.append(r)
    (record,) = records
    assert record.speech_to_speech >= record.mt >= record.asr_final >= ended.wall - t_end[1] - 1e-6
    assert [e.text for e in events if isinstance(e, Translation)] == ["len 1600. second sentence. third"]


def test_speculation_is_dropped_when_speech_resumes() -> None:
    short, longer = np.zeros(1600, np.float32), np.zeros(3200, np.float32)
    script = [
        lambda b: SpeechPaused(1, short, 0.0, 0.1, b.wall, b.wall),
        lambda b: SpeechGrowing(1, longer, 0.0, 0.2, b.wall),
        lambda b: SpeechPaused(1, longer, 0.0, 0.2, b.wall, b.wall),
        None,
        lambda b: UtteranceEnded(1, longer, 0.0, 0.2, b.wall, b.wall),
    ]
    events, stage, _tts, sink, _log = _speculation_run(script)
    assert (stage.speculative_hits, stage.speculative_misses) == (1, 1)
    texts = [e.text for e in events if isinstance(e, Transcript)]
    assert texts == ["len 3200. second sentence. third"]  # the first speculation never shows
    assert {e.text for e in events if isinstance(e, SpeechChunk)} == {"len 3200", "second sentence", "third"}
    assert len(sink.chunks) == 3


def test_stale_caption_snapshots_are_skipped_not_queued() -> None:
    """A recognizer slower than the snapshots skips those already superseded by newer audio."""
    seen: list[str] = []

    class SlowAsr:
        def feed(self, e):
            seen.append(type(e).__name__)
            time.sleep(0.05)
            if isinstance(e, UtteranceEnded):
                yield Transcript(1, "done", "en", 1.0, "transcribe", 0.0, 1.0, e.t_end_wall, time.monotonic(), 0.05)

    audio = np.zeros(160, np.float32)
    script = [(lambda b, i=i: SpeechGrowing(1, audio, 0.0, 0.1 * i, b.wall)) for i in range(1, 20)]
    script.append(lambda b: UtteranceEnded(1, audio, 0.0, 2.0, b.wall, b.wall))
    pipeline = Pipeline(
        _ScriptedSegmenter(script),
        [
            StageSpec("asr", SlowAsr(), (SpeechGrowing, UtteranceEnded), superseded=(SpeechGrowing,)),
        ],
    )
    blocks = (AudioBlock(audio, i * 0.01, time.monotonic()) for i in range(len(script)))
    events = list(pipeline.run(blocks))
    assert seen[-1] == "UtteranceEnded" and [e.text for e in events if isinstance(e, Transcript)] == ["done"]
    assert seen.count("SpeechGrowing") < 19 and pipeline.superseded == 19 - seen.count("SpeechGrowing")
