"""`translator translate` end to end: real models, real recordings, real files out, and bad input.

Each run goes through the real CLI entry point (in-process, so models load once per run only), the
real pipeline threads and the bundled models.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import wave

import numpy as np
import pytest
import soundfile as sf
from conftest import SPANISH_NUMBER, SPEECH, clip, espeak, small_disk
from mtmodels import build_marian

from translator.bench.scoring import error_rate, wer
from translator.cli import main
from translator.models.locate import resolve_asr
from translator.stages.langcheck import wrong_language

DE = SPEECH / "de" / "picovoice_leopard_test_de.wav"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_german_to_english_speech_subtitles_and_transcript(tmp_path, capsys):
    out_wav, srt, log = tmp_path / "de.en.wav", tmp_path / "de.en.srt", tmp_path / "de.en.jsonl"
    code, out, err = run(capsys, "translate", str(DE), "--to", "en", "-o", str(out_wav), "--srt", str(srt), "--jsonl", str(log))
    assert code == 0, err
    records = jsonl(log)
    assert len(records) == 1
    r = records[0]
    assert r["language"] == "de" and r["target_language"] == "en" and r["route"] == "whisper-translate"
    assert any(w in r["text"].lower() for w in ("room", "hall", "portal"))
    assert r["asr_final"] > 0 and r["speech_to_speech"] > 0 and r["voice"] == "en_US-joe-medium"
    assert 0.0 <= r["start"] < r["end"] <= 5.3
    # printed: language, source text, translation, latencies
    assert "de → en" in out and r["text"] in out and "asr" in out and "ms" in out
    # speech: a valid WAV, non-silent, of plausible length for one sentence
    with wave.open(str(out_wav)) as w:
        seconds = w.getnframes() / w.getframerate()
    audio, _ = sf.read(out_wav)
    assert 1.0 < seconds < 10.0 and np.sqrt(np.mean(audio**2)) > 0.01
    assert r["speech_seconds"] == pytest.approx(seconds, abs=0.05)
    # subtitles: one cue, timed on the source audio
    cue = srt.read_text(encoding="utf-8").strip().splitlines()
    assert cue[0] == "1" and re.fullmatch(r"00:00:0\d,\d{3} --> 00:00:0\d,\d{3}", cue[1]) and cue[2] == r["text"]


def test_spanish_that_whisper_answers_in_spanish_is_never_presented_as_english(tmp_path, capsys):
    """base's greedy translate task answers this clip in Spanish (tests/test_asr.py checks that):
    what is printed, spoken, subtitled and logged is English, or the Spanish marked not translated."""
    spoken = espeak(tmp_path / "es.wav", "es", SPANISH_NUMBER)
    out_wav, srt, log = tmp_path / "o.wav", tmp_path / "o.srt", tmp_path / "o.jsonl"
    argv = ["translate", str(spoken), "--from", "es", "--to", "en", "--asr", "base", "-o", str(out_wav), "--srt", str(srt)]
    code, out, err = run(capsys, *argv, "--jsonl", str(log))
    assert code == 0, err
    (r,) = jsonl(log)
    assert (r["language"], r["language_probability"], r["route"]) == ("es", 1.0, "whisper-translate")
    cue = srt.read_text(encoding="utf-8").strip().splitlines()[2]
    if r["translated"]:
        assert r["text"] and not wrong_language(r["text"], expected="en", source="es"), r
        assert r["speech_seconds"] > 0 and cue == r["text"] and f"→ {r['text']}" in out
    else:
        assert r["text"] == "" and r["voice"] == "" and r["speech_seconds"] == 0, r
        assert cue == f"[not translated] {r['source_text']}" and "→ not translated" in out


def test_languages_flag_restricts_detection_and_the_transcript_gives_its_probability(tmp_path, capsys):
    """Heard alone, the last of this clip's three pieces is detected as Portuguese (tests/test_language_id.py)."""
    c = clip("es/picovoice_leopard_test_es.wav")
    log = tmp_path / "t.jsonl"
    code, _, err = run(capsys, "translate", str(c.path), "--languages", "es,en", "--to", "en", "--jsonl", str(log))
    assert code == 0, err
    records = jsonl(log)
    assert len(records) == 3 and all(r["language"] == "es" for r in records), records
    assert all(0.5 < r["language_probability"] <= 1.0 for r in records), records
    assert error_rate(c.transcript, " ".join(r["source_text"] for r in records), "es") <= 0.1
    code, _, err = run(capsys, "translate", str(c.path), "--languages", "es,xx")
    assert code == 2
    one_line_error(err, "languages.allowed", "'xx'")


def test_english_recording_in_english_is_transcribed_not_translated(tmp_path, capsys):
    c = clip("en/LDC93S1.wav")
    log = tmp_path / "t.jsonl"
    code, out, err = run(capsys, "translate", str(c.path), "--to", "en", "--asr", "tiny.en", "--jsonl", str(log))
    assert code == 0, err
    (r,) = jsonl(log)
    assert r["route"] == "same" and r["text"] == r["source_text"]
    assert wer(c.transcript, r["text"]) <= 0.25


def test_resampled_stereo_flac_and_several_utterances(tmp_path, capsys):
    """jfk.flac is 44.1 kHz stereo 24-bit; with a short endpoint its pauses split it."""
    c = clip("en/jfk.flac")
    log = tmp_path / "t.jsonl"
    code, _, err = run(
        capsys,
        "translate",
        str(c.path),
        "--to",
        "en",
        "--asr",
        "tiny.en",
        "--jsonl",
        str(log),
        "--set",
        "vad.endpoint=0.3",
        "--set",
        "vad.pause=0.2",
    )
    assert code == 0, err
    records = jsonl(log)
    assert len(records) >= 2
    assert [r["utterance_id"] for r in records] == sorted(r["utterance_id"] for r in records)
    assert wer(c.transcript, " ".join(r["text"] for r in records)) <= 0.2


def test_direct_model_route_and_fallback_voice(tmp_path, capsys):
    """en -> es through a CTranslate2 model the test builds; no Piper voice for es -> espeak-ng, said once."""
    model = build_marian(tmp_path / "opus-mt-en-es", "en", "es", eos_bias=0.0)
    c = clip("en/LDC93S1.wav")
    log, out_wav = tmp_path / "t.jsonl", tmp_path / "o.wav"
    code, out, err = run(
        capsys,
        "translate",
        str(c.path),
        "--from",
        "en",
        "--to",
        "es",
        "--asr",
        "tiny.en",
        "--mt-model",
        str(model.path),
        "-o",
        str(out_wav),
        "--jsonl",
        str(log),
    )
    assert code == 0, err
    (r,) = jsonl(log)
    assert r["route"] == "opus-mt-en-es" and r["target_language"] == "es" and r["text"]
    assert r["voice"].startswith("espeak-ng")
    assert (out + err).count("espeak") == 1


def test_full_disk_stops_the_speech_file_once_and_keeps_the_rest(tmp_path, capsys):
    """The speech WAV is on a 128 KiB disk (about 3 s of speech fit): the run goes on, writes every
    transcript record, reports the failure in one line and exits 2; the WAV holds what fit."""
    c = clip("en/jfk.flac")
    log = tmp_path / "t.jsonl"
    with small_disk(tmp_path / "disk", "128k") as disk:
        out_wav = disk / "o.wav"
        code, out, err = run(
            capsys,
            "translate",
            str(c.path),
            "--to",
            "en",
            "--asr",
            "tiny.en",
            "--jsonl",
            str(log),
            "-o",
            str(out_wav),
            "--set",
            "vad.endpoint=0.3",
            "--set",
            "vad.pause=0.2",
        )
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"translator: error: {out_wav}: writing speech failed ("), err
        assert "free some disk space" in lines[0]
        records = jsonl(log)
        assert len(records) >= 2 and wer(c.transcript, " ".join(r["text"] for r in records)) <= 0.2
        written = sf.info(out_wav).duration
        spoken = sum(r["speech_seconds"] or 0 for r in records)
        assert 0.5 < written < spoken, (written, spoken)


def test_no_speech_in_file(tmp_path, capsys):
    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(16000 * 2, np.float32), 16000)
    log = tmp_path / "t.jsonl"
    code, out, _ = run(capsys, "translate", str(silent), "--to", "en", "--asr", "tiny.en", "--jsonl", str(log))
    assert code == 0 and "no speech" in out and log.read_text() == ""


# --- bad input: one line, exit 2 (78 for config), no traceback, nothing written lost ---------------


def one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("translator: error:"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def tiny_copy(tmp_path, damage=None):
    model = tmp_path / "tiny"
    shutil.copytree(resolve_asr("tiny.en"), model)
    if damage:
        damage(model)
    return model


def not_audio(p):
    (p / "x.wav").write_text("not audio")
    return p / "x.wav"


def zero_length(p):
    sf.write(p / "empty.wav", np.zeros(0, np.float32), 16000)
    return p / "empty.wav"


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda p: p / "absent.wav", ["absent.wav", "not found"]),
        (not_audio, ["x.wav", "not a readable audio file"]),
        (zero_length, ["empty.wav", "no audio"]),
        (lambda p: p, ["directory"]),
    ],
    ids=["missing", "not-audio", "zero-length", "directory"],
)
def test_bad_audio_file(tmp_path, capsys, make, needles):
    code, _, err = run(capsys, "translate", str(make(tmp_path)), "--to", "en", "--asr", "tiny.en")
    assert code == 2
    one_line_error(err, *needles)


def test_truncated_file_translates_what_is_there_and_warns(tmp_path, capsys):
    cut = tmp_path / "cut.wav"
    data = DE.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    log = tmp_path / "t.jsonl"
    code, out, err = run(capsys, "translate", str(cut), "--to", "en", "--jsonl", str(log))
    assert code == 0, err
    assert "truncated" in out + err
    assert len(jsonl(log)) == 1


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda m: (m / "tokenizer.json").unlink(), "tokenizer.json"),
        (lambda m: (m / "model.bin").write_bytes((m / "model.bin").read_bytes()[:1000]), "tiny"),
    ],
    ids=["missing-file", "corrupt-model.bin"],
)
def test_broken_model_directory(tmp_path, capsys, damage, needle):
    model = tiny_copy(tmp_path, damage)
    code, _, err = run(capsys, "translate", str(DE), "--to", "en", "--asr", str(model))
    assert code == 2
    one_line_error(err, needle)


def test_unknown_language_and_pair_without_route(tmp_path, capsys):
    code, _, err = run(capsys, "translate", str(DE), "--to", "xx")
    assert code == 2
    one_line_error(err, "'xx'")
    code, _, err = run(capsys, "translate", str(DE), "--from", "de", "--to", "es", "--models-dir", str(tmp_path / "store"))
    assert code == 2
    one_line_error(err, "opus-mt-de-es", "opus-mt-de-en + opus-mt-en-es")


def test_invalid_config_names_the_key(tmp_path, capsys):
    conf = tmp_path / "c.toml"
    conf.write_text("[vad]\nendpoint = -1\n")
    code, _, err = run(capsys, "translate", str(DE), "--to", "en", "--config", str(conf))
    assert code == 78
    one_line_error(err, "endpoint")


def test_unwritable_output_keeps_nothing_half_done(tmp_path, capsys):
    code, _, err = run(
        capsys, "translate", str(DE), "--to", "en", "--asr", "tiny.en", "--jsonl", str(tmp_path / "missing-dir" / "t.jsonl")
    )
    assert code == 2
    one_line_error(err, "t.jsonl")


def test_console_script_exit_code_and_stderr():
    """The installed entry point, as a user runs it: no traceback, exit 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "translator.cli", "translate", "/nonexistent.wav", "--to", "en"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    one_line_error(proc.stderr, "/nonexistent.wav")
