"""The performance encoding: miditok's TSD on a 10 ms grid, plus optional composer tokens.

A note is three tokens, `Pitch Velocity Duration`; `TimeShift` tokens move time forward between
onsets. At MAESTRO's nominal 120 qpm a beat is 0.5 s, so `beat_res={(0, 2): 50}` is a 10 ms grid
up to 1 s. Beyond 1 s the grid coarsens in steps of at most ~2% of the value (long pedalled
durations keep their length within 2%, long silences are several shifts whose sum is exact on the
10 ms grid). Pitches A0-C8, 32 velocity bins.

Composer tokens (`Composer_<name>`) are ids appended after miditok's vocabulary; a sequence may
start with one to ask for that composer's style. The tokenizer's whole configuration, composers
included, is saved as `tokenizer.json` beside each checkpoint and loaded from there.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from miditok import TSD, TokenizerConfig

from .errors import CheckpointError, InvalidParameterError
from .midi import (
    BEAT_SECONDS,
    OFFSET,
    ONSET,
    PIANO_HIGH,
    PIANO_LOW,
    PITCH,
    VELOCITY,
    Performance,
    make_performance,
    to_score,
)

log = logging.getLogger(__name__)

BEAT_RES = {(0, 2): 50, (2, 4): 24, (4, 8): 12, (8, 16): 6, (16, 32): 3}
TOKENIZER_FILE = "tokenizer.json"

# Token kinds (the grammar works on these)
SPECIAL, SHIFT, NOTE_PITCH, NOTE_VELOCITY, NOTE_DURATION, COMPOSER = range(6)
# Grammar states: what may come next
EXPECT_ONSET, EXPECT_VELOCITY, EXPECT_DURATION = range(3)


def default_config() -> TokenizerConfig:
    return TokenizerConfig(
        pitch_range=(PIANO_LOW, PIANO_HIGH + 1),  # miditok's range excludes its end
        beat_res=BEAT_RES,
        num_velocities=32,
        use_velocities=True,
        use_programs=False,
        use_sustain_pedals=False,  # the pedal is folded into durations before tokenizing
        use_tempos=False,
        use_time_signatures=False,
        special_tokens=["PAD", "BOS", "EOS"],
    )


def _time_value_seconds(value: str) -> float:
    """'2.4.24' (beats.positions.resolution) -> seconds at 120 qpm."""
    beats, pos, res = (int(x) for x in value.split("."))
    return (beats + pos / res) * BEAT_SECONDS


class PerformanceTokenizer:
    """Performance <-> token ids, and the tables generation and training need (kinds, grammar,
    seconds per shift token and pitch of each id)."""

    def __init__(self, miditok_tokenizer: TSD, composers: tuple[str, ...] = ()):
        self.inner = miditok_tokenizer
        self.composers = tuple(composers)
        self.base_size = len(miditok_tokenizer.vocab)
        self.vocab_size = self.base_size + len(self.composers)
        self.pad_id = miditok_tokenizer.vocab["PAD_None"]
        self.bos_id = miditok_tokenizer.vocab["BOS_None"]
        self.eos_id = miditok_tokenizer.vocab["EOS_None"]
        self._build_tables()

    # ----- construction and persistence

    @classmethod
    def create(cls, composers: tuple[str, ...] = ()) -> PerformanceTokenizer:
        return cls(TSD(default_config()), composers)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.inner.save(directory, additional_attributes={"composers": list(self.composers)})
        return directory / TOKENIZER_FILE

    @classmethod
    def load(cls, directory: str | Path) -> PerformanceTokenizer:
        path = Path(directory) / TOKENIZER_FILE
        if not path.is_file():
            raise CheckpointError(f"{path} is missing: a checkpoint needs its tokenizer.json.")
        try:
            composers = tuple(json.loads(path.read_text()).get("composers", []))
            inner = TSD(params=path)
        except Exception as exc:
            raise CheckpointError(f"{path} is not a valid tokenizer file: {exc}") from None
        return cls(inner, composers)

    # ----- tables

    def _build_tables(self) -> None:
        names = [None] * self.base_size
        for name, idx in self.inner.vocab.items():
            names[idx] = name
        names += [f"Composer_{c}" for c in self.composers]
        self.names = names
        kind = np.full(self.vocab_size, SPECIAL, dtype=np.int64)
        seconds = np.zeros(self.vocab_size)  # time value of shift and duration tokens
        pitch = np.zeros(self.vocab_size, dtype=np.int64)
        prefixes = {
            "TimeShift": SHIFT,
            "Pitch": NOTE_PITCH,
            "Velocity": NOTE_VELOCITY,
            "Duration": NOTE_DURATION,
            "Composer": COMPOSER,
        }
        for idx, name in enumerate(names):
            prefix, value = name.split("_", 1)
            kind[idx] = prefixes.get(prefix, SPECIAL)
            if prefix in ("TimeShift", "Duration"):
                seconds[idx] = _time_value_seconds(value)
            elif prefix == "Pitch":
                pitch[idx] = int(value)
        self.kind, self.seconds, self.pitch = kind, seconds, pitch
        self.shift_seconds = np.where(kind == SHIFT, seconds, 0.0)
        self.pitch_ids = np.flatnonzero(kind == NOTE_PITCH)
        assert np.all(np.diff(self.pitch_ids) == 1), "pitch tokens must be contiguous"

        # Grammar: a note is Pitch Velocity Duration; shifts only between notes.
        allowed = np.zeros((3, self.vocab_size), dtype=bool)
        allowed[EXPECT_ONSET] = (kind == SHIFT) | (kind == NOTE_PITCH)
        allowed[EXPECT_VELOCITY] = kind == NOTE_VELOCITY
        allowed[EXPECT_DURATION] = kind == NOTE_DURATION
        next_state = np.full(self.vocab_size, EXPECT_ONSET, dtype=np.int64)
        next_state[kind == NOTE_PITCH] = EXPECT_VELOCITY
        next_state[kind == NOTE_VELOCITY] = EXPECT_DURATION
        self.grammar_allowed, self.grammar_next = allowed, next_state

    def composer_id(self, composer: str | None) -> int | None:
        """The style token of a composer (None or blank: no style); unknown ones are an error."""
        if composer is None or composer == "":
            return None
        if composer not in self.composers:
            known = ", ".join(self.composers) or "none (this model has no style tokens)"
            raise InvalidParameterError(f"Unknown composer style '{composer}': known are {known}.")
        return self.base_size + self.composers.index(composer)

    def grammar_state(self, ids: np.ndarray) -> int:
        """The grammar state after a sequence (EXPECT_ONSET for an empty one)."""
        state = EXPECT_ONSET
        for i in np.asarray(ids)[-3:]:  # a note is 3 tokens: the last three decide the state
            state = int(self.grammar_next[i])
        return state

    # ----- encode / decode

    def encode(self, perf: Performance) -> np.ndarray:
        """Token ids (int64) of a performance; no BOS/EOS, no composer."""
        if len(perf) == 0:
            return np.zeros(0, dtype=np.int64)
        seqs = self.inner.encode(to_score(perf))
        seq = seqs[0] if isinstance(seqs, list) else seqs
        return np.asarray(seq.ids, dtype=np.int64)

    def valid_ids(self, ids) -> np.ndarray:
        """Keep only what decodes: shifts and complete Pitch-Velocity-Duration triples."""
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[(ids >= 0) & (ids < self.vocab_size)]
        kinds = self.kind[ids]
        keep = kinds == SHIFT
        n = len(ids)
        starts = np.flatnonzero(kinds[: max(n - 2, 0)] == NOTE_PITCH)
        triple = (kinds[starts + 1] == NOTE_VELOCITY) & (kinds[starts + 2] == NOTE_DURATION)
        for offset in range(3):
            keep[starts[triple] + offset] = True
        return ids[keep]

    def decode(self, ids) -> Performance:
        """A performance from any id sequence; invalid or incomplete parts are skipped."""
        ids = self.valid_ids(ids)
        if not (self.kind[ids] == NOTE_PITCH).any():
            return make_performance(np.zeros((0, 4)))
        score = self.inner.decode([ids.tolist()])
        seconds = score.to("second")
        n = seconds.tracks[0].notes.numpy()
        notes = np.zeros((len(n["time"]), 4))
        notes[:, ONSET] = n["time"]
        notes[:, OFFSET] = n["time"] + n["duration"]
        notes[:, PITCH] = n["pitch"]
        notes[:, VELOCITY] = n["velocity"]
        return make_performance(notes)

    def densest_onset(self, ids) -> int:
        """The most notes struck at one onset (between two time shifts) of a sequence."""
        ids = np.asarray(ids, dtype=np.int64)
        onset = np.cumsum(self.shift_seconds[ids] > 0)  # onset number of every token
        pitches = onset[self.kind[ids] == NOTE_PITCH]
        return int(np.bincount(pitches).max()) if len(pitches) else 0

    def seconds_of(self, ids) -> float:
        """Music time covered by the shifts of a sequence."""
        return float(self.shift_seconds[np.asarray(ids, dtype=np.int64)].sum())
