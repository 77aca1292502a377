import numpy as np
import pytest

from musicgen.augment import stretch_table, transpose
from musicgen.midi import OFFSET, ONSET, PITCH, VELOCITY, read_midi
from musicgen.tokenizer import NOTE_PITCH, SHIFT, PerformanceTokenizer


def by_pitch_then_onset(notes):
    # Two notes of one key never overlap, so sorting per key pairs each note with its copy.
    return notes[np.lexsort((notes[:, ONSET], notes[:, PITCH]))]


def test_round_trip_on_real_performances(tokenizer, midi_files):
    for path in midi_files:
        perf = read_midi(path)
        back = tokenizer.decode(tokenizer.encode(perf))
        assert len(back) == len(perf), path.name
        a, b = by_pitch_then_onset(perf.notes), by_pitch_then_onset(back.notes)
        assert (a[:, PITCH] == b[:, PITCH]).all()
        assert np.abs(a[:, ONSET] - b[:, ONSET]).max() <= 0.010 + 1e-6
        assert np.abs(a[:, VELOCITY] - b[:, VELOCITY]).max() <= 4  # 32 bins over 1..127
        dur_a, dur_b = a[:, OFFSET] - a[:, ONSET], b[:, OFFSET] - b[:, ONSET]
        short = dur_a <= 1.0
        assert np.abs(dur_a - dur_b)[short].max() <= 0.010 + 1e-6
        if (~short).any():
            assert (np.abs(dur_a - dur_b)[~short] / dur_a[~short]).max() <= 0.02


def test_save_and_load_keep_everything(tmp_path, tokenizer, midi_files):
    tokenizer.save(tmp_path)
    loaded = PerformanceTokenizer.load(tmp_path)
    assert loaded.composers == tokenizer.composers
    assert loaded.vocab_size == tokenizer.vocab_size
    assert loaded.names == tokenizer.names
    perf = read_midi(midi_files[2])
    assert (loaded.encode(perf) == tokenizer.encode(perf)).all()


def test_any_id_sequence_decodes(tokenizer):
    rng = np.random.default_rng(0)
    for _ in range(20):
        ids = rng.integers(-5, tokenizer.vocab_size + 5, size=rng.integers(0, 300))
        valid = tokenizer.valid_ids(ids)
        perf = tokenizer.decode(ids)
        assert len(perf) == int((tokenizer.kind[valid] == NOTE_PITCH).sum())


def test_grammar_accepts_every_encoded_sequence(tokenizer, midi_files):
    ids = tokenizer.encode(read_midi(midi_files[3]))
    state = 0
    for i in ids:
        assert tokenizer.grammar_allowed[state, i]
        state = tokenizer.grammar_next[i]


def test_transpose_and_stretch(tokenizer, midi_files):
    ids = tokenizer.encode(read_midi(midi_files[0]))
    up = transpose(tokenizer, ids, 3)
    pitched = tokenizer.kind[ids] == NOTE_PITCH
    assert (tokenizer.pitch[up[pitched]] == tokenizer.pitch[ids[pitched]] + 3).all()
    assert (up[~pitched] == ids[~pitched]).all()
    assert transpose(tokenizer, np.array([tokenizer.pitch_ids[-1]]), 1) is None
    table = stretch_table(tokenizer, 1.05)
    shifts = ids[tokenizer.kind[ids] == SHIFT]
    assert tokenizer.seconds[table[shifts]].sum() == pytest.approx(
        1.05 * tokenizer.seconds[shifts].sum(), rel=0.03
    )
    assert (tokenizer.kind[table] == tokenizer.kind).all()
