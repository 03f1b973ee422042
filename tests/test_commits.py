"""Sentence commits: continuous speech ends an utterance at a pause that ends a sentence.

The rule and the answers' hand-over are unit-tested; the segmenter's side runs the real Silero
model on real recordings joined with short gaps (shorter than the endpoint), answered by hand;
the whole path runs through `translator translate` with tiny.en on the same kind of talk.
"""

from __future__ import annotations

import json
import re
import threading
import wave
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from conftest import clip
from test_vad import SR, blocks, of, sample, silence

from translator.audio.files import FileSource
from translator.audio.samples import speech_span
from translator.bench.scoring import wer
from translator.cli import main
from translator.commits import ANSWER_LIMIT, KEEP, Verdicts, before_mark, ends_sentence, goes_on_with_a_mark
from translator.config import AsrSettings, VadSettings
from translator.events import PauseFollowed, SpeechGrowing, SpeechPaused, SpeechStarted, UtteranceEnded
from translator.speculation import Confirm, Retract
from translator.stages.asr import RecognizerStage
from translator.stages.recognizer import WhisperRecognizer
from translator.stages.vad import Segmenter

GAP = 0.2
"""Seconds between the sentences of the talks here: a breath, shorter than the 0.4 s endpoint."""
TINY = AsrSettings(model="tiny.en")
TALK = ("en/picovoice_leopard_test.wav", "en/LJ050-0131.wav", "en/LDC93S1.wav")


@pytest.mark.parametrize(
    ("text", "seconds", "expected"),
    [
        ("and we are glad to welcome his gospel.", 5.0, True),
        ("Is it?", 2.0, True),
        ("He said 'no.'", 3.0, True),
        ("我们走吧。", 3.0, True),
        ("and we are glad to welcome his gospel.", 1.9, False),  # shorter than the minimum
        ("unless a system is established for", 6.0, False),
        ("ask not what your country can do for you,", 4.9, False),  # a clause, not yet long
        ("ask not what your country can do for you,", 5.0, True),
        ("", 5.0, False),
    ],
)
def test_a_pause_may_end_a_sentence_or_a_long_clause(text: str, seconds: float, expected: bool) -> None:
    assert ends_sentence(text, seconds, 2.0) is expected


def test_the_decoder_is_given_the_words_without_their_final_mark() -> None:
    assert before_mark("and we are glad to welcome his gospel.") == "and we are glad to welcome his gospel"
    assert before_mark("He said 'no.' ") == "He said 'no"
    assert before_mark("我们走吧。") == "我们走吧"


@pytest.mark.parametrize(
    ("following", "ended"),
    [(".", True), (". Unless", True), (", the", True), ("。", True), ("for the", False), ("of activity", False), ("", False)],
)
def test_a_mark_after_the_words_ends_the_sentence_a_word_does_not(following: str, ended: bool) -> None:
    assert goes_on_with_a_mark(following) is ended


def test_commits_are_off_at_zero() -> None:
    assert not ends_sentence("A whole sentence.", 10.0, 0.0)


def test_an_answer_is_taken_once_and_a_waiting_segmenter_gets_it_from_another_thread() -> None:
    verdicts = Verdicts(wait=True)
    assert verdicts.take((1, 2.0), block=False) is None
    verdicts.answer((1, 2.0), True)
    assert verdicts.take((1, 2.0), block=False) is True
    assert verdicts.take((1, 2.0), block=False) is None
    threading.Timer(0.05, verdicts.answer, ((2, 3.0), False)).start()
    assert verdicts.take((2, 3.0), block=True) is False
    # A live source never waits, asked to block or not.
    assert Verdicts(wait=False).take((3, 1.0), block=True) is None


def test_a_question_is_considered_until_it_is_answered() -> None:
    verdicts = Verdicts(wait=False)
    assert not verdicts.considering((1, 2.0))
    verdicts.consider((1, 2.0))
    assert verdicts.considering((1, 2.0))
    verdicts.answer((1, 2.0), True)
    assert not verdicts.considering((1, 2.0)) and verdicts.take((1, 2.0), block=False) is True


def test_answers_nobody_takes_are_forgotten() -> None:
    verdicts = Verdicts(wait=False)
    for i in range(KEEP + 10):
        verdicts.answer((i, 0.0), True)
    assert verdicts.take((0, 0.0), block=False) is None
    assert verdicts.take((KEEP + 9, 0.0), block=False) is True


def trimmed(name: str) -> np.ndarray:
    """A corpus clip at 16 kHz (resampled as the app reads it), its leading and trailing silence cut."""
    x = np.concatenate([b.samples for b in FileSource(clip(name).path)])
    a, b = speech_span(x)
    return x[a:b]


def talk(names: tuple[str, ...] = TALK, gap: float = GAP) -> tuple[np.ndarray, list[int]]:
    """The clips with their silences trimmed, ``gap`` apart, and the sample where each ends."""
    pieces, ends, at = [silence(0.5)], [], len(silence(0.5))
    for name in names:
        speech = trimmed(name)
        pieces += [speech, silence(gap)]
        at += len(speech)
        ends.append(at)
        at += len(silence(gap))
    pieces.append(silence(1.0))
    return np.concatenate(pieces), ends


def at(ends: list[int]) -> Callable[[PauseFollowed], bool]:
    """Answers yes to a pause where a clip of the talk ends, as the recognizer would."""
    return lambda e: min(abs(sample(e.t_end) - end) for end in ends) < 0.15 * SR


def segment(x: np.ndarray, answer: Callable[[PauseFollowed], bool], *, wait: bool = True, size: int = 1000) -> list:
    """Feed ``x``, answering every PauseFollowed by ``answer`` as soon as ``feed`` returns it."""
    verdicts = Verdicts(wait=wait)
    seg = Segmenter(verdicts=verdicts)
    events = []
    for block in blocks(x, size):
        out = list(seg.feed(block))
        for e in out:
            if isinstance(e, PauseFollowed):
                verdicts.answer((e.utterance_id, e.t_end), answer(e))
        events += out
    return events + list(seg.flush())


def test_a_committed_pause_ends_the_utterance_with_its_audio_and_the_rest_goes_on() -> None:
    x, ends = talk(TALK[:2])
    events = segment(x, at(ends))
    ended = of(events, UtteranceEnded)
    ids = list(range(1, len(ended) + 1))
    assert [e.utterance_id for e in of(events, SpeechStarted)] == [e.utterance_id for e in ended] == ids
    first, second = ended[:2]
    assert first.committed and not any(e.committed for e in ended[1:])  # LJ050 has an endpoint of its own
    # The very audio of the pause the answer was about, so the recognizer's speculation stands.
    paused = [p for p in of(events, SpeechPaused) if p.utterance_id == 1 and p.t_end == first.t_end]
    assert len(paused) == 1 and first.audio is paused[0].audio
    assert abs(sample(first.t_end) - ends[0]) < 0.1 * SR
    # The next utterance takes up exactly where the first one's audio stopped: no sample lost or repeated.
    a, b = sample(first.start), sample(second.start)
    assert b == a + len(first.audio)
    np.testing.assert_array_equal(second.audio, x[b : b + len(second.audio)])
    assert sample(ended[-1].t_end) >= ends[-1] - 0.1 * SR
    # Nothing of utterance 1 after its pause was asked about: its snapshots stop there.
    asked = [e for e in events if isinstance(e, PauseFollowed)][0]
    later = events[events.index(asked) + 1 :]
    assert not [g for g in later if isinstance(g, SpeechGrowing) and g.utterance_id == 1]


def test_a_short_word_before_the_next_pause_asks_at_that_pause_and_holds_it() -> None:
    """ "... his gospel. One, two, three": "one" is over before 0.4 s of speech, so the question
    comes at the pause after it, and that pause waits for the answer."""
    x, ends = talk(("en/picovoice_leopard_test.wav", "en/uberi_english.wav"))
    events = segment(x, at(ends))
    asked = next(e for e in of(events, PauseFollowed) if abs(sample(e.t_end) - ends[0]) < 0.15 * SR)
    after = events[events.index(asked) + 1 :]
    first = of(events, UtteranceEnded)[0]
    assert first.committed and first.t_end == asked.t_end
    # Nothing of utterance 1 came between the question and its answer: no pause, no snapshot.
    assert after[0] is first
    # The question came at the pause after "one" (its audio reaches that pause), not 0.4 s into it.
    one = of(events, UtteranceEnded)[1]
    assert sample(asked.start) + len(asked.audio) >= sample(one.t_end) + VadSettings().pause * SR


def test_a_live_source_holds_the_endpoint_for_a_question_being_worked_on() -> None:
    """After "... gospel. One" the silence reaches the endpoint while the recognizer is still on the
    question: a live source waits for its answer (up to ANSWER_LIMIT) rather than end the utterance
    with "One" in it, which would only be decoded all again."""
    x, ends = talk(("en/picovoice_leopard_test.wav", "en/uberi_english.wav"))
    verdicts = Verdicts(wait=False)
    seg = Segmenter(verdicts=verdicts)
    events: list = []
    question: PauseFollowed | None = None
    answered = False
    asked_at = 0.0
    for block in blocks(x, 512):
        events += seg.feed(block)
        if question is None:
            question = next(
                (e for e in events if isinstance(e, PauseFollowed) and abs(sample(e.t_end) - ends[0]) < 0.15 * SR), None
            )
            if question is not None:
                verdicts.consider((question.utterance_id, question.t_end))
                asked_at = block.end
        elif not answered and block.end > asked_at + 1.0:  # past the endpoint after "one", within ANSWER_LIMIT
            assert not of(events, UtteranceEnded)
            verdicts.answer((question.utterance_id, question.t_end), True)
            answered = True
    assert answered
    first = of(events, UtteranceEnded)[0]
    assert first.committed and abs(sample(first.t_end) - ends[0]) < 0.15 * SR


def test_a_pause_that_ends_no_sentence_leaves_one_utterance() -> None:
    x, _ = talk(TALK[:2])
    events = segment(x, lambda _: False)
    assert len(of(events, PauseFollowed)) >= 1
    ended = of(events, UtteranceEnded)
    assert ended and not any(e.committed for e in ended)
    assert len(ended) == len(of(segment(x, lambda _: False, wait=False), UtteranceEnded))


def test_the_same_segments_whatever_the_block_size() -> None:
    x, ends = talk(TALK[:2])
    spans = {
        size: [(e.start, e.t_end, len(e.audio)) for e in of(segment(x, at(ends), size=size), UtteranceEnded)]
        for size in (512, 4096)
    }
    assert spans[512] == spans[4096] and len(spans[512]) >= 2


def test_a_live_source_goes_on_until_the_answer_comes_or_is_too_late() -> None:
    """Not waiting, with no answer ever: the utterance goes on as it would without commits: its
    endpoints come as ever, and the pause held for the answer comes once it is too late."""
    x, _ = talk(TALK[:2])
    seg = Segmenter(verdicts=Verdicts(wait=False))
    events = [e for block in blocks(x, 1000) for e in seg.feed(block)] + list(seg.flush())
    assert len(of(events, PauseFollowed)) >= 1
    ended = of(events, UtteranceEnded)
    assert not any(e.committed for e in ended)
    plain = of(segment(x, lambda _: False), UtteranceEnded)
    assert [(e.start, e.t_end) for e in ended] == [(e.start, e.t_end) for e in plain]
    for question in of(events, PauseFollowed):
        later = [e for e in events[events.index(question) + 1 :] if getattr(e, "utterance_id", None) == question.utterance_id]
        resumed = next(e for e in later if isinstance(e, (SpeechGrowing, SpeechPaused, UtteranceEnded)))
        # given up at the endpoint (a pause that ends the utterance), or after ANSWER_LIMIT
        assert isinstance(resumed, SpeechPaused) or getattr(resumed, "end", 0.0) - question.t_end > ANSWER_LIMIT


@pytest.fixture(scope="module")
def tiny() -> WhisperRecognizer:
    return WhisperRecognizer(TINY)


def test_the_recognizer_keeps_a_sentence_end_and_lets_a_breath_go(tiny: WhisperRecognizer) -> None:
    """Segmenter and recognizer stage (tiny.en) in one thread: each question is answered before
    the segmenter goes on. At picovoice's end ("... his gospel.") the speculation stands through the
    resumed speech and is confirmed when the utterance ends there; inside LJ050 ("unless a system
    is established.") the decoder hears "for the" and the speculation is retracted."""
    x, ends = talk(TALK[:2])
    verdicts = Verdicts(wait=True)
    seg = Segmenter(verdicts=verdicts)
    stage = RecognizerStage(tiny, TINY, language="en", provisional=True, verdicts=verdicts)
    out: list[tuple[object, list]] = []
    for block in blocks(x, 1000):
        for e in seg.feed(block):
            out.append((e, list(stage.feed(e))))
    first = next(e for e, _ in out if isinstance(e, UtteranceEnded))
    assert first.committed and abs(sample(first.t_end) - ends[0]) < 0.15 * SR
    paused = next(i for i, (e, _) in enumerate(out) if isinstance(e, SpeechPaused) and e.t_end == first.t_end)
    ended = next(i for i, (e, _) in enumerate(out) if e is first)
    between = [r for _, results in out[paused + 1 : ended] for r in results]
    assert not [r for r in between if isinstance(r, Retract)]
    (confirm,) = out[ended][1]
    assert isinstance(confirm, Confirm) and confirm.key == (1, first.t_end, len(first.audio))
    breath = [(e, r) for e, r in out if isinstance(e, PauseFollowed) and e.utterance_id == 2]
    assert breath and all(isinstance(r[0], Retract) for _, r in breath if r)
    assert not any(u.committed for u, _ in out if isinstance(u, UtteranceEnded) and u.utterance_id == 2)


def test_the_recognizer_holds_a_pause_while_it_decodes_it_and_lets_go_of_one_that_ends_no_sentence(
    tiny: WhisperRecognizer,
) -> None:
    """The question about a pause is answered from the pause's own decode, so the recognizer
    marks it as being worked on from the start of that decode (a live segmenter holds the
    endpoint for it: "... gospel. One" is then cut at "gospel." instead of being decoded all
    again with "one"); a pause whose words end no sentence is answered no at once."""
    verdicts = Verdicts(wait=False)
    held: list[bool] = []

    class Watched:
        """tiny.en, noting whether the pause is held when its decode starts."""

        def recognize(self, audio, *args, **kwargs):  # type: ignore[no-untyped-def]
            held.append(verdicts.considering(pause))
            return tiny.recognize(audio, *args, **kwargs)

        def continuation(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return tiny.continuation(*args, **kwargs)

    stage = RecognizerStage(Watched(), TINY, language="en", verdicts=verdicts)
    gospel = trimmed("en/picovoice_leopard_test.wav")
    pause = (1, len(gospel) / SR)
    list(stage.feed(SpeechPaused(1, gospel, 0.0, pause[1], 0.0, 0.0)))
    assert held == [True] and verdicts.considering(pause)  # "... his gospel.": held for the question
    assert verdicts.take(pause, block=False) is None
    short = gospel[: int(0.8 * SR)]  # under asr.sentence_commit (1 s): it ends no sentence
    pause = (2, len(short) / SR)
    list(stage.feed(SpeechPaused(2, short, 0.0, pause[1], 0.0, 0.0)))
    assert held[-1] is True and not verdicts.considering(pause) and verdicts.take(pause, block=False) is False


def write_wav(path: Path, x: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SR)
        f.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def translate(capsys, wav: Path, out: Path, commit: float, srt: Path | None = None) -> list[dict]:
    argv = ["translate", str(wav), "--asr", "tiny.en", "--from", "en", "--to", "en", "--quiet", "--jsonl", str(out)]
    argv += ["--set", f"asr.sentence_commit={commit}"] + (["--srt", str(srt)] if srt else [])
    assert main(argv) == 0, capsys.readouterr().err
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_a_continuous_talk_comes_out_sentence_by_sentence(tmp_path, capsys) -> None:
    x, ends = talk()
    wav = write_wav(tmp_path / "talk.wav", x)
    srt = tmp_path / "talk.srt"
    whole = translate(capsys, wav, tmp_path / "whole.jsonl", 0)
    segmented = translate(capsys, wav, tmp_path / "segments.jsonl", 2.0, srt)
    reference = " ".join(clip(n).transcript for n in TALK)

    assert any(r["continued"] for r in segmented) and not any(r["continued"] for r in whole)
    assert len(segmented) > len(whole)
    # A segment that ended while the speaker went on ended where a sentence of the talk did,
    # long before the talk's end.
    for r in segmented[:-1]:
        if r["continued"]:
            assert min(abs(r["end"] - e / SR) for e in ends) < 0.15
            assert r["end"] < ends[-1] / SR - 3
    # In order, no word lost or said twice at the seams: the segments read as the whole does.
    assert [r["start"] for r in segmented] == sorted(r["start"] for r in segmented)
    joined = lambda rs: " ".join(r["source_text"] for r in rs)  # noqa: E731
    assert wer(reference, joined(segmented)) <= wer(reference, joined(whole)) + 0.01
    # One subtitle per record, none overlapping the next.
    cues = re.findall(r"(\d\d:\d\d:\d\d,\d\d\d) --> (\d\d:\d\d:\d\d,\d\d\d)", srt.read_text(encoding="utf-8"))
    assert len(cues) == len([r for r in segmented if r["text"]])
    for (_, end), (start, _) in pairwise(cues):
        assert end <= start
