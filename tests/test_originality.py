"""The originality index: shared runs of notes are found, unrelated music is not."""

import numpy as np

from musicgen.midi import make_performance, prompt_window, read_midi
from musicgen.originality import NGRAM, WINDOW, OriginalityIndex, performance_keys


def tokenized(tok, perf):
    return tok.decode(tok.encode(perf))  # on the 10 ms grid, as generated music is


def test_a_copied_run_is_found_with_its_length_and_piece(tokenizer, midi_files):
    pieces = [tokenized(tokenizer, read_midi(p)) for p in midi_files]
    index = OriginalityIndex.build(
        [(p.name, performance_keys(perf)) for p, perf in zip(midi_files, pieces)]
    )
    source = pieces[1]
    copied = tokenized(tokenizer, prompt_window(source, 2.0, 8.0))  # an excerpt, from 0
    run = index.longest_run(copied)
    assert run.title == midi_files[1].name
    assert len(copied) - NGRAM - WINDOW <= run.notes <= len(copied)
    assert f"{run.notes} notes ({midi_files[1].name})" in run.describe()


def test_unrelated_or_short_music_shares_nothing(tokenizer, midi_files):
    pieces = [tokenized(tokenizer, read_midi(p)) for p in midi_files[1:]]
    index = OriginalityIndex.build([(str(i), performance_keys(p)) for i, p in enumerate(pieces)])
    rng = np.random.default_rng(0)
    onsets = np.cumsum(rng.integers(1, 40, 200)) / 100
    notes = np.stack([onsets, onsets + 0.2, rng.integers(40, 90, 200), np.full(200, 64)], 1)
    assert index.longest_run(make_performance(notes)).notes == 0
    assert index.longest_run(make_performance(notes[: NGRAM - 1])).notes == 0
    assert "no run" in index.longest_run(make_performance(notes)).describe()


def test_the_shipped_index_loads(tmp_path):
    index = OriginalityIndex.load()
    assert index is not None and len(index.hashes) > 100_000 and len(index.titles) == 962
    assert OriginalityIndex.load(tmp_path / "missing.npz") is None
