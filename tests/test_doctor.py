"""``translator doctor``: the recommendation rules on given timings, the config file update, and the
command itself on the installed models (no timing threshold: the figures are this box's)."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest
from mtmodels import build_marian

from translator import config_file, config_load
from translator.cli import main
from translator.doctor.advice import AsrTiming, Current, Measurements, VoiceTiming, recommend
from translator.errors import ConfigError
from translator.serve.install import SOURCE_DIR

CLIP = 5.0
CURRENT = Current(
    asr_model="base",
    voice="en_US-joe-medium",
    partial_interval=0.5,
    asr_threads=0,
    mt_threads=0,
    english_possible=True,
    endpoint=0.4,
    pause=0.1,
)


def asr(model: str, rtf: float, caption: float, *, english_only: bool = False) -> AsrTiming:
    return AsrTiming(model, 1.0, rtf * CLIP, caption, CLIP, english_only)


def voice(name: str, rtf: float) -> VoiceTiming:
    return VoiceTiming(name, rtf * 4.0, 4.0)


def box(
    *asr_timings: AsrTiming, voices: tuple[VoiceTiming, ...] = (), cores: float = 2.0, mt: float | None = None
) -> Measurements:
    return Measurements(cores, max(1, int(cores)), CLIP, asr_timings, voices, mt, 10.0)


# --- the rules ----------------------------------------------------------------------------------


def test_a_fast_box_keeps_the_configured_setup_and_the_default_caption_interval() -> None:
    m = box(asr("base", 0.15, 0.2), asr("tiny.en", 0.08, 0.1, english_only=True), voices=(voice("en_US-joe-medium", 0.05),))
    rec = recommend(m, CURRENT)
    assert (rec.asr_model, rec.voice, rec.partial_interval) == ("base", "en_US-joe-medium", 0.5)
    assert rec.keeps_real_time and rec.load == pytest.approx(0.2) and not rec.notes
    assert rec.settings(CURRENT) == {}  # nothing to change
    # the voice's first 2 s after the pause and the final decode; the endpoint is the floor
    assert rec.speech_to_speech == pytest.approx(0.1 + 0.75 + 0.1)


def test_a_slow_box_gets_tiny_en_a_low_voice_and_a_wider_caption_interval() -> None:
    m = box(
        asr("base", 0.5, 1.2),
        asr("tiny.en", 0.2, 0.9, english_only=True),
        voices=(voice("en_US-joe-medium", 0.6), voice("en_US-amy-low", 0.3)),
        cores=0.4,
    )
    rec = recommend(m, CURRENT)
    assert (rec.asr_model, rec.voice, rec.voice_quality) == ("tiny.en", "en_US-amy-low", "low")
    assert rec.load == pytest.approx(0.5)
    assert rec.partial_interval == 2.0  # 0.9 s per caption, half the box left: 1.8 s, rounded up to 2 s
    assert any("English only" in n for n in rec.notes)
    assert rec.settings(CURRENT) == {
        "vad": {"partial_interval": 2.0},
        "asr": {"model": "tiny.en"},
        "tts": {"voice": "en_US-amy-low"},
    }


def test_without_a_faster_voice_installed_the_pi_voices_are_named() -> None:
    m = box(asr("tiny.en", 0.2, 0.3, english_only=True), voices=(voice("en_US-joe-medium", 0.6),), cores=0.4)
    rec = recommend(dataclasses.replace(m), dataclasses.replace(CURRENT, asr_model="tiny.en"), ("en_US-lessac-low",))
    assert rec.voice == "en_US-joe-medium"
    assert any("en_US-lessac-low" in n for n in rec.notes)
    assert any("real time" in n for n in rec.notes)  # 0.2 + 0.6 is over the 0.7 budget
    assert rec.keeps_real_time  # but under 1: it does not fall behind


def test_an_english_only_model_is_not_offered_for_other_languages() -> None:
    spanish = dataclasses.replace(CURRENT, english_possible=False)
    m = box(asr("base", 0.9, 1.0), asr("tiny.en", 0.2, 0.3, english_only=True), voices=(voice("en_US-joe-medium", 0.1),))
    rec = recommend(m, spanish)
    assert rec.asr_model == "base" and not rec.keeps_real_time  # 0.9 + 0.1: at the limit
    assert rec.partial_interval == 2.0


def test_caption_interval_rounds_up_to_a_quarter_second() -> None:
    m = box(asr("base", 0.2, 0.42), voices=(voice("en_US-joe-medium", 0.1),))
    assert recommend(m, CURRENT).partial_interval == 0.75  # 0.42 / 0.7 = 0.6


def test_explicit_thread_counts_above_the_cores_are_reset_and_translation_counts_in_the_load() -> None:
    m = box(asr("base", 0.2, 0.1), voices=(voice("en_US-joe-medium", 0.1),), cores=1.0, mt=1.0)
    current = dataclasses.replace(CURRENT, asr_threads=4, mt_threads=2)
    rec = recommend(m, current)
    assert rec.reset_threads and rec.load == pytest.approx(0.5)
    assert rec.settings(current)["asr"] == {"threads": 0} and rec.settings(current)["mt"] == {"threads": 0}
    assert not recommend(m, dataclasses.replace(CURRENT, asr_threads=1)).reset_threads


# --- writing the config file --------------------------------------------------------------------


def test_update_keeps_comments_and_other_keys_and_places_new_keys_by_their_example(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    original = (SOURCE_DIR / "config.toml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    path.chmod(0o640)
    updates = {"asr": {"model": "tiny.en"}, "vad": {"partial_interval": 1.25}, "tts": {"voice": "en_US-amy-low"}}
    assert config_file.update_file(path, updates)
    text = path.read_text(encoding="utf-8")
    assert [line for line in original.splitlines() if line.startswith("#")] == [
        line for line in text.splitlines() if line.startswith("#")
    ]
    lines = text.splitlines()
    assert lines[lines.index("partial_interval = 1.25") - 1].startswith("# partial_interval")
    before, after = tomllib.loads(original), tomllib.loads(text)
    assert after["asr"]["model"] == "tiny.en" and after["languages"] == before["languages"]
    loaded = config_load.load(path)
    assert (loaded.asr.model, loaded.vad.partial_interval, loaded.tts.voice) == ("tiny.en", 1.25, "en_US-amy-low")
    assert path.stat().st_mode & 0o777 == 0o640
    assert not config_file.update_file(path, updates)  # already set: nothing written


def test_update_creates_a_missing_file_and_appends_a_missing_section(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config.toml"
    config_file.update_file(path, {"vad": {"partial_interval": 2.0}})
    path.write_text(path.read_text() + '\n[languages]\nto = "de"  # keep me\n')
    config_file.update_file(path, {"asr": {"model": "tiny.en"}})
    assert "# keep me" in path.read_text()
    assert tomllib.loads(path.read_text()) == {
        "vad": {"partial_interval": 2.0},
        "languages": {"to": "de"},
        "asr": {"model": "tiny.en"},
    }


def test_update_refuses_a_layout_it_cannot_edit_and_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('asr = { model = "base" }\n')
    with pytest.raises(ConfigError, match=r"set by hand: asr.model = \"tiny.en\""):
        config_file.update_file(path, {"asr": {"model": "tiny.en"}})
    assert path.read_text() == 'asr = { model = "base" }\n'
    with pytest.raises(ConfigError, match="vad.partial_interval: must be > 0 s"):
        config_file.update_file(tmp_path / "other.toml", {"vad": {"partial_interval": 0.0}})
    assert not (tmp_path / "other.toml").exists()


# --- the command, on the installed models -------------------------------------------------------


def test_doctor_measures_recommends_and_writes_a_config_the_app_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text((SOURCE_DIR / "config.toml").read_text(encoding="utf-8"))  # the service's documented config
    assert main(["doctor", "--config", str(path), "--write", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rec = report["recommendation"]
    assert report["written"] == str(path) and report["cores"] > 0
    assert {t["model"] for t in report["asr"]} >= {"base", "tiny.en"}  # the configured one and the bundled alternative
    assert all(t["rtf"] > 0 and t["final_seconds"] > 0 and t["caption_seconds"] > 0 for t in report["asr"])
    assert report["voices"] and report["voices"][0]["name"] == "en_US-joe-medium" and report["voices"][0]["rtf"] > 0
    assert rec["asr_model"] in {t["model"] for t in report["asr"]} and 0.5 <= rec["partial_interval"] <= 2.0
    loaded = config_load.load(path)
    assert loaded.asr.model == rec["asr_model"] and loaded.vad.partial_interval == rec["partial_interval"]
    assert (loaded.tts.voice or "en_US-joe-medium") == rec["voice"]

    assert main(["doctor", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Recommended" in out and f"asr.model = {rec['asr_model']}" in out and "RTF" in out


def test_doctor_times_a_text_route_and_the_fallback_voice_of_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = build_marian(tmp_path / "opus-mt-en-es", "en", "es", eos_bias=0.0)
    argv = ["doctor", "--json", "--from", "en", "--to", "es", "--asr", "tiny.en", "--mt-model", str(model.path)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mt_seconds"] > 0 and report["written"] is None
    assert report["asr"][0]["model"] == "tiny.en"  # the configured model first
    # no Spanish Piper voice is installed: the configured fallback, espeak-ng, is what is timed
    assert [v["quality"] for v in report["voices"]] == [""] and report["voices"][0]["rtf"] > 0
    assert report["recommendation"]["load"] > min(t["rtf"] for t in report["asr"])  # translation and synthesis count
