"""What the conversation has been in: the session's prior over spoken languages.

Whisper's language detection looks at one utterance and nothing else, so one short phrase can come
out as a neighbouring language (measured on the corpus with base: the third of three pieces of a
Spanish sentence, "y tiene muy poca asistencia", detected as Portuguese at 0.69 against 0.12 for
Spanish, and decoded as Portuguese words; a person listening would have kept hearing Spanish). A
listener weighs what they have been hearing: here each detected probability is multiplied by a
factor that grows with the language's share of the recent utterances, up to ``switch_evidence`` for
the language of all of them. Another language then wins only where Whisper finds it that many times
likelier, which a real switch gives and an ambiguous phrase does not. Measured with base on the
corpus's utterances: the Spanish piece above is 5.6 times; the first utterance of every clip (10
languages) is at least 27 times likelier than any other language of the corpus, so a switch from
one clip's language to the next wins at the default 10; one-word pieces ("two", "three", "ask not")
are 1.4-10 times, too little to flip a session.

Memory fades: each final utterance halves the weight of the ones before, so after a real switch the
new language takes over the prior within an utterance or two.
"""

from __future__ import annotations

from collections.abc import Sequence

MEMORY = 0.5
"""Weight an utterance keeps each time another one is observed."""


class LanguagePrior:
    """Recent spoken languages, and detection weighed by them. One per stream (one speaker or one
    conversation); not thread-safe."""

    def __init__(self, switch_evidence: float) -> None:
        self.switch_evidence = switch_evidence
        self._weights: dict[str, float] = {}

    def observe(self, language: str) -> None:
        """A final utterance was in ``language``."""
        self._weights = {code: weight * MEMORY for code, weight in self._weights.items()}
        self._weights[language] = self._weights.get(language, 0.0) + 1.0

    def factor(self, language: str) -> float:
        """How much the history favours ``language``: 1 (never heard, or no history) to
        ``switch_evidence`` (every recent utterance)."""
        total = sum(self._weights.values())
        if not total:
            return 1.0
        return 1.0 + (self.switch_evidence - 1.0) * self._weights.get(language, 0.0) / total

    def choose(self, scores: Sequence[tuple[str, float]]) -> tuple[str, float]:
        """The language to decode in, from detection's (code, probability) pairs, and its
        detected probability (the evidence, not the weighed score)."""
        return max(scores, key=lambda item: item[1] * self.factor(item[0]))


__all__ = ["MEMORY", "LanguagePrior"]
