"""What the journal says about each pipeline event and each finished utterance.

One line per event at a fitting priority, so ``journalctl -u translator`` reads as a story of the
utterances and ``-p warning`` shows only problems; captions and speech chunks only with ``-v``.
"""

from __future__ import annotations

import logging

from translator import events as ev
from translator.audio.stream import status_level
from translator.text import ms, one_line
from translator.transcript import INTERRUPTED, NOT_TRANSLATED, UtteranceRecord

log = logging.getLogger("translator.service")

_NOTICE_PRIORITY = {
    ev.NoticeLevel.ERROR: logging.ERROR,
    ev.NoticeLevel.WARNING: logging.WARNING,
    ev.NoticeLevel.INFO: logging.INFO,
}


def log_device_status(message: str) -> None:
    """A microphone's or speaker's status line: a warning when sound is lost."""
    log.log(_NOTICE_PRIORITY[status_level(message)], "%s", one_line(message))


def log_event(event: ev.Event) -> None:
    """One journal line for ``event`` (none for the kinds nobody reads there)."""
    uid = getattr(event, "utterance_id", None)
    if isinstance(event, ev.SpeechStarted):
        log.info("utterance %d: speech started at %.2f s", uid, event.start)
    elif isinstance(event, ev.UtteranceEnded):
        log.info(
            "utterance %d: speech ended at %.2f s (%.1f s%s)",
            uid,
            event.t_end,
            event.t_end - event.start,
            ", cut at the length cap" if event.cut else "",
        )
    elif isinstance(event, ev.Transcript):
        log.info("utterance %d: heard (%s) %s", uid, event.language, one_line(event.text))
    elif isinstance(event, ev.Translation):
        if not event.translated:
            log.warning(
                "utterance %d: %s (%s->%s, %s came back in %s), nothing spoken: %s",
                uid,
                NOT_TRANSLATED,
                event.source_language,
                event.target_language,
                event.route,
                event.source_language,
                one_line(event.source_text),
            )
        elif event.route != "same":
            log.info("utterance %d: translated (%s, %s) %s", uid, event.target_language, event.route, one_line(event.text))
    elif isinstance(event, ev.Discarded):
        log.info("utterance %d: not speech, discarded", uid)
    elif isinstance(event, ev.Notice):
        log.log(_NOTICE_PRIORITY[event.level], "%s", one_line(event.message))
    elif isinstance(event, ev.StageFailed):
        log.error("utterance %d: %s failed: %s", uid, event.stage, one_line(event.message))
    elif isinstance(event, ev.Caption):
        log.debug("utterance %d: caption %s", uid, one_line(f"{event.committed} {event.tentative}"))
    elif isinstance(event, ev.SpeechChunk):
        log.debug(
            "utterance %d: speech chunk %d (%.2f s, %s)", uid, event.index, len(event.samples) / event.sample_rate, event.voice
        )
    elif isinstance(event, ev.SpeechPaused):
        log.debug("utterance %d: pause at %.2f s", uid, event.t_end)


def log_record(record: UtteranceRecord) -> None:
    """The ``utterance N done`` line: languages, audio span and latencies."""
    log.info(
        "utterance %d done: %s->%s [%.2f-%.2f s] asr %s, mt %s, speech %s%s%s",
        record.utterance_id,
        record.language or "?",
        record.target_language or "?",
        record.start,
        record.end,
        ms(record.asr_final),
        ms(record.mt),
        ms(record.speech_to_speech),
        f"; {INTERRUPTED}" if record.interrupted else "",
        f"; error: {one_line(record.error)}" if record.error else "",
    )
