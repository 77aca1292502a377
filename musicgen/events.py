"""The event view of the tokens: one row per note, for the two-level model.

The miditok tokens stay the encoding; an event is the same tokens grouped as the piano plays
them. A row has four fields, each a token id of the flat vocabulary:

    shift      the TimeShift before the note, or PAD when the note sounds with the one before
    pitch      the Pitch, or PAD for an event without a note (see below)
    velocity   the Velocity (PAD without a note)
    duration   the Duration (PAD without a note)

A silence longer than one shift is several TimeShift tokens: each but the last is an event of
its own (shift, PAD, PAD, PAD). BOS, EOS and composer tokens are events of their own too, held
in the shift field. tokens -> events -> tokens is the identity on well-formed sequences (whole
Pitch Velocity Duration triples), so the token cache serves both views and the id tables of
the augmentation (transposition, stretch, velocity) apply to events unchanged.
"""

from __future__ import annotations

import numpy as np

from .model import IGNORE
from .tokenizer import (
    COMPOSER,
    NOTE_DURATION,
    NOTE_PITCH,
    NOTE_VELOCITY,
    SHIFT,
    SPECIAL,
    PerformanceTokenizer,
)

FIELDS = 4
SHIFT_FIELD, PITCH_FIELD, VELOCITY_FIELD, DURATION_FIELD = range(FIELDS)


def to_events(tok: PerformanceTokenizer, ids: np.ndarray) -> np.ndarray:
    """Token ids (T,) -> events (E, FIELDS) int64, absent fields PAD."""
    ids = np.asarray(ids, dtype=np.int64)
    kind = np.concatenate([tok.kind[ids], [SPECIAL, SPECIAL]])  # room to look two ahead
    # a note is a whole Pitch Velocity Duration triple (a cut one at the end is dropped)
    note_at = (
        (kind[:-2] == NOTE_PITCH) & (kind[1:-1] == NOTE_VELOCITY) & (kind[2:] == NOTE_DURATION)
    )
    note_at = np.concatenate([note_at, [False, False]])
    is_shift = kind == SHIFT
    is_special = (kind == SPECIAL) | (kind == COMPOSER)
    after_shift = np.concatenate([[False], is_shift[:-1]])
    starts = np.flatnonzero((is_shift | is_special | (note_at & ~after_shift))[: len(ids)])
    events = np.full((len(starts), FIELDS), tok.pad_id, dtype=np.int64)
    events[:, SHIFT_FIELD] = np.where(note_at[starts], tok.pad_id, ids[starts])
    # where the event's note starts: at the event's own token, or right after its shift
    shift_then_note = is_shift[starts] & note_at[starts + 1]
    note = np.where(note_at[starts], starts, np.where(shift_then_note, starts + 1, -1))
    has_note = note >= 0
    for field in (PITCH_FIELD, VELOCITY_FIELD, DURATION_FIELD):
        events[has_note, field] = ids[note[has_note] + field - PITCH_FIELD]
    return events


def to_tokens(tok: PerformanceTokenizer, events: np.ndarray) -> np.ndarray:
    """Events (E, FIELDS) -> token ids: each event's shift (if any), then its note (if any)."""
    events = np.asarray(events, dtype=np.int64).reshape(-1, FIELDS)
    present = events != tok.pad_id
    present[:, VELOCITY_FIELD:] &= present[:, [PITCH_FIELD]]  # no note, no note fields
    return events[present]  # row by row, fields in order


def token_count(tok: PerformanceTokenizer, events: np.ndarray) -> np.ndarray:
    """How many flat tokens each event stands for (0 for padding rows, IGNORE)."""
    events = np.asarray(events)
    real = events[..., SHIFT_FIELD] != IGNORE
    shift = real & (events[..., SHIFT_FIELD] != tok.pad_id)
    note = real & (events[..., PITCH_FIELD] != tok.pad_id)
    return shift.astype(np.int64) + 3 * note
