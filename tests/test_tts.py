"""Speech synthesis with the real bundled Piper voice and the real espeak-ng binary."""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import faster_whisper
import numpy as np
import pytest
import soxr
from piper import PiperVoice

from translator import cores
from translator.bench.scoring import wer
from translator.config import AsrSettings
from translator.errors import ModelError
from translator.events import SAMPLE_RATE, Notice, SpeechChunk, SpeechDone, StageFailed, Translation
from translator.models.locate import resolve_voice
from translator.stages.espeak import EspeakVoice, espeak_voice_for
from translator.stages.recognizer import WhisperRecognizer
from translator.stages.tts import BEHIND, FASTER, PacedSpeaker, PiperSpeakerVoice, SpeakerStage, choose_voice, speech_chunks

JOE = "en_US-joe-medium"
TWO = "Hello world. This is a second sentence."
FOUR = "One sentence here. A second one follows. Then comes a third. And this is the last."


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def translation(text: str, lang: str, uid: int = 1) -> Translation:
    return Translation(uid, text, "xx", text, lang, "test", 0.0, 1.0, 100.0, 100.1, 0.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty model store: only the bundled joe voice is installed, so no Spanish Piper voice."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="module")
def joe(store: Path) -> PiperSpeakerVoice:
    voice, notice = choose_voice("en", store=store)
    assert isinstance(voice, PiperSpeakerVoice) and voice.name == JOE and notice is None
    return voice


def test_joe_speaks_each_sentence_as_its_own_plausible_chunk(joe: PiperSpeakerVoice) -> None:
    assert joe.sample_rate == 22050
    chunks = list(joe.synthesize(TWO))
    assert len(chunks) >= 2
    for chunk in chunks:
        assert chunk.dtype == np.float32 and chunk.ndim == 1
        assert np.all(np.abs(chunk) <= 1.0)
        assert rms(chunk) > 0.01
        assert 0.3 <= len(chunk) / joe.sample_rate <= 5.0


@pytest.fixture
def model_runs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts Piper's per-sentence model runs, to see how far synthesis got at any moment."""
    runs: list[int] = []
    original = PiperVoice.phoneme_ids_to_audio

    def counting(self, *args, **kwargs):
        runs.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PiperVoice, "phoneme_ids_to_audio", counting)
    return runs


def test_the_voice_runs_one_thread_per_usable_core(joe: PiperSpeakerVoice, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not onnxruntime's one per physical core: under a CPU quota of one core that is two threads
    here, which the quota cannot run side by side."""
    assert joe._piper.session.get_session_options().intra_op_num_threads == cores.threads()
    monkeypatch.setattr(cores, "usable", lambda *a: 0.4)
    one = PiperSpeakerVoice(joe._files)
    assert one._piper.session.get_session_options().intra_op_num_threads == 1


def test_first_sentence_is_ready_before_the_rest_is_synthesised(joe: PiperSpeakerVoice, model_runs: list[int]) -> None:
    chunks = joe.synthesize(FOUR)
    assert model_runs == []
    next(chunks)
    assert len(model_runs) == 1
    assert len(list(chunks)) == 3 and len(model_runs) == 4

    stage = SpeakerStage({"en": joe})
    assert stage.prepare(["en"]) == []  # loads and warms up: not part of the utterance
    model_runs.clear()
    events = stage.feed(translation(FOUR, "en"))
    first = next(events)
    assert isinstance(first, SpeechChunk) and first.index == 0 and len(model_runs) == 1
    rest = list(events)
    assert len(model_runs) == 4
    assert [e.index for e in rest[:-1]] == [1, 2, 3]
    assert [c.text for c in [first, *rest[:-1]]] == re.split(r"(?<=\.) ", FOUR)
    assert all(c.t_end_wall == 100.0 and c.voice == JOE and c.sample_rate == 22050 for c in [first, *rest[:-1]])
    assert isinstance(rest[-1], SpeechDone) and rest[-1].voice == JOE


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a long first sentence is cut at its first clause break with three words on each side
        (
            "When the meeting is over tomorrow, we will take the train to Berlin. See you.",
            ["When the meeting is over tomorrow,", "we will take the train to Berlin.", "See you."],
        ),
        (
            "Yes, when the meeting is over tomorrow, we will take the train home.",
            ["Yes, when the meeting is over tomorrow,", "we will take the train home."],
        ),
        # short first sentences, later sentences, no break: as they are
        (
            "Hello, my friend. After the meeting is over tomorrow, we will take the train.",
            ["Hello, my friend.", "After the meeting is over tomorrow, we will take the train."],
        ),
        (
            "Unless a system is established for the frequent formal review of activities.",
            ["Unless a system is established for the frequent formal review of activities."],
        ),
        ("Dr. Smith arrived at noon. Then he left.", ["Dr. Smith arrived at noon.", "Then he left."]),
        ("", []),
    ],
)
def test_speech_chunks_make_the_first_one_short(text: str, expected: list[str]) -> None:
    assert speech_chunks(text, "en") == expected


def test_joe_is_intelligible_to_whisper(joe: PiperSpeakerVoice) -> None:
    reference = "The quick brown fox jumps over the lazy dog."
    audio = np.concatenate(list(joe.synthesize(reference)))
    audio16k = soxr.resample(audio, joe.sample_rate, SAMPLE_RATE).astype(np.float32)
    heard = WhisperRecognizer(AsrSettings(model="tiny.en", threads=2)).recognize(audio16k)
    assert heard is not None
    assert wer(reference, heard.text) <= 0.3, heard.text


def test_espeak_fallback_for_a_language_without_piper_voice(store: Path) -> None:
    voice, notice = choose_voice("es", store=store)
    assert isinstance(voice, EspeakVoice)
    assert notice is not None and "espeak" in notice.message and "piper-es" in notice.message
    chunks = list(voice.synthesize("Hola mundo. ¿Dónde está la estación?"))
    assert len(chunks) == 2
    assert all(c.dtype == np.float32 and rms(c) > 0.01 for c in chunks)

    stage = SpeakerStage(functools.partial(choose_voice, store=store))
    first = list(stage.feed(translation("Buenos días.", "es", 1)))
    second = list(stage.feed(translation("Gracias. Hasta luego.", "es", 2)))
    notices = [e for e in first + second if isinstance(e, Notice)]
    assert len(notices) == 1 and "espeak" in notices[0].message
    assert [type(e) for e in second] == [SpeechChunk, SpeechChunk, SpeechDone]
    assert second[-1].voice == voice.name and second[0].text == "Gracias."


def spoken(events: list) -> int:
    return sum(len(e.samples) for e in events if isinstance(e, SpeechChunk))


def test_a_speaker_left_behind_speaks_faster_and_says_so_once(joe: PiperSpeakerVoice) -> None:
    queued = [0.0]
    paced = PacedSpeaker(SpeakerStage({"en": joe}), lambda: queued[0])
    normal = list(paced.feed(translation(TWO, "en", 1)))
    assert not [e for e in normal if isinstance(e, Notice)]
    queued[0] = BEHIND + 2
    hurried = list(paced.feed(translation(TWO, "en", 2)))
    again = list(paced.feed(translation(TWO, "en", 3)))
    notices = [e for e in hurried + again if isinstance(e, Notice)]
    assert len(notices) == 1 and "behind" in notices[0].message and "faster" in notices[0].message
    # Piper's length scale over the same words: a quarter faster, give or take its pauses and the
    # noise Piper draws for each synthesis.
    assert 0.75 < spoken(hurried) / spoken(normal) * FASTER < 1.15
    queued[0] = 0.0
    assert 0.9 < spoken(list(paced.feed(translation(TWO, "en", 4)))) / spoken(normal) < 1.1
    queued[0] = BEHIND + 2  # a new run of falling behind is said again
    assert [e for e in paced.feed(translation(TWO, "en", 5)) if isinstance(e, Notice)]


def test_espeak_speaks_faster_too(store: Path) -> None:
    voice = EspeakVoice("es")
    normal = sum(len(c) for c in voice.synthesize("Hola mundo, buenos días a todos."))
    faster = sum(len(c) for c in voice.synthesize_at("Hola mundo, buenos días a todos.", FASTER))
    assert 0.6 < faster / normal * FASTER < 1.15


def test_no_voice_means_text_only(store: Path) -> None:
    assert espeak_voice_for("yo") is None  # Yoruba: Whisper knows it, espeak-ng does not
    for voice, notice in (choose_voice("yo", store=store), choose_voice("es", allow_fallback=False, store=store)):
        assert voice is None
        assert notice is not None and "text only" in notice.message

    stage = SpeakerStage(functools.partial(choose_voice, store=store))
    first = list(stage.feed(translation("E kaaro.", "yo", 1)))
    assert [type(e) for e in first] == [Notice, SpeechDone] and first[1].voice == ""
    assert [type(e) for e in stage.feed(translation("O dabo.", "yo", 2))] == [SpeechDone]


def test_empty_text_is_only_speech_done(joe: PiperSpeakerVoice) -> None:
    events = list(SpeakerStage({"en": joe}).feed(translation("  ", "en")))
    assert [type(e) for e in events] == [SpeechDone]


def test_what_is_not_a_translation_is_not_spoken(joe: PiperSpeakerVoice) -> None:
    """The source language in the target's voice would pass it off as the translation: silence,
    and no notice (the utterance's own line says "not translated")."""
    stage = SpeakerStage({"en": joe})
    untranslated = dataclasses.replace(translation("Minumero favorito, S6, S61", "en"), translated=False)
    events = list(stage.feed(untranslated))
    assert [type(e) for e in events] == [SpeechDone] and events[0].voice == ""
    assert [type(e) for e in stage.feed(translation("My number is 61.", "en", 2))] == [SpeechChunk, SpeechDone]


class FailingVoice:
    """Speaks one sentence, then fails like an onnxruntime error would."""

    name = "failing"
    language = "en"
    sample_rate = 16000

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        if text.startswith("Boom"):
            raise RuntimeError("onnxruntime: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION\nnon-zero status")
        yield np.full(1600, 0.1, dtype=np.float32)

    def warm_up(self) -> None:
        pass


def test_a_synthesis_error_fails_the_utterance_not_the_stage() -> None:
    stage = SpeakerStage({"en": FailingVoice()})
    events = list(stage.feed(translation("Fine. Boom here. Never said.", "en", 1)))
    assert [type(e) for e in events] == [SpeechChunk, StageFailed, SpeechDone]
    failed = events[1]
    assert failed.stage == "tts" and failed.utterance_id == 1 and "\n" not in failed.message
    assert [type(e) for e in stage.feed(translation("Fine again.", "en", 2))] == [SpeechChunk, SpeechDone]


def test_corrupt_voice_files_name_the_file(tmp_path: Path) -> None:
    joe_files = resolve_voice(JOE)
    rng = np.random.default_rng(0)

    onnx = tmp_path / "en_US-broken-medium.onnx"
    onnx.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    shutil.copyfile(joe_files.config, tmp_path / (onnx.name + ".json"))
    with pytest.raises(ModelError, match=re.escape(str(onnx))):
        PiperSpeakerVoice(resolve_voice(str(onnx)))

    bad_config = tmp_path / "bad" / "en_US-badjson-medium.onnx"
    bad_config.parent.mkdir()
    bad_config.symlink_to(joe_files.model)
    Path(str(bad_config) + ".json").write_text("{not json")
    with pytest.raises(ModelError, match=re.escape(str(bad_config) + ".json")):
        PiperSpeakerVoice(resolve_voice(str(bad_config)))


def test_an_onnx_model_that_is_not_a_voice_fails_at_warm_up_naming_the_file(tmp_path: Path) -> None:
    vad = Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"  # an ONNX model, not a voice
    onnx = tmp_path / "en_US-vad-medium.onnx"
    shutil.copyfile(vad, onnx)
    shutil.copyfile(resolve_voice(JOE).config, tmp_path / (onnx.name + ".json"))
    not_a_voice = PiperSpeakerVoice(resolve_voice(str(onnx)))

    with pytest.raises(ModelError, match=re.escape(str(onnx))):
        SpeakerStage({"en": not_a_voice}).prepare(["en"])

    stage = SpeakerStage({"en": not_a_voice})
    events = list(stage.feed(translation("Hello.", "en", 1)))
    assert [type(e) for e in events] == [Notice, SpeechDone]
    assert events[0].level == "error" and str(onnx) in events[0].message and events[1].voice == ""
    assert [type(e) for e in stage.feed(translation("Hello.", "en", 2))] == [SpeechDone]
