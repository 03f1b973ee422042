"""The language guard on real phrases: what Whisper's translate task and text models return when they
fail (the source language again, another script, a copy) against real translations of them."""

from __future__ import annotations

import threading

import pytest

from translator.stages import langcheck
from translator.stages.langcheck import foreign_script, near_copy, script, wrong_language


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("Minumero favorito, S6, S61", "es"),  # base's translate task on "Mi número favorito es 3061."
        ("Mon chiffre préféré 3061.", "fr"),
        ("Der hinter diesem Portal liegende Raum wurde als Leichenhalle genutzt.", "de"),
        ("Sempre alla radio nacquero anche alcune sue canzoni.", "it"),
        ("Uma raposa velha não consegue aprender nenhum ofício.", "pt"),
    ],
)
def test_the_source_language_in_latin_letters_is_caught_by_the_classifier(text: str, source: str) -> None:
    assert wrong_language(text, expected="en", source=source)


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("Ask not.", "fr"),  # unrestricted, py3langid calls it Frisian
        ("My number is 8, this is my 61.", "es"),
        ("The back of this portal lying in the room was used as a light hall.", "de"),
        ("and that's the dictation number 1.", "fr"),
        ("Always the radio will record some of his songs or better rhythms.", "it"),
        ("Excuse me a minute.", "fr"),  # the corpus's English sentence that reads most like French
    ],
)
def test_real_english_translations_pass(text: str, source: str) -> None:
    assert not wrong_language(text, expected="en", source=source)


def test_another_script_is_wrong_and_the_expected_script_from_another_script_is_right() -> None:
    assert wrong_language("客観的実在の判断的知識が成立するのである。", expected="en", source="ja")
    assert wrong_language("Бедняга. Ребят, на его месте должен быть я.", expected="en", source="ru")
    assert wrong_language("Good news.", expected="ru", source="en", classify=False)
    # Latin letters from Russian or Korean speech are not Russian or Korean, whatever they say.
    assert not wrong_language("Privet, kak dela", expected="en", source="ru")
    assert not wrong_language("He walked to the side of the road.", expected="en", source="ko")
    # A name in its own script inside a translation is a minority of the letters.
    assert not wrong_language("We met Mr. Tanaka (田中) in Osaka yesterday.", expected="en", source="ja")


def test_text_without_letters_is_never_wrong() -> None:
    for text in ("3061.", "1, 2, 3, 4, 5", "…", ""):
        assert not wrong_language(text, expected="en", source="fr")
        assert foreign_script(text, "en") is None


def test_scripts_of_letters() -> None:
    assert [script(c) for c in "aЖλ中あアー한ｱＡ"] == [
        "LATIN",
        "CYRILLIC",
        "GREEK",
        "HAN",
        "KANA",
        "KANA",
        "KANA",
        "HANGUL",
        "KANA",
        "LATIN",
    ]
    assert script("3") is None and script(" ") is None and script("ʼ") is None
    # Japanese is Han and kana: a Japanese translation in kanji alone is in its script.
    assert foreign_script("判断的知識", "ja") is False and foreign_script("判断的知識", "en") is True


def test_a_copy_of_the_input_is_wrong_without_the_classifier() -> None:
    """What a text model does when it cannot translate: its input again, give or take punctuation."""
    assert wrong_language(
        "Wir treffen uns morgen am Bahnhof",
        expected="en",
        source="de",
        original="Wir treffen uns morgen am Bahnhof.",
        classify=False,
    )
    assert not wrong_language(
        "We will meet at the station tomorrow.",
        expected="en",
        source="de",
        original="Wir treffen uns morgen am Bahnhof.",
        classify=False,
    )
    # Close languages share words; a real translation stays below the copy threshold.
    assert not near_copy("O meu número favorito é 3061.", "Mi número favorito es 3061.", "es")
    assert not near_copy("Selena Gomez grew up in Grand Prairie, Texas.", "Selena Gomez crebbe a Grand Prairie, in Texas.", "it")
    # One word the same in both languages is no failure.
    assert not near_copy("Taxi!", "Taxi.", "de")
    assert near_copy("谢谢你们", "谢谢你们。", "zh")


def test_languages_the_classifier_does_not_know_fall_back_to_the_copy_check() -> None:
    """Hawaiian is one of Whisper's languages but not py3langid's."""
    original = "Aloha kakou, pehea oukou"
    assert wrong_language("Aloha kākou, pehea ʻoukou", expected="en", source="haw", original=original)
    assert not wrong_language("Hello everyone, how are you", expected="en", source="haw", original=original)
    assert not wrong_language("Aloha kakou, pehea oukou", expected="en", source="haw")  # nothing to compare with


def test_the_same_language_is_never_wrong() -> None:
    assert not wrong_language("Bonjour à tous.", expected="fr", source="fr")


def test_restrictions_do_not_leak_between_pairs_or_threads() -> None:
    """Each pair classifies among its own two languages, whatever other threads ask meanwhile."""
    langcheck.warm_up()
    phrases = [
        ("Minumero favorito, S6, S61", "es", True),
        ("My number is 8, this is my 61.", "es", False),
        ("Mon chiffre préféré 3061.", "fr", True),
        ("Ask not.", "fr", False),
        ("Der Raum wurde als Leichenhalle genutzt.", "de", True),
    ]
    wrong: list[str] = []

    def work() -> None:
        for _ in range(20):
            for text, source, expected in phrases:
                if wrong_language(text, expected="en", source=source) != expected:
                    wrong.append(text)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    # The shared identifier was never restricted: it still knows every language.
    full = langcheck._classifier()
    assert len(set(full.nb_classes)) > 90
