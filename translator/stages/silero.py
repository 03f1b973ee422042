"""Silero VAD: the probability that each 32 ms frame of a stream is speech (the segmenter's ear)."""

from __future__ import annotations

import numpy as np

from translator.whisper_api import vad_session

FRAME = 512
"""Samples per VAD frame (32 ms at 16 kHz): the only size Silero v5/v6 accept at 16 kHz."""
_CONTEXT = 64
"""Samples of the previous frame the model sees in front of each new one."""
_STATE_SHAPE = (1, 1, 128)


class SileroVad:
    """Speech probability for consecutive 32 ms frames of one stream.

    Uses the onnxruntime session faster-whisper has already loaded (one model in memory however
    many segmenters exist). That session runs with a single thread on purpose: a frame costs about
    0.1 ms, and more threads would only compete with ASR for cores. The recurrent state makes an
    instance belong to one stream and one thread at a time; separate instances may run in separate
    threads (onnxruntime's ``run`` is thread-safe).
    """

    def __init__(self) -> None:
        self._session = vad_session()
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next frame is treated as the first."""
        self._h = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._c = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros(_CONTEXT, dtype=np.float32)

    def prob(self, chunk512: np.ndarray) -> float:
        """Probability that ``chunk512`` (the frame following the previous call's) is speech."""
        chunk = np.asarray(chunk512, dtype=np.float32)
        if chunk.shape != (FRAME,):
            raise ValueError(f"Silero VAD needs frames of {FRAME} samples, got shape {chunk.shape}")
        if not chunk.any():
            # Exact digital zeros (a muted source, the half-duplex guard while our speech plays)
            # are no sound at all, and feeding them to the model wears its recurrent state down:
            # after 30 s of zeros the first words of jfk.flac scored 0.43 on average instead of
            # 0.71, so speech was detected late and ended early. The stream starts afresh instead,
            # which also spends no compute while muted.
            self.reset()
            return 0.0
        x = np.concatenate((self._context, chunk))[np.newaxis]
        out, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = chunk[-_CONTEXT:].copy()
        return float(out[0])
