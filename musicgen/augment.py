"""Music Transformer's augmentation of training windows, on token ids (so the token cache is
reused): time-stretch by up to ±5%, transpose by up to ±3 semitones, and optionally the same
notes played louder or softer (velocity shifts)."""

from __future__ import annotations

import numpy as np

from .tokenizer import NOTE_DURATION, NOTE_PITCH, NOTE_VELOCITY, SHIFT, PerformanceTokenizer

STRETCHES = (0.95, 0.975, 1.0, 1.025, 1.05)
TRANSPOSE = 3  # semitones, either way


def transpose(tok: PerformanceTokenizer, ids: np.ndarray, semitones: int) -> np.ndarray | None:
    """Pitch tokens moved by `semitones`; None if a note would leave the piano."""
    if semitones == 0:
        return ids
    is_pitch = tok.kind[ids] == NOTE_PITCH
    moved = ids[is_pitch] + semitones
    if len(moved) and (moved.min() < tok.pitch_ids[0] or moved.max() > tok.pitch_ids[-1]):
        return None
    out = ids.copy()
    out[is_pitch] = moved
    return out


def velocity_table(tok: PerformanceTokenizer, shift: int) -> np.ndarray:
    """id -> id with every velocity moved by `shift` bins, clipped to the bins there are."""
    table = np.arange(tok.vocab_size)
    ids = np.flatnonzero(tok.kind == NOTE_VELOCITY)  # contiguous, in increasing velocity
    table[ids] = ids[np.clip(np.arange(len(ids)) + shift, 0, len(ids) - 1)]
    return table


def stretch_table(tok: PerformanceTokenizer, factor: float) -> np.ndarray:
    """id -> id with shift and duration values scaled by `factor` (nearest grid value).

    Approximate by design: each token is rounded on its own, so the shortest shifts (10 ms)
    do not stretch. It is an augmentation, not an edit of the user's music.
    """
    table = np.arange(tok.vocab_size)
    for kind in (SHIFT, NOTE_DURATION):
        ids = np.flatnonzero(tok.kind == kind)
        values = tok.seconds[ids]
        nearest = np.abs(values[:, None] * factor - values[None, :]).argmin(axis=1)
        table[ids] = ids[nearest]
    return table


class Augmentation:
    """A random stretch, velocity shift (with velocity_shift > 0) and transposition of a
    window, drawn from the caller's generator in that order."""

    def __init__(self, tok: PerformanceTokenizer, velocity_shift: int = 0):
        self.tok = tok
        self.stretches = [stretch_table(tok, f) for f in STRETCHES]
        shifts = range(-velocity_shift, velocity_shift + 1)
        self.velocities = [velocity_table(tok, s) for s in shifts]

    def __call__(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        stretched = self.stretches[rng.integers(len(self.stretches))][ids]
        if len(self.velocities) > 1:  # louder or softer playing of the same notes
            stretched = self.velocities[rng.integers(len(self.velocities))][stretched]
        transposed = transpose(self.tok, stretched, int(rng.integers(-TRANSPOSE, TRANSPOSE + 1)))
        # a transposition that would leave the keyboard: keep this window untransposed
        return stretched if transposed is None else transposed
