import numpy as np
import pytest
import symusic

from musicgen.errors import InvalidMidiError, InvalidParameterError
from musicgen.midi import (
    OFFSET,
    ONSET,
    PITCH,
    fold_pedal,
    make_performance,
    merge,
    prompt_window,
    read_midi,
    read_text_meta,
    write_midi,
)


def _score_bytes(tracks, tpq=480) -> bytes:
    """tracks: list of (is_drum, program, [(tick, dur, pitch, vel)], [(tick, dur) pedals])."""
    score = symusic.Score(tpq)
    for is_drum, program, notes, pedals in tracks:
        track = symusic.Track(program=program, is_drum=is_drum)
        for t, d, p, v in notes:
            track.notes.append(symusic.Note(t, d, p, v))
        for t, d in pedals:  # sustain pedal as CC64 down/up, as in real files
            track.controls.append(symusic.ControlChange(t, 64, 127))
            track.controls.append(symusic.ControlChange(t + d, 64, 0))
        score.tracks.append(track)
    return score.dumps_midi()


def test_reads_real_fixture_both_ways(midi_files):
    isolated = read_midi(midi_files[0])
    in_process = read_midi(midi_files[0], isolate=False)
    assert len(isolated) > 10
    np.testing.assert_allclose(isolated.notes, in_process.notes)
    assert (np.diff(isolated.notes[:, ONSET]) >= 0).all()
    assert (isolated.notes[:, PITCH] >= 21).all() and (isolated.notes[:, PITCH] <= 108).all()


def test_tracks_are_merged_and_drums_dropped():
    data = _score_bytes(
        [
            (False, 0, [(0, 480, 60, 80)], []),
            (False, 40, [(480, 480, 67, 70)], []),
            (True, 0, [(0, 100, 36, 100), (480, 100, 38, 100)], []),
        ]
    )
    perf = read_midi(data)
    assert sorted(perf.notes[:, PITCH]) == [60, 67]
    assert any("drum" in w for w in perf.warnings)
    assert any("Merged 2" in w for w in perf.warnings)


def test_sustain_pedal_extends_durations_but_not_over_a_restrike():
    notes = np.array([[0.0, 0.2, 60, 80], [0.5, 0.6, 64, 80], [1.0, 1.1, 60, 80]])
    pedals = np.array([[0.1, 2.0]])
    folded = fold_pedal(notes, pedals)
    assert folded[1, OFFSET] == pytest.approx(2.0)  # released under the pedal: held to 2.0
    assert folded[0, OFFSET] == pytest.approx(1.0)  # held, but cut by the re-struck C
    assert folded[2, OFFSET] == pytest.approx(2.0)


def test_merge_ends_a_held_note_where_its_key_is_struck_again():
    held = make_performance(np.array([[0.0, 5.0, 60, 80], [0.0, 5.0, 64, 80]]))
    answer = make_performance(np.array([[1.0, 1.5, 60, 90]]))
    merged = merge(held, answer, 2.0).notes
    np.testing.assert_allclose(
        merged[:, [ONSET, OFFSET, PITCH]], [[0, 3, 60], [0, 5, 64], [3, 3.5, 60]]
    )


def test_pedal_from_a_real_file_is_folded():
    data = _score_bytes([(False, 0, [(0, 240, 60, 80)], [(0, 1920)])])
    perf = read_midi(data)
    assert perf.notes[0, OFFSET] == pytest.approx(2.0, abs=0.01)  # 4 beats at 120 qpm


def test_out_of_range_pitches_are_moved_by_octaves():
    perf = read_midi(_score_bytes([(False, 0, [(0, 240, 10, 80), (0, 240, 120, 80)], [])]))
    assert sorted(perf.notes[:, PITCH]) == [22, 108]


def test_prompt_window_and_defaults(midi_files):
    perf = read_midi(midi_files[1])
    w = prompt_window(perf, 2.0, 6.0)
    assert w.notes[:, ONSET].min() >= 0 and w.notes[:, ONSET].max() < 4.0
    inside = (perf.notes[:, ONSET] >= 2.0) & (perf.notes[:, ONSET] < 6.0)
    np.testing.assert_allclose(  # whole durations, also past the window's end
        np.diff(w.notes[:, [ONSET, OFFSET]]), np.diff(perf.notes[inside][:, [ONSET, OFFSET]])
    )
    assert w.notes[:, OFFSET].max() > 4.0  # this excerpt has notes sounding across 6 s
    full = prompt_window(perf, None, None)  # last 30 s (the whole 12 s excerpt)
    assert len(full) == len(perf)
    for start, end in [(5, 5), (-1, 3), (float("nan"), 3), (100, 200)]:
        with pytest.raises(InvalidParameterError):
            prompt_window(perf, start, end)


def test_write_and_read_back_with_settings(tmp_path, midi_files):
    perf = read_midi(midi_files[0])
    path = write_midi(perf, tmp_path / "out.mid", text='musicgen {"seed": 3}')
    again = read_midi(path)
    assert len(again) == len(perf)
    np.testing.assert_allclose(again.notes[:, ONSET], perf.notes[:, ONSET], atol=1e-3)
    assert read_text_meta(path) == ['musicgen {"seed": 3}']


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 40, "not a MIDI file"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\xe7\x28", "SMPTE"),
        (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x10\x00\x00\x90", "truncated"),
        (b"MThd\x00\x00\x00\x06\x00\x01\xff\xff\x01\xe0", "tracks"),
    ],
)
def test_bad_bytes_raise_typed_errors(data, message):
    with pytest.raises(InvalidMidiError, match=message):
        read_midi(data)


def test_valid_file_without_notes_is_rejected():
    with pytest.raises(InvalidMidiError, match="no"):
        read_midi(_score_bytes([(False, 0, [], [])]))


def test_drums_only_is_rejected():
    with pytest.raises(InvalidMidiError, match="no"):
        read_midi(_score_bytes([(True, 0, [(0, 100, 36, 100)], [])]))


def test_oversized_and_missing_files(tmp_path):
    big = tmp_path / "big.mid"
    big.write_bytes(b"MThd" + b"\x00" * (5 * 1024 * 1024))
    with pytest.raises(InvalidMidiError, match="limit"):
        read_midi(big)
    with pytest.raises(InvalidMidiError, match="No such file"):
        read_midi(tmp_path / "missing.mid")
