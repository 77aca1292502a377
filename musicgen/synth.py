"""FluidSynth rendering of a Performance to a 44.1 kHz stereo WAV with a GM piano."""

from __future__ import annotations

import os
import threading
import wave
from pathlib import Path

import numpy as np

from .errors import InvalidParameterError, SoundfontNotFoundError, SynthUnavailableError
from .midi import OFFSET, ONSET, PITCH, VELOCITY, Performance

SAMPLE_RATE = 44_100
MAX_AUDIO_SECONDS = 600.0
TAIL_SECONDS = 1.5  # let the last notes and the reverb ring out
# The output level, one for every take: FluidSynth renders with headroom (gain 0.6: the
# examples measure -37.5 to -24.0 LUFS, peaks up to -8.8 dBFS), then one fixed gain lifts a
# typical piece to about -16 LUFS and a soft limiter rounds off what would pass LIMIT of full
# scale, never reaching CEILING (no clipping). Per sample and without memory, so streamed
# stretches still add up to the whole take's WAV exactly (`python benchmarks/loudness.py`).
SYNTH_GAIN = 0.6
OUTPUT_GAIN_DB = 14.5
LIMIT, CEILING = 0.5, 0.98
SOUNDFONT_LOCATIONS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
)


def find_soundfont() -> Path:
    """$MUSICGEN_SOUNDFONT, else the first General MIDI soundfont in the usual places."""
    override = os.environ.get("MUSICGEN_SOUNDFONT")
    if override:
        if not Path(override).is_file():
            raise SoundfontNotFoundError(f"MUSICGEN_SOUNDFONT={override} does not exist.")
        return Path(override)
    for candidate in SOUNDFONT_LOCATIONS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise SoundfontNotFoundError(
        "No General MIDI soundfont found: install the Debian package `fluid-soundfont-gm` "
        "(or set MUSICGEN_SOUNDFONT to an .sf2 file)."
    )


class Renderer:
    """Renders performances with one soundfont. Each render gets a fresh synthesizer (~0.15 s):
    FluidSynth's internal block phase and reverb state would otherwise make a render depend on
    the one before, and separate synthesizers let concurrent requests render in parallel."""

    def __init__(self, soundfont: str | Path | None = None, keep_one_ready: bool = False):
        """`keep_one_ready`: load the next synthesizer ahead, in the background, so that a
        stream starts without waiting for the soundfont (~0.2 s; it costs the memory of one
        more loaded soundfont)."""
        try:
            import fluidsynth  # the pyfluidsynth binding; fails without libfluidsynth
        except (ImportError, OSError) as exc:
            raise SynthUnavailableError(
                "Audio needs FluidSynth: install the Debian package `fluidsynth` "
                f"and the Python package `pyfluidsynth` ({exc})."
            ) from None
        self._fluidsynth = fluidsynth
        self.soundfont = Path(soundfont) if soundfont else find_soundfont()
        self._keep_one_ready = keep_one_ready
        self._ready: StreamingSynth | None = None
        self._ready_lock = threading.Lock()
        if keep_one_ready:
            self._load_ahead()

    def render(self, perf: Performance) -> np.ndarray:
        """int16 samples, shape (frames, 2): audio_seconds(perf) of them."""
        check_length(perf)
        with self.stream() as stream:
            return stream.render_until(perf, audio_seconds(perf))

    def stream(self) -> StreamingSynth:
        """A fresh synthesizer (the one loaded ahead, if there is one)."""
        with self._ready_lock:
            synth, self._ready = self._ready, None
        if self._keep_one_ready:
            threading.Thread(target=self._load_ahead, daemon=True).start()
        return synth or StreamingSynth(self._fluidsynth, self.soundfont)

    def _load_ahead(self) -> None:
        synth = StreamingSynth(self._fluidsynth, self.soundfont)
        with self._ready_lock:
            if self._ready is None:
                self._ready, synth = synth, None
        if synth is not None:
            synth.close()

    def render_wav(self, perf: Performance, path: str | Path) -> Path:
        path = Path(path)
        write_wav(self.render(perf), path)
        return path


def output_level(samples: np.ndarray) -> np.ndarray:
    """FluidSynth's samples at the studio's output level, int16 (see OUTPUT_GAIN_DB)."""
    x = samples.astype(np.float32) * (10 ** (OUTPUT_GAIN_DB / 20) / 32768)
    over = np.abs(x) > LIMIT
    room = CEILING - LIMIT
    x[over] = np.sign(x[over]) * (LIMIT + room * np.tanh((np.abs(x[over]) - LIMIT) / room))
    return np.round(x * 32767).astype(np.int16)


def audio_seconds(perf: Performance) -> float:
    """How long a performance's audio is: its notes, then the tail where they ring out."""
    return perf.duration + TAIL_SECONDS


def write_wav(audio: np.ndarray, path: Path) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(np.ascontiguousarray(audio, dtype="<i2").tobytes())


def check_length(perf: Performance) -> None:
    if audio_seconds(perf) > MAX_AUDIO_SECONDS:
        raise InvalidParameterError(
            f"Audio is limited to {MAX_AUDIO_SECONDS / 60:.0f} min "
            f"(this is {audio_seconds(perf) / 60:.1f})."
        )


class StreamingSynth:
    """One synthesizer rendering a performance stretch by stretch, while its notes are still
    being written: render_until(perf, t) plays every event of `perf` before t and returns the
    audio up to t. What comes before t must not change between calls (notes are sampled in time
    order, each with its duration, so everything before the latest onset is settled); then the
    stretches add up to exactly what one render of the whole performance gives: the same events
    at the same sample frames, one voice and reverb state throughout. A context manager: the
    synthesizer is freed at the end."""

    def __init__(self, fluidsynth, soundfont: Path):
        self._synth = fluidsynth.Synth(samplerate=float(SAMPLE_RATE), gain=SYNTH_GAIN)
        font = self._synth.sfload(str(soundfont))
        if font < 0:
            self._synth.delete()
            raise SoundfontNotFoundError(f"FluidSynth could not load {soundfont}.")
        self._synth.program_select(0, font, 0, 0)  # bank 0, program 0: acoustic grand piano
        self.frame = 0  # rendered so far; events before it have been played

    @property
    def seconds(self) -> float:
        return self.frame / SAMPLE_RATE

    def render_until(self, perf: Performance, seconds: float) -> np.ndarray:
        """int16 samples (frames, 2) from where the last call ended up to `seconds`."""
        end = int(round(seconds * SAMPLE_RATE))
        if end <= self.frame:
            return np.zeros((0, 2), dtype=np.int16)
        notes = perf.notes
        # Events (frame, is_on, pitch, velocity), note-offs first at equal times.
        n = len(notes)
        on = np.stack([notes[:, ONSET], np.ones(n), notes[:, PITCH], notes[:, VELOCITY]], 1)
        off = np.stack([notes[:, OFFSET], np.zeros(n), notes[:, PITCH], np.zeros(n)], 1)
        events = np.concatenate([on, off])
        events[:, 0] = np.round(events[:, 0] * SAMPLE_RATE)
        events = events[(events[:, 0] >= self.frame) & (events[:, 0] < end)]
        events = events[np.lexsort((events[:, 1], events[:, 0]))]
        chunks = []
        for frame, is_on, pitch, velocity in events.astype(np.int64).tolist():
            if frame > self.frame:
                chunks.append(self._synth.get_samples(frame - self.frame))
                self.frame = frame
            if is_on:
                self._synth.noteon(0, pitch, velocity)
            else:
                self._synth.noteoff(0, pitch)
        chunks.append(self._synth.get_samples(end - self.frame))
        self.frame = end
        return output_level(np.concatenate(chunks).reshape(-1, 2))

    def close(self) -> None:
        if self._synth is not None:
            self._synth.delete()
            self._synth = None

    def __enter__(self) -> StreamingSynth:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
