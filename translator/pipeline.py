"""Wiring: source -> segmenter -> recognizer -> translator -> speaker -> sink, one thread each.

Stages only know ``feed(event) -> Iterator[Event]``; this module moves events between them through
bounded queues (back-pressure instead of unbounded memory when a stage falls behind) and hands every
event, in the order it was produced, to whoever iterates :meth:`Pipeline.run`. CTranslate2 and
onnxruntime release the GIL, so the stages really overlap.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from translator.audio import AudioSink
from translator.errors import TranslatorError
from translator.events import AudioBlock, Event, Notice, SpeechChunk, StageFailed


GAP_TOLERANCE = 0.002
"""Seconds a block may start after the previous one ended before it counts as a gap."""


class Stage(Protocol):
    def feed(self, event: Any) -> Iterator[Event]: ...


class Segmenting(Protocol):
    def feed(self, block: AudioBlock) -> Iterator[Event]: ...

    def flush(self, wall: float | None = None) -> Iterator[Event]: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class StageSpec:
    """A stage in the chain, the event types it takes, and its name for errors and the UI."""

    name: str
    stage: Stage
    accepts: tuple[type, ...]


class _End:
    """Queue sentinel: the upstream stage has finished."""


_END = _End()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class Pipeline:
    """Runs a segmenter and a chain of stages over an audio source, yielding every event."""

    def __init__(
        self,
        segmenter: Segmenting,
        stages: list[StageSpec],
        *,
        sink: AudioSink | None = None,
        queue_size: int = 32,
    ) -> None:
        self.segmenter = segmenter
        self.stages = stages
        self.sink = sink
        self.queue_size = queue_size
        self._stop = threading.Event()

    def stop(self) -> None:
        """Stop taking audio; the utterance in flight is still finished and delivered."""
        self._stop.set()

    def run(self, source: Iterable[AudioBlock]) -> Iterator[Event]:
        out: queue.Queue[Any] = queue.Queue()
        inboxes: list[queue.Queue[Any]] = [queue.Queue(self.queue_size) for _ in self.stages]
        sink_box: queue.Queue[Any] = queue.Queue(self.queue_size)
        first = inboxes[0] if inboxes else sink_box

        threads = [threading.Thread(target=self._read, args=(source, first, out), name="source", daemon=True)]
        for i, spec in enumerate(self.stages):
            nxt = self.stages[i + 1] if i + 1 < len(self.stages) else None
            target_box = inboxes[i + 1] if nxt else sink_box
            accepts = nxt.accepts if nxt else (SpeechChunk,)
            threads.append(
                threading.Thread(
                    target=self._work,
                    args=(spec, inboxes[i], target_box, accepts, out),
                    name=spec.name,
                    daemon=True,
                )
            )
        threads.append(threading.Thread(target=self._play, args=(sink_box, out), name="sink", daemon=True))
        for t in threads:
            t.start()
        try:
            yield from self._drain(out, len(threads))
        finally:
            self._stop.set()

    def _drain(self, out: queue.Queue[Any], workers: int) -> Iterator[Event]:
        finished = 0
        failure: BaseException | None = None
        while finished < workers:
            item = out.get()
            if item is _END:
                finished += 1
            elif isinstance(item, _Failure):
                failure = failure or item.error
                self._stop.set()
            else:
                yield item
        if failure is not None:
            raise failure

    def _read(self, source: Iterable[AudioBlock], inbox: queue.Queue[Any], out: queue.Queue[Any]) -> None:
        """Source thread: audio in, segment events out; a source error ends the run."""
        try:
            expected: float | None = None
            for block in source:
                if expected is not None and block.start > expected + GAP_TOLERANCE:
                    # Audio is missing (a lost device, dropped samples): what was heard before the
                    # gap is complete, and the segmenter restarts its clock on this block.
                    for event in self.segmenter.flush(block.wall):
                        _emit(event, inbox, out)
                    self.segmenter.reset()
                expected = block.end
                for event in self.segmenter.feed(block):
                    _emit(event, inbox, out)
                if self._stop.is_set():
                    break
            for event in self.segmenter.flush(time.monotonic()):
                _emit(event, inbox, out)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer thread
            out.put(_Failure(e))
        finally:
            inbox.put(_END)
            out.put(_END)

    def _work(
        self,
        spec: StageSpec,
        inbox: queue.Queue[Any],
        outbox: queue.Queue[Any],
        forward: tuple[type, ...],
        out: queue.Queue[Any],
    ) -> None:
        """Stage thread: a failure on one utterance is reported and the stage goes on."""
        try:
            while (item := inbox.get()) is not _END:
                if not isinstance(item, spec.accepts):
                    continue
                try:
                    for event in spec.stage.feed(item):
                        if isinstance(event, forward):
                            outbox.put(event)
                        out.put(event)
                except TranslatorError as e:
                    out.put(StageFailed(spec.name, getattr(item, "utterance_id", 0), str(e), time.monotonic()))
        except BaseException as e:  # noqa: BLE001 - a bug: handed to the consumer thread
            out.put(_Failure(e))
            _discard_until_end(inbox)
        finally:
            outbox.put(_END)
            out.put(_END)

    def _play(self, inbox: queue.Queue[Any], out: queue.Queue[Any]) -> None:
        """Sink thread, so a blocking audio device never stalls synthesis; reports one failure."""
        failed = False
        while (item := inbox.get()) is not _END:
            if self.sink is None or failed or not isinstance(item, SpeechChunk):
                continue
            try:
                self.sink.write(item.samples, item.sample_rate)
            except TranslatorError as e:
                failed = True
                out.put(Notice(f"audio output failed, captions go on: {e}", time.monotonic(), "error"))
        out.put(_END)


def _emit(event: Event, inbox: queue.Queue[Any], out: queue.Queue[Any]) -> None:
    out.put(event)
    inbox.put(event)


def _discard_until_end(inbox: queue.Queue[Any]) -> None:
    """Keep the upstream thread from blocking on a full queue after this stage died."""
    while inbox.get() is not _END:
        pass


def run_collect(pipeline: Pipeline, source: Iterable[AudioBlock], on_event: Callable[[Event], None] | None = None) -> list[Event]:
    """Run to completion and return the events (tests and batch jobs)."""
    events = []
    for event in pipeline.run(source):
        if on_event is not None:
            on_event(event)
        events.append(event)
    return events
