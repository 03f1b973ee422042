"""Text translation with real (tiny, random-weight) CTranslate2 models built by tests/mtmodels.py."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import pytest
from mtmodels import NLLB_TOKENS, build_argos, build_m2m100, build_marian, build_nllb

from translator.errors import LanguageError, ModelError
from translator.events import Notice, Transcript, Translation
from translator.languages import Languages
from translator.models.locate import MtModel
from translator.stages.mt import CT2Translator, decode_limit
from translator.stages.routes import RouteKind, plan_route
from translator.stages.sentences import join_sentences, split_sentences
from translator.stages.translate import TextTranslator, TranslatorStage

GERMAN = ["Guten Morgen, wie geht es Ihnen?", "Wir treffen uns morgen am Bahnhof."]
ENGLISH = ["Good morning, how are you?", "We will meet at the station tomorrow."]


# --- models, built once per session -------------------------------------------------------------


@pytest.fixture(scope="session")
def mt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mt")


@pytest.fixture(scope="session")
def de_en(mt_dir: Path) -> MtModel:
    return build_marian(mt_dir / "opus-mt-de-en", "de", "en")


@pytest.fixture(scope="session")
def en_es(mt_dir: Path) -> MtModel:
    return build_marian(mt_dir / "opus-mt-en-es", "en", "es")


@pytest.fixture(scope="session")
def nllb(mt_dir: Path) -> MtModel:
    return build_nllb(mt_dir / "nllb-200-distilled-600M", ["de", "en", "es"])


@pytest.fixture(scope="session")
def m2m(mt_dir: Path) -> MtModel:
    return build_m2m100(mt_dir / "m2m100_418M", ["de", "en"])


@pytest.fixture(scope="session")
def argos(mt_dir: Path) -> MtModel:
    return build_argos(mt_dir / "translate-en_de.argosmodel", "en", "de")


@pytest.fixture(scope="session")
def loaded(de_en: MtModel, en_es: MtModel) -> TextTranslator:
    """One TextTranslator shared by the tests that only read from it."""
    return TextTranslator([de_en, en_es], cpu_threads=1)


def fake(name: str, family: str, sources: tuple[str, ...], targets: tuple[str, ...]) -> MtModel:
    """Route planning reads only the description, never the files."""
    return MtModel(name, Path("/nonexistent") / name, family, sources, targets)


def opus(src: str, tgt: str) -> MtModel:
    return fake(f"opus-mt-{src}-{tgt}", "marian", (src,), (tgt,))


def transcript(text: str, language: str, task: str = "transcribe", uid: int = 1) -> Transcript:
    return Transcript(uid, text, language, 0.99, task, start=1.0, t_end=3.0, t_end_wall=100.0, wall=100.4, compute_seconds=0.3)


# --- loading and translating --------------------------------------------------------------------


def _check_translates(t: CT2Translator, texts: list[str], source: str, target: str) -> list[str]:
    first = t.translate(texts, source, target)
    t.clear_cache()
    second = t.translate(texts, source, target)
    assert len(first) == len(texts)
    assert all(isinstance(s, str) and s.strip() for s in first), first
    assert first == second  # greedy decoding is deterministic
    return first


def test_marian_translates(de_en: MtModel) -> None:
    t = CT2Translator(de_en, cpu_threads=1)
    assert t.layout == "marian"
    _check_translates(t, GERMAN, "de", "en")


def test_nllb_translates_without_language_tokens(nllb: MtModel) -> None:
    t = CT2Translator(nllb, cpu_threads=1)
    assert t.layout == "nllb"
    assert t.source_tokens("Hallo.", "de")[0] == "deu_Latn" and t.source_tokens("Hallo.", "de")[-1] == "</s>"
    out = _check_translates(t, GERMAN, "de", "es")
    for text in out:
        assert not any(tok in text for tok in NLLB_TOKENS.values()), text
    for pieces in t.translate_pieces(GERMAN, "de", "en"):
        assert "eng_Latn" not in pieces and "</s>" not in pieces


def test_m2m100_translates(m2m: MtModel) -> None:
    t = CT2Translator(m2m, cpu_threads=1)
    assert t.source_tokens("Hallo.", "de")[0] == "__de__"
    out = _check_translates(t, GERMAN, "de", "en")
    assert all("__en__" not in s for s in out)


def test_argos_package_root_and_model_dir(argos: MtModel) -> None:
    assert (argos.path.with_suffix(".argosmodel")).is_file()
    t = CT2Translator(argos, cpu_threads=1)
    assert t.layout == "argos"
    assert t.source_tokens("Hello.", "en")[-1] != "</s>"  # OpenNMT-py models add nothing
    _check_translates(t, ENGLISH, "en", "de")
    inner = CT2Translator(MtModel(argos.name, argos.path / "model", "marian", ("en",), ("de",)), cpu_threads=1)
    assert inner.layout == "argos"


def test_wrong_direction_is_a_language_error(de_en: MtModel, loaded: TextTranslator) -> None:
    with pytest.raises(LanguageError, match="opus-mt-de-en does not translate en to de"):
        loaded.translator(de_en).translate(["Hello."], "en", "de")


def test_long_input_decodes_a_bounded_length(loaded: TextTranslator, de_en: MtModel) -> None:
    t = loaded.translator(de_en)
    words = " ".join(["Bahnhof"] * 50)
    tokens = t.source_tokens(words, "de")
    t0 = time.perf_counter()
    (pieces,) = t.translate_pieces([words], "de", "en")
    assert time.perf_counter() - t0 < 5
    # The test models never emit </s>, so they run right to the bound.
    assert 0 < len(pieces) <= decode_limit(len(tokens))
    assert decode_limit(len(tokens)) <= 3 * len(tokens) + 10
    assert decode_limit(12) == 46


def test_repeated_sentence_is_served_from_cache(de_en: MtModel) -> None:
    t = CT2Translator(de_en, cpu_threads=1, cache_size=2)
    first = t.translate(["Guten Morgen. Guten Morgen."], "de", "en")
    assert t.batches == 1 and t.cache_info()["misses"] == 2  # the duplicate went in the batch once
    again = t.translate(["Guten Morgen."], "de", "en")
    assert t.batches == 1 and t.cache_info()["hits"] == 1
    assert first[0] == f"{again[0]} {again[0]}"
    t.translate(["Eins.", "Zwei.", "Drei."], "de", "en")
    assert t.cache_info()["size"] == 2  # bounded


def test_models_load_once_and_are_shared_between_routes(de_en: MtModel, en_es: MtModel) -> None:
    calls: list[str] = []

    def load(model: MtModel) -> CT2Translator:
        calls.append(model.name)
        return CT2Translator(model, cpu_threads=1)

    tt = TextTranslator([de_en, en_es], cpu_threads=1, loader=load)
    text, route = tt.translate("Guten Morgen.", "de", "en")
    assert route.kind == "direct" and text
    _, route = tt.translate("Guten Morgen.", "de", "es")
    assert route.kind is RouteKind.PIVOT
    tt.prepare(route)  # loads (and warms up) what the route needs: already loaded
    assert calls == ["opus-mt-de-en", "opus-mt-en-es"]


# --- errors -------------------------------------------------------------------------------------


def test_missing_source_spm_names_the_file(tmp_path: Path, de_en: MtModel) -> None:
    broken = tmp_path / "opus-mt-de-en"
    shutil.copytree(de_en.path, broken)
    (broken / "source.spm").unlink()
    with pytest.raises(ModelError, match=r"source\.spm"):
        CT2Translator(MtModel(de_en.name, broken, "marian", ("de",), ("en",)))


def test_missing_model_bin_and_nllb_spm_name_the_file(tmp_path: Path, nllb: MtModel) -> None:
    broken = tmp_path / "nllb"
    shutil.copytree(nllb.path, broken)
    (broken / "model.bin").unlink()
    with pytest.raises(ModelError, match=r"model\.bin"):
        CT2Translator(MtModel(nllb.name, broken, "nllb", nllb.sources, nllb.targets))
    (broken / "sentencepiece.bpe.model").unlink()
    with pytest.raises(ModelError, match=r"sentencepiece\.bpe\.model"):
        CT2Translator(MtModel(nllb.name, broken, "nllb", nllb.sources, nllb.targets))


def test_truncated_model_bin_is_a_model_error(tmp_path: Path, de_en: MtModel) -> None:
    broken = tmp_path / "opus-mt-de-en"
    shutil.copytree(de_en.path, broken)
    data = (broken / "model.bin").read_bytes()
    (broken / "model.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match=str(broken)):
        CT2Translator(MtModel(de_en.name, broken, "marian", ("de",), ("en",)))


# --- sentence splitting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Mr. Smith paid 3.5 dollars. Then he left", "en", ["Mr. Smith paid 3.5 dollars.", "Then he left"]),
        ("Use tools, e.g. hammers. Dr. Who came!", "en", ["Use tools, e.g. hammers.", "Dr. Who came!"]),
        ("Really? Yes… Fine.", "en", ["Really?", "Yes…", "Fine."]),
        ("今天天气很好。我们去公园吧！你来吗？好", "zh", ["今天天气很好。", "我们去公园吧！", "你来吗？", "好"]),
        ("Am 3. Mai kommt er. Danach nicht.", "de", ["Am 3. Mai kommt er.", "Danach nicht."]),
        ('He said "Stop." Then J. K. Rowling left.', "en", ['He said "Stop."', "Then J. K. Rowling left."]),
        ("It costs approx. five euros", "en", ["It costs approx. five euros"]),
        ("  no period at all  ", "en", ["no period at all"]),
        ("", "en", []),
    ],
)
def test_split_sentences(text: str, language: str, expected: list[str]) -> None:
    assert split_sentences(text, language) == expected


def test_join_sentences() -> None:
    assert join_sentences(["你好。", "再见。"], "zh") == "你好。再见。"
    assert join_sentences(["Hello.", "", "Bye."], "en") == "Hello. Bye."


# --- routes -------------------------------------------------------------------------------------


def test_nothing_installed_names_the_models_to_install() -> None:
    with pytest.raises(LanguageError, match="opus-mt-en-de"):
        plan_route("en", "de", [], whisper_translate_available=True)
    with pytest.raises(LanguageError) as err:
        plan_route("de", "es", [], whisper_translate_available=False)
    assert str(err.value) == (
        "no translation route from de to es: install opus-mt-de-es, or opus-mt-de-en + opus-mt-en-es, or nllb-200-distilled-600M"
    )
    with pytest.raises(LanguageError, match="multilingual Whisper"):
        plan_route("de", "en", [], whisper_translate_available=False)


def test_unknown_language_code() -> None:
    with pytest.raises(LanguageError, match="'xx'"):
        plan_route("xx", "en", [opus("de", "en")], whisper_translate_available=True)
    with pytest.raises(LanguageError, match="'xx'"):
        plan_route("de", "xx", [], whisper_translate_available=True)


def test_route_choices() -> None:
    assert plan_route("de", "de", [], whisper_translate_available=False).kind == "same"
    whisper = plan_route("de", "en", [], whisper_translate_available=True)
    assert (whisper.kind, whisper.name, whisper.recognizer_task) == ("whisper", "whisper-translate", "translate")
    direct = plan_route("de", "en", [opus("de", "en")], whisper_translate_available=True)
    assert (direct.kind, direct.name, direct.recognizer_task) == ("direct", "opus-mt-de-en", "transcribe")
    preferred = plan_route("de", "en", [opus("de", "en")], whisper_translate_available=True, prefer_whisper=True)
    assert preferred.kind == "whisper"
    pivot = plan_route("de", "es", [opus("de", "en"), opus("en", "es")], whisper_translate_available=True)
    assert (pivot.kind, pivot.name) == ("pivot", "pivot:opus-mt-de-en+opus-mt-en-es")
    assert "through English" in pivot.note
    many = fake("nllb-200-distilled-600M", "nllb", ("de", "en", "es"), ("de", "en", "es"))
    assert (
        plan_route("de", "es", [opus("de", "en"), opus("en", "es"), many], whisper_translate_available=True).name
        == "nllb-200-distilled-600M"
    )
    # Marian beats NLLB for speed when both serve the pair.
    assert plan_route("de", "en", [many, opus("de", "en")], whisper_translate_available=False).name == "opus-mt-de-en"
    # Whisper's English then one en->es model, when that is all there is.
    chained = plan_route("fr", "es", [opus("en", "es")], whisper_translate_available=True)
    assert (chained.kind, chained.name, chained.recognizer_task) == ("whisper", "whisper-translate+opus-mt-en-es", "translate")


def test_nllb_direct_route_with_real_model(nllb: MtModel) -> None:
    route = plan_route("de", "es", [nllb], whisper_translate_available=False)
    assert (route.kind, route.models) == ("direct", (nllb,))
    text, used = TextTranslator([nllb], cpu_threads=1).translate("Guten Morgen. Bis bald!", "de", "es")
    assert used == route and text.strip()


# --- the stage ----------------------------------------------------------------------------------


def test_stage_pivot_notice_once_and_translation_through_both(loaded: TextTranslator, de_en: MtModel, en_es: MtModel) -> None:
    stage = TranslatorStage(loaded, Languages(None, "es"))
    assert stage.recognizer_task("de") == "transcribe"
    events = list(stage.feed(transcript(GERMAN[0], "de")))
    assert [type(e) for e in events] == [Notice, Translation]
    assert "de->es through English" in events[0].message
    tr = events[1]
    assert isinstance(tr, Translation)
    assert tr.route == "pivot:opus-mt-de-en+opus-mt-en-es"
    assert (tr.source_language, tr.target_language, tr.source_text) == ("de", "es", GERMAN[0])
    assert (tr.utterance_id, tr.start, tr.t_end, tr.t_end_wall) == (1, 1.0, 3.0, 100.0)
    assert tr.compute_seconds >= 0 and tr.wall > 0
    english = loaded.translator(de_en).translate([GERMAN[0]], "de", "en")[0]
    assert tr.text == loaded.translator(en_es).translate([english], "en", "es")[0] and tr.text
    again = list(stage.feed(transcript(GERMAN[1], "de", uid=2)))
    assert [type(e) for e in again] == [Translation]


def sharing(loaded: TextTranslator, models: list[MtModel], **kwargs: bool) -> TextTranslator:
    """Another set of installed models and recognizer abilities, on the models ``loaded`` holds."""
    return TextTranslator(models, cpu_threads=1, loader=loaded.translator, **kwargs)


def test_stage_whisper_route(loaded: TextTranslator, de_en: MtModel) -> None:
    to_english = Languages(None, "en")
    stage = TranslatorStage(sharing(loaded, [], whisper_translate_available=True), to_english)
    assert stage.recognizer_task("de") == "translate"
    assert stage.recognizer_task("en") == "transcribe"
    assert stage.recognizer_task(None) == "transcribe"
    events = list(stage.feed(transcript("Good morning to you.", "de", task="translate")))
    assert [type(e) for e in events] == [Notice, Translation]
    tr = events[1]
    assert (tr.text, tr.route, tr.source_language, tr.target_language) == (
        "Good morning to you.",
        "whisper-translate",
        "de",
        "en",
    )
    with_model = TranslatorStage(sharing(loaded, [de_en], whisper_translate_available=True), to_english)
    assert with_model.recognizer_task("de") == "transcribe"
    preferring = TranslatorStage(sharing(loaded, [de_en], whisper_translate_available=True, prefer_whisper=True), to_english)
    assert preferring.recognizer_task("de") == "translate"
    # Asked to translate but the recognizer transcribed anyway: the direct model takes over.
    (tr,) = [e for e in preferring.feed(transcript(GERMAN[0], "de")) if isinstance(e, Translation)]
    assert tr.route == "opus-mt-de-en" and tr.text


def test_stage_same_language_empty_text_and_pair(loaded: TextTranslator, de_en: MtModel) -> None:
    only_de_en = sharing(loaded, [de_en])
    stage = TranslatorStage(only_de_en, Languages(None, "en"))
    (tr,) = stage.feed(transcript("  Hello there.  ", "en"))
    assert (tr.route, tr.text) == ("same", "Hello there.")
    assert list(stage.feed(transcript("   ", "de"))) == []
    with pytest.raises(LanguageError, match="opus-mt-fr-en"):
        list(stage.feed(transcript("Bonjour.", "fr")))
    assert stage.recognizer_task("fr") == "transcribe"
    pair = TranslatorStage(only_de_en, Languages(None, "de", ("de", "en")))
    with pytest.raises(LanguageError, match="opus-mt-en-de"):
        pair.route_for("en")  # English goes into the other language of the pair
    (tr,) = pair.feed(transcript(GERMAN[1], "de"))
    assert (tr.target_language, tr.route) == ("en", "opus-mt-de-en")
    assert [r.kind for r in pair.prepare(["de"])] == ["direct"]


# --- nothing in the source language passes as a translation ---------------------------------------


class Scripted:
    """A fake loaded model that answers from a table (unit tests of the stage only)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def translate_sentences(self, sentences: list[str], source: str, target: str) -> list[str]:
        return [self.answers.get(s, s) for s in sentences]  # unknown input is copied, as Marian does

    def warm_up(self) -> None:
        pass


def scripted(models: list[MtModel], answers: dict[str, str], **kwargs: bool) -> TextTranslator:
    fixed = Scripted(answers)
    return TextTranslator(models, loader=lambda _m: fixed, **kwargs)


def failed_whisper(english: str, original: str, language: str = "de") -> Transcript:
    """Whisper's translate task answered in the spoken language (the recognizer says so)."""
    return dataclasses.replace(transcript(english, language, task="translate"), original=original, translated=False)


def test_stage_translates_the_words_as_spoken_when_whispers_translation_failed() -> None:
    models = [opus("de", "en")]
    stage = TranslatorStage(
        scripted(models, {GERMAN[1]: ENGLISH[1]}, whisper_translate_available=True, prefer_whisper=True), Languages(None, "en")
    )
    assert stage.recognizer_task("de") == "translate"
    (tr,) = [e for e in stage.feed(failed_whisper("Wir treffen uns morgen am Bahnhof.", GERMAN[1])) if isinstance(e, Translation)]
    assert (tr.route, tr.text, tr.translated, tr.source_text) == ("opus-mt-de-en", ENGLISH[1], True, GERMAN[1])


def test_stage_marks_a_failed_whisper_translation_without_a_text_route() -> None:
    stage = TranslatorStage(scripted([], {}, whisper_translate_available=True), Languages(None, "en"))
    events = list(stage.feed(failed_whisper("Wir treffen uns morgen am Bahnhof.", GERMAN[1])))
    (tr,) = [e for e in events if isinstance(e, Translation)]
    assert (tr.route, tr.text, tr.translated, tr.source_text) == ("whisper-translate", "", False, GERMAN[1])
    # A translation Whisper got right still goes through.
    (ok,) = [e for e in stage.feed(transcript(ENGLISH[1], "de", task="translate", uid=2)) if isinstance(e, Translation)]
    assert (ok.text, ok.translated) == (ENGLISH[1], True)


def test_stage_marks_a_models_copy_or_wrong_script_as_not_translated() -> None:
    answers = {GERMAN[0]: "Доброе утро, как дела?", ENGLISH[0]: "Buenos días, ¿cómo estás?"}
    stage = TranslatorStage(scripted([opus("de", "en")], answers), Languages(None, "en"))
    (copied,) = stage.feed(transcript(GERMAN[1], "de"))  # not in the table: copied
    assert (copied.route, copied.text, copied.translated, copied.source_text) == ("opus-mt-de-en", "", False, GERMAN[1])
    (cyrillic,) = stage.feed(transcript(GERMAN[0], "de", uid=2))
    assert (cyrillic.text, cyrillic.translated) == ("", False)
    to_spanish = TranslatorStage(scripted([opus("en", "es")], answers), Languages(None, "es"))
    (spanish,) = to_spanish.feed(transcript(ENGLISH[0], "en"))
    assert (spanish.text, spanish.translated) == ("Buenos días, ¿cómo estás?", True)
