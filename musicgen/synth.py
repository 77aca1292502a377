"""FluidSynth rendering of a Performance to a 44.1 kHz stereo WAV with a GM piano."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from .errors import InvalidParameterError, SoundfontNotFoundError, SynthUnavailableError
from .midi import OFFSET, ONSET, PITCH, VELOCITY, Performance

SAMPLE_RATE = 44_100
MAX_AUDIO_SECONDS = 600.0
TAIL_SECONDS = 1.5  # let the last notes and the reverb ring out
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

    def __init__(self, soundfont: str | Path | None = None):
        try:
            import fluidsynth  # the pyfluidsynth binding; fails without libfluidsynth
        except (ImportError, OSError) as exc:
            raise SynthUnavailableError(
                "Audio needs FluidSynth: install the Debian package `fluidsynth` "
                f"and the Python package `pyfluidsynth` ({exc})."
            ) from None
        self._fluidsynth = fluidsynth
        self.soundfont = Path(soundfont) if soundfont else find_soundfont()

    def render(self, perf: Performance) -> np.ndarray:
        """int16 samples, shape (frames, 2): audio_seconds(perf) of them."""
        end = audio_seconds(perf)
        if end > MAX_AUDIO_SECONDS:
            raise InvalidParameterError(
                f"Audio is limited to {MAX_AUDIO_SECONDS / 60:.0f} min (this is {end / 60:.1f})."
            )
        notes = perf.notes
        # Events (time, is_on, pitch, velocity), note-offs first at equal times.
        n = len(notes)
        on = np.stack([notes[:, ONSET], np.ones(n), notes[:, PITCH], notes[:, VELOCITY]], 1)
        off = np.stack([notes[:, OFFSET], np.zeros(n), notes[:, PITCH], np.zeros(n)], 1)
        events = np.concatenate([on, off])
        events = events[np.lexsort((events[:, 1], events[:, 0]))]
        frames = np.round(events[:, 0] * SAMPLE_RATE).astype(np.int64).tolist()
        synth = self._fluidsynth.Synth(samplerate=float(SAMPLE_RATE), gain=0.6)
        try:
            font = synth.sfload(str(self.soundfont))
            if font < 0:
                raise SoundfontNotFoundError(f"FluidSynth could not load {self.soundfont}.")
            synth.program_select(0, font, 0, 0)  # bank 0, program 0: acoustic grand piano
            chunks, now = [], 0
            for frame, (_, is_on, pitch, velocity) in zip(frames, events.tolist()):
                if frame > now:
                    chunks.append(synth.get_samples(frame - now))
                    now = frame
                if is_on:
                    synth.noteon(0, int(pitch), int(velocity))
                else:
                    synth.noteoff(0, int(pitch))
            total = int(round(end * SAMPLE_RATE))
            if total > now:
                chunks.append(synth.get_samples(total - now))
        finally:
            synth.delete()
        audio = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return audio.astype(np.int16).reshape(-1, 2)

    def render_wav(self, perf: Performance, path: str | Path) -> Path:
        path = Path(path)
        write_wav(self.render(perf), path)
        return path


def audio_seconds(perf: Performance) -> float:
    """How long a performance's audio is: its notes, then the tail where they ring out."""
    return perf.duration + TAIL_SECONDS


def write_wav(audio: np.ndarray, path: Path) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(np.ascontiguousarray(audio, dtype="<i2").tobytes())
