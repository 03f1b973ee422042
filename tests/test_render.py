"""What ``translator run`` draws, from fixed inputs: the TUI's panel and history on a captured rich
Console at 80 columns, and the --plain lines. No devices, no clock: the renderables are pure
functions of a snapshot or a record."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console, RenderableType
from rich.text import Text

from translator.audio.duplex import Duplex
from translator.events import (
    Caption,
    Discarded,
    Notice,
    NoticeLevel,
    SpeechChunk,
    SpeechStarted,
    StageFailed,
    Transcript,
    Translation,
)
from translator.live import State
from translator.run import plain, tui
from translator.run.snapshot import SessionInfo, Snapshot
from translator.serve.eventlog import log_event, log_record
from translator.transcript import SrtWriter, UtteranceRecord
from translator.translate_file import describe

INFO = SessionInfo(languages="en → es", microphone="default", speaker="default", duplex=Duplex.HALF, ptt=True, keys=True)
RECORD = UtteranceRecord(
    1,
    0.0,
    2.0,
    "en",
    "She had your dark suit.",
    "es",
    "Tenía tu traje oscuro.",
    "opus-mt-en-es",
    "v",
    0.4,
    0.45,
    0.6,
    (0.3, 0.5),
    0.3,
    0.05,
    1.0,
    False,
)


def render(*items: RenderableType) -> list[str]:
    console = Console(file=io.StringIO(), width=80, force_terminal=False, color_system=None, record=True)
    for item in items:
        console.print(item)
    return [line.rstrip() for line in console.export_text().splitlines()]


def styles(text: Text) -> dict[str, str]:
    """Each styled piece of ``text`` -> its style."""
    return {text.plain[s.start : s.end]: str(s.style) for s in text.spans}


def snap(
    state: State | None = State.LISTENING,
    *,
    level: float = -30.0,
    talking: bool = True,
    stopping: bool = False,
    now: float = 100.0,
) -> Snapshot:
    return Snapshot(state, level, talking, stopping, now)


# --- the TUI ------------------------------------------------------------------------------------


def test_panel_shows_captions_translation_state_meter_latency_and_notices() -> None:
    view = tui.PanelView(
        INFO,
        snap(State.HEARING),
        (
            tui.LiveCaption(language="en", final="She had your dark suit.", translation="Tenía tu traje oscuro.", target="es"),
            tui.LiveCaption("In greasy", "wash water"),
        ),
        RECORD,
        (tui.Note(90.0, "input device 'default' lost (no audio for 1 s); retrying", NoticeLevel.WARNING),),
    )
    assert render(tui.panel(view)) == [
        "╭─ en → es ────────────────────────────────────────────────────────────────────╮",
        "│ en She had your dark suit.                                                   │",
        "│   → es Tenía tu traje oscuro.                                                │",
        "│ In greasy wash water                                                         │",
        "│                                                                              │",
        "│ ● hearing speech                input ████████········  -30 dBFS    TALK     │",
        "│ last #1 en→es: asr 400 ms · mt 450 ms · speech 600 ms · caption lag 0.40 s   │",
        "│ (2 captions)                                                                 │",
        "│ input device 'default' lost (no audio for 1 s); retrying                     │",
        "╰───────────────────────────────────────── q/Ctrl-C stop · hold space to talk ─╯",
    ]


def test_settled_words_are_plain_tentative_words_dim_the_final_text_bold() -> None:
    live, final = tui.caption_lines(
        [tui.LiveCaption("She had", "your dog"), tui.LiveCaption(final="She had your dark suit.", target="en")]
    )
    assert live.plain == "She had your dog" and final.plain == "She had your dark suit."
    assert styles(live) == {"your dog": "dim"}  # "She had" carries no style: settled
    assert styles(final) == {"She had your dark suit.": "bold"}


def test_a_final_text_waits_for_its_translation_and_a_same_language_route_adds_nothing() -> None:
    waiting = tui.caption_lines([tui.LiveCaption(language="en", final="Hello.")])
    assert [t.plain for t in waiting] == ["en Hello.", "  translating…"]
    same = tui.caption_lines([tui.LiveCaption(language="en", final="Hello.", target="en")])
    assert [t.plain for t in same] == ["en Hello."]
    assert [t.plain for t in tui.caption_lines([], "hold space and speak")] == ["hold space and speak"]


def test_info_notices_fade_after_30_s_warnings_stay() -> None:
    notes = (tui.Note(60.0, "fallback voice", NoticeLevel.INFO), tui.Note(60.0, "output failed", NoticeLevel.WARNING))
    early = "\n".join(render(tui.panel(tui.PanelView(INFO, snap(now=89.0), notes=notes))))
    late = "\n".join(render(tui.panel(tui.PanelView(INFO, snap(now=91.0), notes=notes))))
    assert "fallback voice" in early and "output failed" in early
    assert "fallback voice" not in late and "output failed" in late


def test_state_line_follows_the_state_push_to_talk_and_stopping() -> None:
    assert tui.state_line(snap(None), None).plain.startswith("● starting ")
    muted = tui.state_line(snap(State.SPEAKING_MUTED, talking=False), INFO)
    assert muted.plain.startswith("● speaking (microphone muted) ") and muted.plain.endswith(" ptt ")
    assert styles(muted)["speaking (microphone muted)".ljust(28)] == "bold magenta"
    off = tui.state_line(snap(State.LISTENING, talking=False), INFO)
    assert off.plain.startswith("● microphone off (hold space to talk)")
    assert tui.state_line(snap(State.HEARING, stopping=True), INFO).plain.startswith("● stopping (Ctrl-C again: quit now)")
    hint = render(tui.panel(tui.PanelView(INFO, snap(State.LISTENING, talking=False))))[1]
    assert hint == "│ hold space and speak" + " " * 57 + "│"


def test_meter_spans_the_floor_to_full_scale() -> None:
    assert tui.meter(-90.0).plain == "input " + "·" * 16 + "  silent  "
    assert tui.meter(0.0).plain == "input " + "█" * 16 + "    0 dBFS"
    assert styles(tui.meter(-1.0))["█" * 16] == "red"


def test_history_lines_show_the_route_the_words_the_translation_and_an_error() -> None:
    failed = UtteranceRecord(
        2,
        3.0,
        4.0,
        "en",
        "Hello there",
        "es",
        "",
        "",
        "",
        0.3,
        None,
        None,
        (),
        0.2,
        None,
        0.0,
        False,
        error="mt failed: model\nmissing",
    )
    assert render(tui.history(RECORD, "12:00:00"), tui.history(failed, "12:00:05")) == [
        "12:00:00 en→es She had your dark suit.",
        "               → Tenía tu traje oscuro.",
        "12:00:05 en→es Hello there",
        "               error: mt failed: model missing",
    ]
    assert tui.banner(INFO).plain == (
        "translator · en → es · microphone 'default' · speaker 'default' · microphone muted while speaking"
    )


def test_tui_renderer_follows_an_utterance_from_caption_to_history() -> None:
    out = io.StringIO()
    r = tui.TuiRenderer(Console(file=out, width=80, force_terminal=False, color_system=None))
    r.event(SpeechStarted(1, 0.0, 0.0))
    r.event(Caption(1, "She had", "your dog", 1.0, 0.0, 0.3))
    assert r.view().captions == (tui.LiveCaption("She had", "your dog"),)
    r.event(Transcript(1, "She had your dark suit.", "en", 0.9, "transcribe", 0.0, 2.0, 0.0, 0.4, 0.3))
    r.event(Caption(1, "She", "had", 1.5, 0.0, 0.8))  # late: the final text stays
    r.event(
        Translation(1, "She had your dark suit.", "en", "Tenía tu traje oscuro.", "es", "opus-mt-en-es", 0.0, 2.0, 0.0, 0.5, 0.1)
    )
    assert r.view().captions == (
        tui.LiveCaption("She had", "your dog", "en", "She had your dark suit.", "Tenía tu traje oscuro.", "es"),
    )
    r.record(RECORD)
    r.event(SpeechStarted(2, 3.0, 0.0))
    r.event(Discarded(2, 0.0, 0.0))
    r.event(StageFailed("mt", 3, "boom\nat line 2", 0.0))
    assert r.view().captions == () and r.view().last is RECORD
    assert [(n.text, n.level) for n in r.view().notes] == [("#3: mt failed: boom at line 2", NoticeLevel.ERROR)]
    printed = [re.sub(r"^\d\d:\d\d:\d\d", "hh:mm:ss", line.rstrip()) for line in out.getvalue().splitlines()]
    assert printed == [
        "hh:mm:ss en→es She had your dark suit.",
        "               → Tenía tu traje oscuro.",
        "hh:mm:ss #3: mt failed: boom at line 2",
    ]


# --- --plain ------------------------------------------------------------------------------------


def lines(out: io.StringIO) -> list[str]:
    return [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]  # without the time stamp


def test_plain_lines_one_per_event() -> None:
    out = io.StringIO()
    r = plain.PlainRenderer(out)
    r.event(Caption(1, "She had", "your dog", 1.0, 0.0, 0.3))
    r.event(Caption(1, "She had", "your dog", 1.5, 0.0, 0.8))  # unchanged text: no line
    r.event(Transcript(1, "She had your dark suit.", "en", 0.9, "transcribe", 0.0, 2.0, 0.0, 0.4, 0.3))
    r.event(SpeechChunk(1, np.zeros(10, np.float32), 22050, 0, "x", 0.0, 0.6, "en_US-joe-medium"))
    r.event(SpeechChunk(1, np.zeros(10, np.float32), 22050, 1, "y", 0.0, 0.7, "en_US-joe-medium"))  # not the first: no line
    r.event(Notice("no Piper voice for es installed", 0.0, NoticeLevel.WARNING))
    r.record(RECORD)
    assert lines(out) == [
        "#1 caption: She had your dog  (stable: She had)",
        "#1 heard (en): She had your dark suit.",
        "#1 speaking (en_US-joe-medium)",
        "warning: no Piper voice for es installed",
        "#1 done (en → es): asr 400 ms · mt 450 ms · speech 600 ms · caption lag 0.40 s (2 captions)",
    ]


def test_plain_lines_keep_what_was_said_whole_and_cut_messages() -> None:
    long = "word " * 100
    said = plain.event_line(Transcript(1, long, "en", 0.9, "transcribe", 0.0, 2.0, 0.0, 0.4, 0.3))
    assert said == "#1 heard (en): " + long.strip()
    failed = plain.event_line(StageFailed("asr", 1, "x" * 1000, 0.0))
    assert failed is not None and len(failed) < 400 and failed.endswith("…")
    spoken = Transcript(1, "She had your dark suit.", "en", 0.9, "translate", 0.0, 2.0, 0.0, 0.4, 0.3, original="Ella tenía")
    assert plain.event_line(spoken) == "#1 heard (en): Ella tenía"
    assert plain.event_line(Translation(1, "a", "en", "a", "en", "same", 0.0, 1.0, 0.0, 0.1, 0.0)) is None


def test_plain_ready_line_and_state_changes() -> None:
    assert plain.ready_line(INFO) == (
        "ready: en → es; microphone 'default'; speaking on 'default'; microphone muted while "
        "speaking; hold space to talk; Ctrl-C to stop"
    )
    out = io.StringIO()
    r = plain.PlainRenderer(out)
    for state, talking in [
        (State.LISTENING, True),
        (State.SPEAKING_MUTED, True),
        (State.SPEAKING_MUTED, True),
        (State.LISTENING, False),
        (State.HEARING, True),
    ]:
        r.tick(snap(state, talking=talking))
    assert lines(out) == [
        "microphone muted while speaking",
        "microphone open",
        "push-to-talk: microphone off",
        "push-to-talk: talking",
    ]


def test_jsonl_writes_records_on_stdout_and_notices_on_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    r = plain.JsonlRenderer(out, err)
    r.event(Caption(1, "She had", "your dog", 1.0, 0.0, 0.3))
    r.event(Notice("audio output 'default' failed", 0.0, NoticeLevel.WARNING))
    r.record(RECORD)
    assert out.getvalue() == RECORD.to_json() + "\n"
    assert lines(err) == ["warning: audio output 'default' failed"]


# --- an utterance without a translation -----------------------------------------------------------

SPOKEN = "Mi número favorito es 3061."
UNTRANSLATED = Translation(4, SPOKEN, "es", "", "en", "whisper-translate", 0.0, 2.0, 0.0, 0.5, 0.0, translated=False)
UNTRANSLATED_RECORD = dataclasses.replace(
    RECORD,
    utterance_id=4,
    language="es",
    source_text=SPOKEN,
    target_language="en",
    text="",
    route="whisper-translate",
    voice="",
    speech_to_speech=None,
    language_probability=1.0,
    translated=False,
)


def test_an_untranslated_utterance_shows_its_source_words_marked_in_the_tui() -> None:
    live = tui.caption_lines([tui.LiveCaption(language="es", final=SPOKEN, target="en", translated=False)])
    assert [t.plain for t in live] == [f"es {SPOKEN}", "  → en not translated"]
    assert live[1].style == "yellow"
    assert render(tui.history(UNTRANSLATED_RECORD, "12:00:00")) == [
        f"12:00:00 es→en {SPOKEN}",
        "               → not translated",
    ]
    r = tui.TuiRenderer(Console(file=io.StringIO(), width=80, force_terminal=False, color_system=None))
    r.event(Transcript(4, "Minumero favorito, S6, S61", "es", 1.0, "translate", 0.0, 2.0, 0.0, 0.4, 0.3, original=SPOKEN))
    r.event(UNTRANSLATED)
    assert r.view().captions == (tui.LiveCaption(language="es", final=SPOKEN, target="en", translated=False),)


def test_an_untranslated_utterance_shows_its_source_words_marked_in_plain_lines() -> None:
    assert plain.event_line(UNTRANSLATED) == f"#4 not translated (es → en, whisper-translate): {SPOKEN}"
    assert (
        plain.record_line(UNTRANSLATED_RECORD)
        == "#4 done (es → en): asr 400 ms · mt 450 ms · caption lag 0.40 s (2 captions) · not translated"
    )
    assert plain.record_line(RECORD).endswith("(2 captions)")


def test_a_translation_talked_over_is_marked_in_the_tui_plain_lines_the_journal_and_the_transcript(
    caplog: pytest.LogCaptureFixture,
) -> None:
    over = dataclasses.replace(RECORD, interrupted=True)
    assert render(tui.history(over, "12:00:00")) == [
        "12:00:00 en→es She had your dark suit.",
        "               → Tenía tu traje oscuro.",
        "               → talked over",
    ]
    assert plain.record_line(over).endswith("(2 captions) · talked over")
    with caplog.at_level(logging.INFO):
        log_record(over)
    assert caplog.messages[-1].endswith("; talked over")
    assert json.loads(over.to_json())["interrupted"] is True and json.loads(RECORD.to_json())["interrupted"] is False


def test_an_untranslated_utterance_in_the_translate_command_the_transcript_the_subtitles_and_the_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    printed = describe(UNTRANSLATED_RECORD).splitlines()
    assert printed[1:3] == [f"  {SPOKEN}", "  [yellow]→ not translated[/yellow]"]
    assert "→ Tenía tu traje oscuro." in describe(RECORD)
    line = json.loads(UNTRANSLATED_RECORD.to_json())
    assert (line["translated"], line["text"], line["source_text"], line["language_probability"]) == (False, "", SPOKEN, 1.0)
    assert json.loads(RECORD.to_json())["translated"] is True
    with SrtWriter(tmp_path / "t.srt") as srt:
        srt.write(RECORD)
        srt.write(UNTRANSLATED_RECORD)
    cues = (tmp_path / "t.srt").read_text(encoding="utf-8").split("\n\n")
    assert cues[0].splitlines()[2] == "Tenía tu traje oscuro."
    assert cues[1].splitlines()[0] == "2" and cues[1].splitlines()[2] == f"[not translated] {SPOKEN}"
    with caplog.at_level(logging.INFO, logger="translator.service"):
        log_event(UNTRANSLATED)
        log_event(Translation(5, "She had", "en", "Tenía", "es", "opus-mt-en-es", 0.0, 1.0, 0.0, 0.1, 0.0))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            f"utterance 4: not translated (es->en, whisper-translate came back in es), nothing spoken: {SPOKEN}",
        ),
        (logging.INFO, "utterance 5: translated (es, opus-mt-en-es) Tenía"),
    ]
