"""A take heard while it is written: its audio and piano roll, stretch by stretch.

The sampler reports the first candidate's tokens as it goes (Progress.first); `Writing` follows
a request's sampling job and feeds its newest report to the LiveTake. Notes come in time order,
each with its duration, so everything before the latest onset is settled: no later note can
change it. Each settled stretch is rendered at once with one synthesizer for the whole take
(StreamingSynth), so the stretches add up to exactly the take's final WAV. The take's audio
begins with the prompt window, which is settled before the first token: the first stretch is
ready as soon as it is rendered.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .generate import Progress, Sample, continuation_notes
from .midi import ONSET, Performance, merge
from .pianoroll import draw
from .synth import TAIL_SECONDS, Renderer, audio_seconds, write_wav

log = logging.getLogger(__name__)

FIRST_STRETCH_SECONDS = 1.0  # short: it is what the listener waits for
STRETCH_SECONDS = 2.0  # then longer ones: fewer files and messages, the same audio
MAX_STRETCH_SECONDS = 8.0  # what has settled already (the prompt) goes in a few stretches
ROLL_EVERY_S = 1.0  # the growing roll is redrawn at most this often (wall clock)


@dataclass(frozen=True)
class Stretch:
    """A piece of the streamed take's audio: seconds [start, end) of it."""

    index: int
    wav: Path
    start: float
    end: float
    roll: Path | None  # the roll so far, when it was redrawn with this stretch
    final: bool  # the take's last stretch (its audio ends here)


class LiveTake:
    """The streamed take: renders what has settled, writes each stretch as a WAV of its own."""

    def __init__(
        self,
        renderer: Renderer,
        tokenizer,
        window: Performance,
        origin: float,
        target_seconds: float,
        folder: Path,
    ):
        self.tokenizer, self.window, self.origin = tokenizer, window, origin
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.synth = renderer.stream()
        # the roll's time axis: the take's expected length, so it grows from left to right
        self.roll_seconds = origin + target_seconds + TAIL_SECONDS
        self.audio: list[np.ndarray] = []
        self.added = Performance(np.zeros((0, 4)))
        self.settled = origin  # the prompt alone: everything before its last onset
        self._roll_drawn = -np.inf

    @property
    def seconds(self) -> float:
        """How much of the take has been rendered (streamed)."""
        return self.synth.seconds

    def update(self, first: Sample) -> None:
        """Take in the first candidate so far."""
        self.added = continuation_notes(self.tokenizer, self.origin, first.ids)
        # Up to the latest onset (more notes may come at it), as the notes are timed: by the
        # MIDI ticks they decode to, which can round the sum of the shifts.
        if len(self.added):
            self.settled = max(self.origin, float(self.added.notes[:, ONSET].max()))

    def next_stretch(self) -> Stretch | None:
        """The next settled stretch, if it is long enough to send: a short first one (it is
        what the listener waits for), then up to MAX_STRETCH_SECONDS at once."""
        if not self.audio:  # (the prompt is settled: its first second is there at once)
            end = min(FIRST_STRETCH_SECONDS, self.settled)
            if end <= 0:
                return None
        elif self.settled - self.seconds < STRETCH_SECONDS:
            return None
        else:
            end = min(self.settled, self.seconds + MAX_STRETCH_SECONDS)
        return self._render(merge(self.window, self.added, 0.0), end, final=False)

    def finish(self, take: Performance) -> Stretch:
        """The rest of the take (`take`: its final notes, prompt included), its tail ringing."""
        return self._render(take, audio_seconds(take), final=True)

    def whole_audio(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros((0, 2), dtype=np.int16)

    def close(self) -> None:
        self.synth.close()

    def _render(self, notes: Performance, end: float, final: bool) -> Stretch:
        start = self.seconds
        audio = self.synth.render_until(notes, end)
        self.audio.append(audio)
        index = len(self.audio)
        wav = self.folder / f"stream-{index:04d}.wav"
        write_wav(audio, wav)
        roll = None
        now = time.monotonic()
        # (not with the first stretch: it is what the listener waits for)
        if index > 1 and not final and now - self._roll_drawn >= ROLL_EVERY_S:
            self._roll_drawn = now
            roll = self.folder / f"roll-{index:04d}.png"
            draw(self.window, self.added, seconds=max(self.roll_seconds, end)).save(roll)
        return Stretch(index, wav, start, self.seconds, roll, final)


class Writing:
    """A request's takes while they are written: its sampling job (a Future), the job's progress
    reports, and the LiveTake of its first candidate when it is heard while written (`live`,
    else None). The studio's ways of writing music into a piece share it."""

    def __init__(self, live: LiveTake | None, on_progress: Callable[[Progress], None] | None):
        self.live, self.on_progress = live, on_progress
        self.reports: queue.SimpleQueue = queue.SimpleQueue()
        self.latest: Progress | None = None
        self.job: Future | None = None
        self.failure: str | None = None  # what went wrong, when the job failed midway

    def report(self, progress: Progress) -> None:
        """The sampler's progress callback (called on the compute thread)."""
        self.reports.put(progress)
        if self.on_progress is not None:
            self.on_progress(progress)

    def follow(self, submit: Callable[[Callable[[Progress], None]], Future]) -> Iterator[Stretch]:
        """Start the job (`submit(report)`) and yield the live take's stretches until it ends:
        the prompt's first second comes before the model takes the CPU."""
        if self.live is not None and (opening := self.live.next_stretch()) is not None:
            yield opening
        self.job = submit(self.report)
        while True:
            while self.live is not None and (stretch := self.live.next_stretch()) is not None:
                yield stretch
            if self.job.done() and self.reports.empty():
                return
            try:
                latest = self.reports.get(timeout=0.05)
                while not self.reports.empty():  # only the newest matters
                    latest = self.reports.get()
            except queue.Empty:
                continue
            self.latest = latest
            if self.live is not None:
                self.live.update(latest.first)

    def results(self, salvage: Callable[[Sample, float], list]) -> list:
        """The job's result; if it failed after some of the take was heard, what `salvage`
        makes of the first candidate so far and the time heard (and `failure` says why)."""
        try:
            return self.job.result()
        except Exception as exc:
            if self.live is None or self.latest is None:
                raise
            log.exception("generation failed midway")
            heard = self.live.seconds
            self.failure = (
                f"Generation failed after {heard - self.live.origin:.1f} s of music "
                f"({type(exc).__name__}: {exc}); the take keeps what was played."
            )
            return salvage(self.latest.first, heard)

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
