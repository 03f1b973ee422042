"""`translator bench` on real models and two short recordings, and the scoring it relies on.

The bench run checks that every figure is there and sane; it never checks a timing threshold
(the machine is shared: timings are for the README, not for CI).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import SPEECH

from translator.bench import scoring
from translator.bench.runner import select_clips, stats
from translator.cli import main
from translator.errors import InputError

# --- scoring ------------------------------------------------------------------------------------


def test_normalise_lowercases_and_strips_punctuation() -> None:
    assert scoring.normalise("Mr. Quilter's gospel, “quoted” — don’t!") == "mr quilter's gospel quoted don't"
    assert scoring.normalise("  And so, my fellow Americans...  ") == "and so my fellow americans"
    assert scoring.normalise("¿Qué? ¡Sí!") == "qué sí"


def test_wer_ignores_case_and_punctuation() -> None:
    reference = "She had your dark suit in greasy wash water all year."
    assert scoring.wer(reference, "she had your dark suit in greasy wash water all year") == 0.0
    assert scoring.wer(reference, "She had your dog suit in greasy wash water all year!") == pytest.approx(1 / 11)
    assert scoring.wer("one two three", "one two three three") == pytest.approx(1 / 3)
    assert scoring.wer("one two three", "1. 2, 3!") == 0.0 and scoring.error_rate("numéro un", "numéro 1", "fr") == 0.5


def test_cer_for_chinese_removes_the_aishell_word_segmentation() -> None:
    aishell = "甚至  出现  交易  几乎  停滞  的  情况"
    assert scoring.metric_for("zh") == "cer" and scoring.metric_for("ja") == "cer" and scoring.metric_for("ko") == "cer"
    assert scoring.error_rate(aishell, "甚至出现交易几乎停滞的情况。", "zh") == 0.0
    assert scoring.error_rate(aishell, "甚至出现交易几乎停止的情况", "zh") == pytest.approx(1 / 13)
    # the same strings scored as words would be all wrong: the segmentation differs
    assert scoring.wer(aishell, "甚至出现交易几乎停滞的情况") == 1.0
    assert scoring.error_rate("그는 이리저리", "그는이리 저리", "ko") == 0.0


def test_empty_texts_and_sums_over_clips() -> None:
    assert scoring.wer("a b", "") == 1.0 and scoring.wer("", "") == 0.0 and scoring.wer("", "x") == 1.0
    sums = scoring.total([("a b c d", "a b c d", "en"), ("a b", "a x", "en"), ("你好", "你们", "zh")])
    assert sums["wer"].rate == pytest.approx(1 / 6) and sums["cer"].rate == pytest.approx(1 / 2)


def test_derived_copies_are_counted_once() -> None:
    clips = scoring.read_manifest(SPEECH)
    files = [c.file for c in scoring.dedupe_derived(clips)]
    for original, copy in (("en/jfk.flac", "en/jfk.16k.wav"), ("fr/uberi_french.aiff", "fr/uberi_french.16k.wav"),
                           ("zh/uberi_chinese.flac", "zh/uberi_chinese.16k.wav")):
        assert original in files and copy not in files
    assert len(files) == len(clips) - 3
    # a copy whose original is not selected stays
    only_copy = [c for c in clips if c.file == "en/jfk.16k.wav"]
    assert [c.file for c in scoring.dedupe_derived(only_copy)] == ["en/jfk.16k.wav"]


def test_clip_selection() -> None:
    clips = scoring.read_manifest(SPEECH)
    english = select_clips(clips, None, english_only=True)
    assert english and {c.lang for c in english} == {"en"} and "en/jfk.16k.wav" not in [c.file for c in english]
    assert [c.file for c in select_clips(clips, ["en/jfk*"], english_only=False)] == ["en/jfk.flac"]
    with pytest.raises(InputError, match="nothing.wav"):
        select_clips(clips, ["nothing.wav"], english_only=False)
    with pytest.raises(InputError, match="English-only"):
        select_clips(clips, ["de/*"], english_only=True)


def test_stats() -> None:
    s = stats([0.1, 0.2, 0.3, None])
    assert s["n"] == 3 and s["median"] == pytest.approx(0.2) and 0.2 < s["p95"] <= 0.3
    assert stats([])["median"] is None


# --- the command --------------------------------------------------------------------------------


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> tuple[int, dict, Path, str]:
    out = tmp_path_factory.mktemp("bench")
    report, plot = out / "out.json", out / "t.png"
    argv = ["bench", "--clips", "en/LDC93S1.wav", "en/uberi_english.wav", "--asr", "tiny.en", "--repeat", "1",
            "--json", str(report), "--idle", "2"]
    try:
        import matplotlib  # noqa: F401, PLC0415
        argv += ["--plot", str(plot)]
    except ImportError:
        pass
    import io  # noqa: PLC0415
    from contextlib import redirect_stdout  # noqa: PLC0415

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
    assert r["command"]["clips"] == ["en/LDC93S1.wav", "en/uberi_english.wav"]
    assert _positive(r["load_seconds"]) and _positive(r["peak_rss_mb"]) and _positive(r["rss_after_load_mb"])
    assert r["idle"]["utterances"] == 0 and 0 <= r["idle"]["percent_of_one_core"] < 100

    s = r["summary"]
    for name in ("caption_lag", "asr_final", "mt", "speech_to_speech", "speech_to_speech_from_voice_end"):
        figure = s["latency"][name]
        assert figure["n"] >= 1, name
        assert _positive(figure["median"]) and _positive(figure["p95"]) and figure["p95"] >= figure["min"], name
    assert s["latency"]["speech_to_speech"]["median"] >= s["latency"]["asr_final"]["min"]
    assert 0.0 <= s["accuracy"]["wer"] <= 1.0
    for stage in ("vad", "asr", "mt", "tts"):
        assert s["rtf"][stage] is not None and s["rtf"][stage] >= 0, stage
    assert _positive(s["rtf"]["asr"]) and _positive(s["rtf"]["tts"])
    assert s["utterances"] >= 2 and s["reference_sentences"] == 2
    assert s["speculative_hits"] + s["speculative_misses"] >= 1
    assert s["captions"] >= 1 and 0 <= s["captions_skipped"]
    assert r["command"]["block_ms"] == pytest.approx(128)
    assert s["failures"] == []
    assert set(s["targets"]) >= {"speech_to_speech_median", "peak_rss_mb", "idle_cpu_percent"}

    b = r["baseline"]
    for clip in r["command"]["clips"]:
        for beam in ("beam1", "beam5"):
            entry = b["clips"][clip][beam]
            assert 0.0 <= entry["error_rate"] <= 1.0 and _positive(entry["compute_seconds"]) and entry["text"]
    assert "wer" in b["summary"]["beam1"] and "wer" in s["accuracy_points_above_baseline_beam1"]


def test_bench_reports_each_utterance(bench_run) -> None:
    _, r, _, _ = bench_run
    assert [c["file"] for c in r["clips"]] == ["en/LDC93S1.wav", "en/uberi_english.wav"]
    for c in r["clips"]:
        assert c["metric"] == "wer" and 0.0 <= c["error_rate"] <= 2.0 and c["hypothesis"]
        assert c["compute_seconds"]["asr"] > 0 and c["speech_out_seconds"] > 0
        assert c["utterances"], c["file"]
        for u in c["utterances"]:
            assert u["route"] == "same" and u["voice"] == "en_US-joe-medium" and u["source_text"]
            for key in ("asr_final", "mt", "speech_to_speech"):
                assert _positive(u[key]), (c["file"], key)
            assert u["speech_to_speech"] >= u["mt"] >= u["asr_final"] - 1e-3
            # counted from the spoken end of speech, the wait for the 128 ms block is added
            assert u["speech_to_speech"] - 0.01 <= u["speech_to_speech_from_voice_end"] <= u["speech_to_speech"] + 0.2
            assert all(_positive(x) for x in u["caption_lags"])
            tl = u["timeline"]
            assert tl["speech"][0] < tl["speech"][1] <= 0.3 and tl["endpoint"] > 0
            assert tl["audio_out"] and tl["audio_out"][0][0] == pytest.approx(u["speech_to_speech"], abs=0.02)
            assert {stage for stage, *_ in tl["compute"]} >= {"asr", "tts"}
    assert r["clips"][0]["error_rate"] <= 0.3  # LDC93S1 is clean speech


def test_bench_plot(bench_run) -> None:
    pytest.importorskip("matplotlib")
    _, r, plot, _ = bench_run
    assert plot.is_file() and plot.stat().st_size > 10_000
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert r["plot"]["clip"] in r["command"]["clips"]


def test_bench_user_errors(tmp_path: Path, capsys) -> None:
    code = main(["bench", "--corpus", str(tmp_path), "--asr", "tiny.en"])
    err = capsys.readouterr().err
    assert code == 2 and "manifest.tsv" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code = main(["bench", "--repeat", "0"])
    assert code == 78 and "--repeat" in capsys.readouterr().err
    code = main(["bench", "--json", str(tmp_path / "no" / "out.json")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


# --- the latency machinery the bench measures: speculation through MT and TTS -------------------


class _FakeRecognizer:
    """Stands in for WhisperRecognizer: the audio's length as text."""

    def __init__(self) -> None:
        self.calls = 0

    def recognize(self, audio, *, language=None, task=None, prompt=None, retry=True):  # noqa: ANN001, ANN201, ARG002
        from translator.stages.asr import Recognition  # noqa: PLC0415

        self.calls += 1
        return Recognition(f"len {len(audio)}. second sentence. third", "en", 1.0, "transcribe", -0.1, 0.0, 1.0, 0.001, 3, 8.0)


class _ScriptedSegmenter:
    """Emits a scripted list of segment events, one per block, then nothing."""

    def __init__(self, script) -> None:  # noqa: ANN001
        self.script = list(script)

    def feed(self, block):  # noqa: ANN001, ANN201
        if self.script:
            item = self.script.pop(0)
            if item is not None:
                yield item(block)

    def flush(self, wall=None):  # noqa: ANN001, ANN201, ARG002
        return iter(())


class _SlowTts:
    """A sentence every 30 ms, like Piper; counts the sentences it synthesised."""

    def __init__(self) -> None:
        self.sentences = 0

    def feed(self, t):  # noqa: ANN001, ANN201
        import time as _time  # noqa: PLC0415

        import numpy as np  # noqa: PLC0415

        from translator.events import SpeechChunk, SpeechDone  # noqa: PLC0415

        for i, sentence in enumerate(t.text.split(". ")):
            _time.sleep(0.03)
            self.sentences += 1
            yield SpeechChunk(t.utterance_id, np.ones(10, np.float32), 16000, i, sentence, t.t_end_wall, _time.monotonic(), "fake")
        yield SpeechDone(t.utterance_id, t.t_end_wall, _time.monotonic(), "fake")


def _speculation_run(script):  # noqa: ANN001, ANN202
    import time as _time  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from translator.stages.asr import RecognizerStage  # noqa: PLC0415
    from translator.audio.sinks import MemorySink  # noqa: PLC0415
    from translator.events import AudioBlock, SpeechGrowing, SpeechPaused, Transcript, Translation, UtteranceEnded  # noqa: PLC0415
    from translator.pipeline import Pipeline, StageSpec  # noqa: PLC0415

    class _Mt:
        def feed(self, t):  # noqa: ANN001, ANN202
            yield Translation(t.utterance_id, t.text, "en", t.text, "en", "same", t.start, t.t_end, t.t_end_wall, _time.monotonic(), 0.0)

    recognizer, tts, sink = _FakeRecognizer(), _SlowTts(), MemorySink()
    stage = RecognizerStage(recognizer, provisional=True)
    pipeline = Pipeline(_ScriptedSegmenter(script), [
        StageSpec("asr", stage, (SpeechPaused, UtteranceEnded, SpeechGrowing)),
        StageSpec("mt", _Mt(), (Transcript,)),
        StageSpec("tts", tts, (Translation,)),
    ], sink=sink)

    def blocks():  # noqa: ANN202
        for i in range(len(script) + 2):
            _time.sleep(0.15)  # the endpoint comes well after the speculation has finished
            yield AudioBlock(np.zeros(160, np.float32), i * 0.01, _time.monotonic())

    events = list(pipeline.run(blocks()))
    return events, stage, tts, sink


def test_speculative_translation_and_speech_are_held_until_the_endpoint() -> None:
    import numpy as np  # noqa: PLC0415

    from translator.events import SpeechChunk, SpeechPaused, Transcript, Translation, UtteranceEnded  # noqa: PLC0415
    from translator.transcript import UtteranceCollector  # noqa: PLC0415

    audio = np.zeros(1600, np.float32)
    t_end = {}
    script = [
        lambda b: SpeechPaused(1, audio, 0.0, 0.1, t_end.setdefault(1, b.wall), b.wall),
        None,
        lambda b: UtteranceEnded(1, audio, 0.0, 0.1, t_end[1], b.wall),
    ]
    events, stage, tts, sink = _speculation_run(script)
    kinds = [type(e).__name__ for e in events]
    ended = next(e for e in events if isinstance(e, UtteranceEnded))
    # nothing of the speculation came out before the endpoint, though it was all computed by then
    assert kinds.index("UtteranceEnded") < kinds.index("Transcript") < kinds.index("Translation") < kinds.index("SpeechChunk")
    assert tts.sentences == 3 and (stage.speculative_hits, stage.speculative_misses) == (1, 0)
    first = next(e for e in events if isinstance(e, SpeechChunk))
    assert ended.wall <= first.wall < ended.wall + 0.1  # released at once: no synthesis left to wait for
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
    import numpy as np  # noqa: PLC0415

    from translator.events import SpeechChunk, SpeechGrowing, SpeechPaused, Transcript, UtteranceEnded  # noqa: PLC0415

    short, longer = np.zeros(1600, np.float32), np.zeros(3200, np.float32)
    script = [
        lambda b: SpeechPaused(1, short, 0.0, 0.1, b.wall, b.wall),
        lambda b: SpeechGrowing(1, longer, 0.0, 0.2, b.wall),
        lambda b: SpeechPaused(1, longer, 0.0, 0.2, b.wall, b.wall),
        None,
        lambda b: UtteranceEnded(1, longer, 0.0, 0.2, b.wall, b.wall),
    ]
    events, stage, _tts, sink = _speculation_run(script)
    assert (stage.speculative_hits, stage.speculative_misses) == (1, 1)
    texts = [e.text for e in events if isinstance(e, Transcript)]
    assert texts == ["len 3200. second sentence. third"]  # the first speculation never shows
    assert {e.text for e in events if isinstance(e, SpeechChunk)} == {"len 3200", "second sentence", "third"}
    assert len(sink.chunks) == 3


def test_stale_caption_snapshots_are_skipped_not_queued() -> None:
    """A recognizer slower than the snapshots skips those already superseded by newer audio."""
    import time as _time  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from translator.events import AudioBlock, SpeechGrowing, Transcript, UtteranceEnded  # noqa: PLC0415
    from translator.pipeline import Pipeline, StageSpec  # noqa: PLC0415

    seen: list[str] = []

    class SlowAsr:
        def feed(self, e):  # noqa: ANN001, ANN202
            seen.append(type(e).__name__)
            _time.sleep(0.05)
            if isinstance(e, UtteranceEnded):
                yield Transcript(1, "done", "en", 1.0, "transcribe", 0.0, 1.0, e.t_end_wall, _time.monotonic(), 0.05)

    audio = np.zeros(160, np.float32)
    script = [(lambda b, i=i: SpeechGrowing(1, audio, 0.0, 0.1 * i, b.wall)) for i in range(1, 20)]
    script.append(lambda b: UtteranceEnded(1, audio, 0.0, 2.0, b.wall, b.wall))
    pipeline = Pipeline(_ScriptedSegmenter(script), [
        StageSpec("asr", SlowAsr(), (SpeechGrowing, UtteranceEnded), superseded=(SpeechGrowing,)),
    ])
    blocks = (AudioBlock(audio, i * 0.01, _time.monotonic()) for i in range(len(script)))
    events = list(pipeline.run(blocks))
    assert seen[-1] == "UtteranceEnded" and [e.text for e in events if isinstance(e, Transcript)] == ["done"]
    assert seen.count("SpeechGrowing") < 19 and pipeline.superseded == 19 - seen.count("SpeechGrowing")
