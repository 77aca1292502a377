"""MIDI in and out: any MIDI file becomes one solo-piano `Performance` (notes in seconds).

Untrusted bytes are checked structurally first, then parsed by the native parser in a child
process (`musicgen.midi_worker`) so that a crash or a runaway allocation in the parser cannot take
the server down. Trusted files (the training data) are parsed in-process.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import symusic

from .errors import InvalidMidiError, InvalidParameterError, check_number

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 4 * 1024 * 1024  # MAESTRO's largest file is ~0.6 MB
MAX_TRACKS = 512
MAX_NOTES = 60_000  # MAESTRO's longest performance has ~26k notes
MAX_FILE_SECONDS = 3600.0  # the longest MIDI file accepted
PARSE_TIMEOUT_S = 10.0
PROMPT_SECONDS = 30.0  # the default prompt window: this much before its end
PIANO_LOW, PIANO_HIGH = 21, 108  # A0..C8
# MAESTRO's files have no real beat grid: they are written at a nominal 120 qpm, a beat 0.5 s.
QPM = 120.0
BEAT_SECONDS = 60.0 / QPM
# Columns of Performance.notes
ONSET, OFFSET, PITCH, VELOCITY = range(4)


@dataclass(frozen=True)
class Performance:
    """Solo piano notes, sorted by onset: float64 (N, 4) = onset s, offset s, pitch, velocity."""

    notes: np.ndarray
    warnings: tuple[str, ...] = field(default=())

    @property
    def duration(self) -> float:
        return float(self.notes[:, OFFSET].max()) if len(self.notes) else 0.0

    def __len__(self) -> int:
        return len(self.notes)


def make_performance(notes: np.ndarray, warnings: tuple[str, ...] = ()) -> Performance:
    """Sort notes by (onset, pitch), clamp pitch and velocity to MIDI's range and give every
    note a positive duration."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4).copy()
    notes[:, PITCH] = np.clip(notes[:, PITCH], 0, 127)
    notes[:, VELOCITY] = np.clip(notes[:, VELOCITY], 1, 127)
    notes[:, OFFSET] = np.maximum(notes[:, OFFSET], notes[:, ONSET] + 0.005)
    order = np.lexsort((notes[:, PITCH], notes[:, ONSET]))
    return Performance(notes[order], tuple(warnings))


# ---------------------------------------------------------------------------------------------
# Structural check of the Standard MIDI File container (cheap, pure Python, before any parsing)


def check_midi_bytes(data: bytes, max_bytes: int = MAX_FILE_BYTES) -> None:
    """Raise InvalidMidiError unless `data` looks like a complete Standard MIDI File."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidMidiError("Expected the bytes of a MIDI file.")
    if len(data) == 0:
        raise InvalidMidiError("The file is empty (0 bytes).")
    if len(data) > max_bytes:
        raise InvalidMidiError(
            f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB."
        )
    if data[:4] != b"MThd" or len(data) < 14:
        raise InvalidMidiError("This is not a MIDI file (it does not start with a MIDI header).")
    (header_len,) = struct.unpack(">I", data[4:8])
    if header_len < 6 or 8 + header_len > len(data):
        raise InvalidMidiError("The MIDI header is corrupt (bad header length).")
    fmt, ntracks, division = struct.unpack(">HHH", data[8:14])
    if fmt > 2:
        raise InvalidMidiError(f"Unknown MIDI format {fmt} (expected 0, 1 or 2).")
    if division & 0x8000:
        raise InvalidMidiError("SMPTE-timed MIDI files are not supported; save it with PPQ timing.")
    if division == 0:
        raise InvalidMidiError("The MIDI header has zero ticks per quarter note.")
    if ntracks == 0 or ntracks > MAX_TRACKS:
        raise InvalidMidiError(f"The file declares {ntracks} tracks (1 to {MAX_TRACKS} accepted).")
    pos, found = 8 + header_len, 0
    while pos + 8 <= len(data) and found < ntracks:
        kind = data[pos : pos + 4]
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        if pos + 8 + length > len(data):
            raise InvalidMidiError("The MIDI file is truncated or has a corrupt chunk length.")
        found += kind == b"MTrk"
        pos += 8 + length
    if found == 0:
        raise InvalidMidiError("The MIDI file has no track data.")


# ---------------------------------------------------------------------------------------------
# Parsing and folding to one piano (runs in the worker process for untrusted input)


def fold_pedal(notes: np.ndarray, pedals: np.ndarray) -> np.ndarray:
    """Extend notes released while the sustain pedal is down to the pedal's release.

    `pedals` is (P, 2) = down s, up s. A re-struck pitch still ends the sounding one (as in
    Music Transformer's preprocessing), so durations never overlap on the same key.
    """
    notes = notes.copy()
    if len(pedals) and len(notes):
        pedals = pedals[np.argsort(pedals[:, 0])]
        idx = np.searchsorted(pedals[:, 0], notes[:, OFFSET], side="right") - 1
        held = (idx >= 0) & (notes[:, OFFSET] < pedals[np.maximum(idx, 0), 1])
        notes[held, OFFSET] = pedals[idx[held], 1]
    return end_at_restrike(notes)


def end_at_restrike(notes: np.ndarray) -> np.ndarray:
    """Notes (a copy) each cut at the next onset of the same pitch: a key sounds once at a
    time, and a synthesizer or MIDI file would otherwise let the first note-off silence the
    re-struck note."""
    notes = notes.copy()
    if len(notes) > 1:
        order = np.lexsort((notes[:, ONSET], notes[:, PITCH]))
        sorted_notes = notes[order]
        same = sorted_notes[1:, PITCH] == sorted_notes[:-1, PITCH]
        nxt = np.where(same, sorted_notes[1:, ONSET], np.inf)
        capped = np.minimum(sorted_notes[:-1, OFFSET], np.maximum(nxt, sorted_notes[:-1, ONSET]))
        sorted_notes[:-1, OFFSET] = capped
        notes[order] = sorted_notes
    return notes


def score_to_notes(score: symusic.Score) -> tuple[np.ndarray, list[str]]:
    """All pitched tracks of a score, pedal folded, as (N, 4) notes in seconds; drums dropped."""
    seconds = score.to("second")
    parts, warnings, drum_notes = [], [], 0
    for track in seconds.tracks:
        if track.is_drum:
            drum_notes += track.note_num()
            continue
        if track.note_num() == 0:
            continue
        n = track.notes.numpy()
        onset = n["time"].astype(np.float64)
        notes = np.stack([onset, onset + n["duration"], n["pitch"], n["velocity"]], axis=1).astype(
            np.float64
        )
        p = track.pedals.numpy()
        pedals = np.stack([p["time"], p["time"] + p["duration"]], axis=1).astype(np.float64)
        parts.append(fold_pedal(notes, pedals))
    if drum_notes:
        warnings.append(f"Dropped {drum_notes} drum notes (the model plays piano only).")
    pitched = [p for p in parts if len(p)]
    if len(pitched) > 1:
        warnings.append(f"Merged {len(pitched)} instrument tracks into one piano part.")
    notes = np.concatenate(parts) if parts else np.zeros((0, 4))
    return notes, warnings


def parse_in_process(data: bytes) -> tuple[np.ndarray, list[str]]:
    """Parse MIDI bytes in this process: what the isolated worker runs on untrusted uploads
    (where a crash of the native parser cannot take the server down), and what reading our own
    data set runs directly."""
    try:
        score = symusic.Score.from_midi(bytes(data))
    except Exception as exc:  # the native parser reports malformed files as RuntimeError & co
        raise InvalidMidiError(
            f"The MIDI file is malformed and could not be read ({exc})."
        ) from None
    return score_to_notes(score)


def parse_isolated(data: bytes, timeout: float = PARSE_TIMEOUT_S) -> tuple[np.ndarray, list[str]]:
    """Parse untrusted MIDI bytes in a child process with a timeout and a memory cap."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "musicgen.midi_worker"],
            input=bytes(data),
            capture_output=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise InvalidMidiError(f"Reading the MIDI file took longer than {timeout:.0f} s.") from None
    if proc.returncode == 2:  # the worker's "clean error" exit: message on stderr
        raise InvalidMidiError(proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1])
    if proc.returncode != 0:
        log.warning("MIDI worker died with code %s", proc.returncode)
        raise InvalidMidiError("The MIDI file is malformed (the MIDI parser failed on it).")
    with np.load(io.BytesIO(proc.stdout), allow_pickle=False) as payload:
        notes = payload["notes"]
        warnings = [str(w) for w in payload["warnings"]]
    return notes, warnings


def read_midi(
    source: str | os.PathLike | bytes,
    *,
    isolate: bool = True,
    max_bytes: int = MAX_FILE_BYTES,
) -> Performance:
    """Read a MIDI file (path or bytes) as one solo-piano Performance, or raise InvalidMidiError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidMidiError(f"No such file: {path.name}")
        if path.stat().st_size > max_bytes:
            raise InvalidMidiError(
                f"The file is {path.stat().st_size / 1e6:.1f} MB; "
                f"the limit is {max_bytes / 1e6:.0f} MB."
            )
        data = path.read_bytes()
    check_midi_bytes(data, max_bytes)
    notes, warnings = parse_isolated(data) if isolate else parse_in_process(data)
    return validate_notes(notes, warnings)


def validate_notes(notes: np.ndarray, warnings: list[str]) -> Performance:
    """Enforce the limits on a parsed file and fold out-of-range pitches into the piano."""
    if len(notes) == 0:
        raise InvalidMidiError("The MIDI file has no (non-drum) notes.")
    if len(notes) > MAX_NOTES:
        raise InvalidMidiError(f"The file has {len(notes)} notes; the limit is {MAX_NOTES}.")
    if not np.isfinite(notes).all():
        raise InvalidMidiError("The MIDI file has invalid note times.")
    end = float(notes[:, OFFSET].max())
    if end > MAX_FILE_SECONDS:
        raise InvalidMidiError(
            f"The file lasts {end / 60:.0f} min; the limit is {MAX_FILE_SECONDS / 60:.0f} min."
        )
    pitch = notes[:, PITCH]
    outside = (pitch < PIANO_LOW) | (pitch > PIANO_HIGH)
    if outside.any():
        # Octave-fold rather than drop: keeps the line, and an 88-key piano cannot play them.
        low = pitch < PIANO_LOW
        pitch[low] += 12 * np.ceil((PIANO_LOW - pitch[low]) / 12)
        high = pitch > PIANO_HIGH
        pitch[high] -= 12 * np.ceil((pitch[high] - PIANO_HIGH) / 12)
        warnings = [*warnings, f"Moved {int(outside.sum())} notes outside A0-C8 by octaves."]
    return make_performance(notes, tuple(warnings))


# ---------------------------------------------------------------------------------------------
# Windows and writing


def window_bounds(perf: Performance, start: float | None, end: float | None):
    """(start, end) of the prompt window in the file's seconds, defaults resolved: `end` is the
    end of the file and `start` is PROMPT_SECONDS before it, so a long file is continued from its
    end (which is also what building a piece, continuation after continuation, needs)."""
    end = perf.duration if end is None else check_number("prompt end", end)
    start = max(0.0, end - PROMPT_SECONDS) if start is None else check_number("prompt start", start)
    return start, end


def prompt_window(perf: Performance, start: float | None, end: float | None) -> Performance:
    """Notes with onsets in [start, end), moved to start at 0, each with its whole duration.

    Notes still sounding at `end` are not cut there: the model was trained on whole durations,
    and a chord held through the window's end but heard as cut short makes it answer in
    staccato (measured: continuations -34% in median duration, +20% in density)."""
    total = perf.duration
    start, end = window_bounds(perf, start, end)
    if start < 0 or end < 0:
        raise InvalidParameterError("The prompt window's start and end cannot be negative.")
    if end <= start:
        raise InvalidParameterError(
            f"The prompt window ends ({end:g} s) before it starts ({start:g} s): "
            "its end must come after its start."
        )
    if start >= total:
        raise InvalidParameterError(
            f"Prompt start {start:.1f} s is past the end of the file ({total:.1f} s)."
        )
    notes = perf.notes
    keep = (notes[:, ONSET] >= start) & (notes[:, ONSET] < end)
    if not keep.any():
        raise InvalidParameterError(f"No notes start between {start:.1f} s and {end:.1f} s.")
    window = notes[keep].copy()
    window[:, [ONSET, OFFSET]] -= start
    return make_performance(window, perf.warnings)


def merge(first: Performance, second: Performance, offset: float) -> Performance:
    """The notes of both, those of `second` moved later by `offset` seconds; a note of `first`
    still sounding when `second` strikes its key again ends there."""
    shifted = second.notes.copy()
    shifted[:, [ONSET, OFFSET]] += offset
    notes = end_at_restrike(np.concatenate([first.notes, shifted]))
    return make_performance(notes, first.warnings)


TICKS_PER_QUARTER = 480
TICKS_PER_SECOND = round(TICKS_PER_QUARTER / BEAT_SECONDS)  # our files are written at QPM


def to_score(perf: Performance, text: str | None = None) -> symusic.Score:
    """A one-track piano score at 120 qpm (so a beat is 0.5 s, as in MAESTRO)."""
    score = symusic.Score(TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, QPM))
    track = symusic.Track(name="Piano", program=0, is_drum=False)
    ticks = np.round(perf.notes[:, [ONSET, OFFSET]] * TICKS_PER_SECOND).astype(np.int64)
    for (on, off), pitch, vel in zip(
        ticks, perf.notes[:, PITCH].astype(int), perf.notes[:, VELOCITY].astype(int)
    ):
        track.notes.append(symusic.Note(int(on), max(1, int(off - on)), int(pitch), int(vel)))
    score.tracks.append(track)
    if text:
        score.markers.append(symusic.TextMeta(0, text))
    return score


def write_midi(perf: Performance, path: str | os.PathLike, text: str | None = None) -> Path:
    """Write a performance as a standard MIDI file; `text` is stored as a marker meta event."""
    path = Path(path)
    to_score(perf, text).dump_midi(str(path))
    return path


def read_text_meta(path: str | os.PathLike) -> list[str]:
    """The marker texts of a (trusted) MIDI file, e.g. the settings embedded by `write_midi`."""
    score = symusic.Score(str(path))
    return [m.text for m in score.markers]
