"""WER of speech that overlaps our playback, against the same recording alone, in the simulated room.

Run: ``PYTHONPATH=$PWD:$PWD/tests python3 tests/overlap_bench.py [--runs 2] [--asr tiny.en] [--overlap-only]``.

The room of the live room test (tests/test_live.py: +80 ms, -10 dB, a 50 ms tail, -60 dBFS
noise), ``translator run --to en`` in its default mode on a loudspeaker (aec, barge-in stops).
For each clip and run, twice: *overlap*: LDC93S1 is said, and the clip starts 1 s into its
translation, which plays into the room (and is talked over); *alone*: the clip is said into the
same room with nothing playing (``--no-speak``: a long clip's own translations would otherwise
play over its later sentences). The clip's words are the records after the first (overlap) or all
of them (alone), scored against the manifest; a record that repeats LDC93S1 (WER ≤ 0.5 against
it) is our own voice heard back and counted; and how long after the clip's first speech the
first translation was stopped (its notice). Figures go to stdout; docs/duplex.md keeps the last
ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from conftest import clip
from procs import read_jsonl
from pulse import PulseServer, Room
from test_live import EN, App, _audio, _settled, run_args

from translator.audio.samples import speech_span
from translator.bench import scoring

CLIPS = ("en/LJ050-0131.wav", "en/jfk.16k.wav", "en/picovoice_leopard_test.wav")
ROOM = Room(delay=0.08, gain_db=-10.0)


def one_run(name: str, overlap: bool, asr: str) -> tuple[float, int, float | None]:
    """(WER of the clip's words, records of our own voice, seconds from the clip's first speech
    to the notice that it stopped the translation: None alone, or if it did not) for one run."""
    with tempfile.TemporaryDirectory() as tmp, PulseServer(tmp) as pa:
        transcript = Path(tmp) / "t.jsonl"
        quiet = () if overlap else ("--no-speak",)
        app = App(run_args(transcript, "--to", "en", "--asr", asr, *quiet), {**os.environ, **pa.env})
        other = _audio(name)
        try:
            app.wait_line(r"listening on 'default'", timeout=120)
            with pa.room(ROOM):
                if overlap:
                    pa.feed(_audio(EN))
                    app.wait_line(r"#1 speaking", timeout=60)
                    time.sleep(1.0)  # the translation is playing
                fed = time.monotonic()
                pa.feed(other)
                pa.wait_fed(60)
                app.wait("all utterances settled", lambda: _settled(app), timeout=90)
                time.sleep(4.0)  # the last translations play out into the room
                app.wait("all utterances settled", lambda: _settled(app), timeout=60)
            app.stop()
        finally:
            app.close()
        stopped = app.hits(r"translation (stopped|ducked)", fed) if overlap else []
        speech = fed + speech_span(other)[0] / 16000
        barge = stopped[0][0] - speech if stopped else None
        recs = read_jsonl(transcript)
        rest = recs[1:] if overlap else recs
        own = sum(scoring.wer(clip(EN).transcript, r["source_text"]) <= 0.5 for r in rest)
        return scoring.wer(clip(name).transcript, " ".join(r["source_text"] for r in rest)), own, barge


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--asr", default="tiny.en")
    parser.add_argument("--overlap-only", action="store_true", help="skip the runs alone (they do not depend on barge-in)")
    args = parser.parse_args()
    means: dict[bool, list[float]] = {True: [], False: []}
    for name in CLIPS:
        for overlap in (True,) if args.overlap_only else (False, True):
            wers, owns, barges = zip(*(one_run(name, overlap, args.asr) for _ in range(args.runs)), strict=True)
            means[overlap].append(statistics.mean(wers))
            label = "overlap" if overlap else "alone"
            stops = f"  stopped after {' '.join('-' if b is None else f'{b:.2f}' for b in barges)} s" if overlap else ""
            print(
                f"{name:32} {label:8} WER {' '.join(f'{w:.3f}' for w in wers)}  own-voice records {sum(owns)}{stops}", flush=True
            )
    over = statistics.mean(means[True])
    if not means[False]:
        print(f"mean over {len(CLIPS)} clips x {args.runs} runs: overlap {over:.3f}")
        return
    alone = statistics.mean(means[False])
    print(
        f"mean over {len(CLIPS)} clips x {args.runs} runs: alone {alone:.3f}, overlap {over:.3f}, {100 * (over - alone):+.1f} points"
    )


if __name__ == "__main__":
    main()
