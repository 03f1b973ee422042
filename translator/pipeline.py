"""Wiring: source -> segmenter -> recognizer -> translator -> speaker -> sink, one thread each.

Stages only know ``feed(event) -> Iterator[Event]``; this module moves events between them through
bounded queues (back-pressure instead of unbounded memory when a stage falls behind) and hands every
event, in the order it was produced, to whoever iterates :meth:`Pipeline.run`. CTranslate2 and
onnxruntime release the GIL, so the stages really overlap.

Speculation: a stage may emit an event ahead of its confirmation, wrapped in :class:`Provisional`
(the recognizer does so at a short pause). The stages after it work on the inner event at once and
their outputs travel wrapped with the same key, but nothing wrapped reaches the consumer or the
audio sink until the stage that speculated says :class:`Confirm` (the endpoint came with no new
speech): then everything held is released in order, stamped with the release time, and what is
still being produced flows straight through. :class:`Retract` (speech resumed) drops what was held,
and the stages stop working on the speculation at their next output. So translation and synthesis
run during the endpoint silence, and the first audio can go out the moment the endpoint confirms.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from translator.audio.sinks import AudioSink
from translator.errors import TranslatorError
from translator.events import AudioBlock, Event, Notice, NoticeLevel, SpeechChunk, StageFailed
from translator.scheduler import Scheduler
from translator.speculation import RETRACTED, Confirm, Decisions, Provisional, Retract

GAP_TOLERANCE = 0.002
"""Seconds a block may start after the previous one ended before it counts as a gap."""

POLL_SECONDS = 0.1
"""How often :meth:`Pipeline.run`'s ``poll`` is asked for events when the stages make none."""


class Observer(Protocol):
    """Watches the work of the pipeline's parts without wrapping them (the service's health
    checks, the benchmark's compute spans). Called on the worker threads: keep it cheap.

    ``part`` is ``"vad"`` (the segmenter, per audio block), a stage's name, or ``"sink"`` (one
    speech chunk written); ``item`` is the input being worked on.
    """

    def begin(self, part: str, item: Any) -> None:
        """``part`` starts on ``item``."""

    def step(self, part: str, item: Any, start: float, end: float) -> None:
        """``part`` spent ``start``..``end`` (monotonic) computing one output for ``item`` (or
        its last stretch, which ends with no output)."""

    def end(self, part: str, item: Any) -> None:
        """``part`` is done with ``item``."""


T = TypeVar("T")


class _Observed:
    """All observers as one; a pipeline with none pays a single ``if`` per step."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    def __bool__(self) -> bool:
        return bool(self.observers)

    def begin(self, part: str, item: Any) -> None:
        for o in self.observers:
            o.begin(part, item)

    def step(self, part: str, item: Any, start: float, end: float) -> None:
        for o in self.observers:
            o.step(part, item, start, end)

    def end(self, part: str, item: Any) -> None:
        for o in self.observers:
            o.end(part, item)

    def call(self, part: str, item: Any, work: Callable[[], T]) -> T:
        """``work()`` as one step of ``part`` on ``item`` (the segmenter on a block, the sink on a
        chunk), begun, timed and ended for every observer."""
        if not self.observers:
            return work()
        self.begin(part, item)
        t0 = time.monotonic()
        try:
            return work()
        finally:
            self.step(part, item, t0, time.monotonic())
            self.end(part, item)


StageOutput = Event | Provisional | Confirm | Retract
"""What a stage yields: events, and the speculation's wrapped events and decisions."""


class Stage(Protocol):
    def feed(self, event: Any) -> Iterator[StageOutput]: ...


class Segmenting(Protocol):
    def feed(self, block: AudioBlock) -> Iterator[Event]: ...

    def flush(self, wall: float | None = None) -> Iterator[Event]: ...

    def reset(self) -> None: ...


SegmenterT = TypeVar("SegmenterT", bound=Segmenting)


@dataclass(frozen=True)
class StageSpec:
    """A stage in the chain, the event types it takes, and its name for errors and the UI."""

    name: str
    stage: Stage
    accepts: tuple[type, ...]
    superseded: tuple[type, ...] = ()
    """Event types not worth handling once a later event of the same utterance is waiting behind
    them (a caption snapshot when newer audio or the pause has arrived): skipped, so a stage that
    falls behind catches up instead of delaying the final result."""


def _released(event: Any) -> Any:
    """A held event as it goes out: its ``wall`` is when it is released, not when it was made."""
    wall = getattr(event, "wall", None)
    if wall is None:
        return event
    now = time.monotonic()
    return replace(event, wall=now) if now > wall else event


class _End:
    """Queue sentinel: the upstream stage has finished."""


_END = _End()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


class Pipeline(Generic[SegmenterT]):
    """Runs a segmenter and a chain of stages over an audio source, yielding every event.

    Generic in the segmenter, so whoever built the pipeline can read that segmenter's own state
    (the live session shows the VAD's input level and whether someone is speaking).
    """

    def __init__(
        self,
        segmenter: SegmenterT,
        stages: list[StageSpec],
        *,
        sink: AudioSink | None = None,
        queue_size: int = 32,
        observers: list[Observer] | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.segmenter = segmenter
        self.stages = stages
        self.sink = sink
        self.queue_size = queue_size
        self.scheduler = scheduler
        """Sees every stage's inbox and work, and decides when captions may run (the recognizer
        asks it); None = captions whenever a snapshot comes."""
        self.observed = _Observed(list(observers or []) + ([scheduler] if scheduler is not None else []))
        self._stop = threading.Event()
        self._decisions = Decisions()
        self._sink_box: queue.Queue[Any] | None = None
        self.superseded = 0
        """Events skipped because a later one of the same utterance was already waiting."""

    def observe(self, observer: Observer) -> None:
        """Add ``observer`` (before :meth:`run`)."""
        self.observed.observers.append(observer)

    def stop(self) -> None:
        """Stop taking audio; the utterance in flight is still finished and delivered."""
        self._stop.set()

    def run(self, source: Iterable[AudioBlock], poll: Callable[[], Iterable[Event]] | None = None) -> Iterator[Event]:
        """The events of a run over ``source``, in order. ``poll`` gives events that come from
        outside the stages (a live session's speech heard to its end): it is asked before each
        event and every :data:`POLL_SECONDS` while there is none, and its events are yielded then."""
        out: queue.Queue[Any] = queue.Queue()
        inboxes: list[queue.Queue[Any]] = [queue.Queue(self.queue_size) for _ in self.stages]
        sink_box: queue.Queue[Any] = queue.Queue(self.queue_size)
        self._sink_box = sink_box
        self._decisions = Decisions()
        first = inboxes[0] if inboxes else sink_box
        if self.scheduler is not None:
            for spec, inbox in zip(self.stages, inboxes, strict=True):
                self.scheduler.attach(spec.name, inbox)

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
            yield from self._drain(out, len(threads), poll)
        finally:
            self._stop.set()

    def _drain(self, out: queue.Queue[Any], workers: int, poll: Callable[[], Iterable[Event]] | None) -> Iterator[Event]:
        finished = 0
        failure: BaseException | None = None
        decisions = Decisions()  # in the order this thread sees them, so releases keep the order
        while finished < workers:
            try:
                item = out.get(timeout=None if poll is None else POLL_SECONDS)
            except queue.Empty:
                item = None
            if poll is not None:
                yield from poll()
            if item is None:
                continue
            if item is _END:
                finished += 1
            elif isinstance(item, _Failure):
                failure = failure or item.error
                self._stop.set()
            elif isinstance(item, (Confirm, Retract)):
                held = decisions.decide(item)
                if isinstance(item, Confirm):
                    for event in held:
                        yield _released(event)
            elif isinstance(item, Provisional):
                event = decisions.admit(item)
                if event is not None:
                    yield _released(event)
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
                for event in self._segment(block):
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

    def _segment(self, block: AudioBlock) -> list[Event]:
        return self.observed.call("vad", block, lambda: list(self.segmenter.feed(block)))

    def _steps(self, spec: StageSpec, item: Any) -> Iterator[Any]:
        """The stage's outputs for ``item``, each step reported to the observers."""
        if not self.observed:
            yield from spec.stage.feed(item)
            return
        observed = self.observed
        observed.begin(spec.name, item)  # before feed(): a stage may block in the call itself
        it: Iterator[Any] | None = None
        try:
            it = iter(spec.stage.feed(item))
            while True:
                t0 = time.monotonic()
                try:
                    event = next(it)
                except StopIteration:
                    observed.step(spec.name, item, t0, time.monotonic())
                    return
                observed.step(spec.name, item, t0, time.monotonic())
                yield event
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
            observed.end(spec.name, item)

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
                if spec.superseded and isinstance(item, spec.superseded) and _newer_waiting(inbox, item):
                    self.superseded += 1
                    continue
                key = None
                if isinstance(item, Provisional):
                    key, item = item.key, item.event
                    if self._decisions.state(key) == RETRACTED:
                        continue
                if not isinstance(item, spec.accepts):
                    continue
                try:
                    steps = self._steps(spec, item)
                    for event in steps:
                        if isinstance(event, (Confirm, Retract)):
                            self._decide(event, out)
                            continue
                        if key is not None and self._decisions.state(key) == RETRACTED:
                            close = getattr(steps, "close", None)
                            if close is not None:
                                close()  # stop synthesising sentences nobody will hear
                            break
                        inner = event.event if isinstance(event, Provisional) else event
                        if key is not None and not isinstance(event, (Provisional, Notice)):
                            event = Provisional(key, event)
                        if isinstance(inner, forward):
                            outbox.put(event)
                        out.put(event)
                except TranslatorError as e:
                    failed = StageFailed(spec.name, getattr(item, "utterance_id", 0), str(e), time.monotonic())
                    out.put(failed if key is None else Provisional(key, failed))
        except BaseException as e:  # noqa: BLE001 - a bug: handed to the consumer thread
            out.put(_Failure(e))
            _discard_until_end(inbox)
        finally:
            outbox.put(_END)
            out.put(_END)

    def _decide(self, decision: Confirm | Retract, out: queue.Queue[Any]) -> None:
        """A stage decided a speculation: tell the stages, the consumer and the sink, in that order."""
        self._decisions.decide(decision)
        out.put(decision)
        if self._sink_box is not None:
            self._sink_box.put(decision)

    def _play(self, inbox: queue.Queue[Any], out: queue.Queue[Any]) -> None:
        """Sink thread, so a blocking audio device never stalls synthesis; reports each failure
        once (the sink raises once per failure, see :class:`~translator.audio.sinks.AudioSink`)."""
        decisions = Decisions()
        while (item := inbox.get()) is not _END:
            if isinstance(item, (Confirm, Retract)):
                held = decisions.decide(item)
                chunks = held if isinstance(item, Confirm) else []
            elif isinstance(item, Provisional):
                event = decisions.admit(item)
                chunks = [] if event is None else [event]
            else:
                chunks = [item]
            for chunk in chunks:
                if self.sink is None or not isinstance(chunk, SpeechChunk):
                    continue
                try:
                    self._write(chunk)
                except TranslatorError as e:
                    out.put(Notice(str(e), time.monotonic(), NoticeLevel.ERROR))
        out.put(_END)

    def _write(self, chunk: SpeechChunk) -> None:
        sink = self.sink
        assert sink is not None
        self.observed.call("sink", chunk, lambda: sink.write(chunk.samples, chunk.sample_rate))


def _emit(event: Event, inbox: queue.Queue[Any], out: queue.Queue[Any]) -> None:
    out.put(event)
    inbox.put(event)


def _newer_waiting(inbox: queue.Queue[Any], item: Any) -> bool:
    """Whether a later event of ``item``'s utterance is already queued behind it."""
    uid = getattr(item, "utterance_id", None)
    with inbox.mutex:
        return any(getattr(getattr(e, "event", e), "utterance_id", None) == uid for e in inbox.queue)


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
