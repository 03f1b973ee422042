"""What a decode may be trusted with: silence, hallucinations and loops, judged on its text and scores.

Whisper always says something. Over silence and noise it says the caption credits of its training
data; on a window too short for the utterance its decoder loops. These checks decide, per decode,
whether to keep it, drop it, or (for a loop) decode again on a longer window. They are pure
functions of the text and faster-whisper's scores, so they are tested without a model.
"""

from __future__ import annotations

import math
import unicodedata

import numpy as np

from translator.config import AsrSettings
from translator.languages import NO_SPACE, joiner
from translator.stages.sentences import split_sentences
from translator.whisper_api import Decoded

SILENCE_DBFS = -60.0
"""Below this RMS the model is not run: digital silence or a muted microphone. Kept far below quiet
speech (a distant talker is around -40 dBFS), so noise is left to the model's own guards."""

_SILENCE_HALLUCINATIONS = frozenset(
    {
        "thank you",
        "thank you very much",
        "thanks for watching",
        "thank you for watching",
        "thanks for watching and see you next time",
        "please subscribe",
        "like and subscribe",
        "subscribe to my channel",
        "bye",
        "bye bye",
        "you",
        "so",
        "oh",
        "uh",
        "um",
        "hmm",
        "the end",
        "vielen dank",
        "danke",
        "danke fürs zuschauen",
        "gracias",
        "gracias por ver",
        "merci",
        "merci davoir regardé cette vidéo",
        "grazie",
        "grazie per la visione",
        "obrigado",
        "спасибо",
        "продолжение следует",
        "ご視聴ありがとうございました",
        "谢谢观看",
        "谢谢",
        "시청해주셔서 감사합니다",
    }
)
"""What Whisper says over silence and noise (caption credits of its training data), lower-cased and
without punctuation. Rejected only on a low-confidence decode: people do say "thank you"."""

_ALWAYS_HALLUCINATED = ("amaraorg", "untertitel im auftrag", "字幕由", "sous-titrage")
"""Subtitle credits nobody says in conversation: rejected whatever the confidence."""

_LOW_CONFIDENCE_NO_SPEECH = 0.15
_LOW_CONFIDENCE_LOGPROB = -0.6


def rms_dbfs(audio: np.ndarray) -> float:
    """Level of ``audio`` in dB below full scale; -inf for digital silence."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


def normalise(text: str) -> str:
    """Lower case, no punctuation or symbols, single spaces: the form hallucinations and caption
    agreement compare."""
    kept = "".join(c for c in text.lower() if not unicodedata.category(c).startswith(("P", "S")))
    return " ".join(kept.split())


def units(text: str, language: str) -> list[str]:
    """Words, or characters for languages written without spaces: what captions agree on."""
    if language in NO_SPACE:
        return [c for c in text if not c.isspace()]
    return text.split()


def join_units(pieces: list[str], language: str) -> str:
    """The inverse of :func:`units`."""
    return joiner(language).join(pieces)


def repeats(text: str, language: str) -> bool:
    """How a short-window decode loops, measured on the corpus: it says a phrase twice in a row
    ("2 2", "and so my fellow americans and so my fellow americans"), or starts over from the
    beginning and is cut by the token cap ("she had your dark suit ... she had your dark ...").
    Both are rare in real speech, and a false alarm only costs a decode on the stock window."""
    found = units(normalise(text), language)
    n = len(found)
    shortest = 2 if language in NO_SPACE else 1  # "谢谢", "妈妈" are words
    for size in range(shortest, n // 2 + 1):
        for i in range(n - 2 * size + 1):
            if found[i : i + size] == found[i + size : i + 2 * size]:
                return True
    # Starting over: from some point on, the text is (all but its last unit or two) a copy of its
    # opening. A phrase that merely comes back ("the opposite of ... the opposite is") is not that.
    least = 4 if language in NO_SPACE else 3
    for i in range(least, n - least + 1):
        tail = found[i:]
        same = 0
        while same < len(tail) and tail[same] == found[same]:
            same += 1
        if same >= least and same >= 0.8 * len(tail):
            return True
    return False


def first_pass(text: str, language: str) -> str | None:
    """The whole sentences a decode said before it started over, when all that follows them is a
    copy of their opening (once or more, the last copy cut short): "Mr. Quilter ... his gospel. Mr.
    Quilter is the apostle of the middle classes, and we are" gives the first sentence. The
    decoder had reached the end of the audio and began reading it again (base, an 8 s window on
    a 5 s sentence: the decode on a 16 s window gave the same sentence, 1.2-2.3 s later). None
    for any other text (a phrase said twice in a row; sentences repeated whole, which a speaker
    may really have said twice): those are left to the retry on a longer window."""
    sentences = split_sentences(text, language)
    least = 4 if language in NO_SPACE else 3
    for k in range(1, len(sentences)):
        head = units(normalise(joiner(language).join(sentences[:k])), language)
        tail = units(normalise(joiner(language).join(sentences[k:])), language)
        if len(head) < least or len(tail) < least:
            continue
        same = 0
        while same < len(tail) and tail[same] == head[same % len(head)]:
            same += 1
        # word for word, and the last copy cut short: a speaker who starts a sentence again says
        # something else in the end ("I think we should. I think we should go"), and a sentence
        # said twice whole may have been said twice
        if same == len(tail) and len(tail) % len(head):
            return joiner(language).join(sentences[:k])
    return None


def looped(decoded: Decoded, token_cap: int, settings: AsrSettings, language: str, task: str) -> bool:
    """A short-window decode that ran into the token cap or repeats itself, over what the model
    takes for speech (a loop over noise is dropped by :func:`plausible`, not worth a second run).
    Whisper's translate-task English repeats phrases of its own ("at the corner of the corner
    of the song"), so there only the token cap and the compression ratio count."""
    return (
        (
            decoded.tokens >= token_cap
            or decoded.compression_ratio > settings.compression_ratio_threshold
            or (task == "transcribe" and repeats(decoded.text, language))
        )
        and decoded.no_speech_prob <= settings.no_speech_threshold
        and bool(normalise(decoded.text))
    )


def plausible(d: Decoded, settings: AsrSettings) -> bool:
    """The hallucination guards: Whisper's own silence rule, repetition, empty text, credits."""
    if d.no_speech_prob > settings.no_speech_threshold and d.avg_logprob < settings.log_prob_threshold:
        return False
    if d.compression_ratio > settings.compression_ratio_threshold:
        return False
    plain = normalise(d.text)
    if not plain or any(marker in plain for marker in _ALWAYS_HALLUCINATED):
        return False
    unsure = d.no_speech_prob > _LOW_CONFIDENCE_NO_SPEECH or d.avg_logprob < _LOW_CONFIDENCE_LOGPROB
    return not (unsure and plain in _SILENCE_HALLUCINATIONS)
