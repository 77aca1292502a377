"""The studio layer behind the app and the CLI: previews, outputs, stop, bad input."""

import contextvars
import json
import threading

import numpy as np
import pytest

from musicgen.compute import COMPUTE
from musicgen.errors import InvalidMidiError, InvalidParameterError
from musicgen.generate import SamplingConfig
from musicgen.midi import OFFSET, ONSET, make_performance, read_midi, read_text_meta
from musicgen.studio import Studio, take_name


@pytest.fixture(scope="module")
def studio(tiny_checkpoint, tmp_path_factory):
    return Studio.load([tiny_checkpoint], "cpu", tmp_path_factory.mktemp("outputs"))


def test_preview_is_exactly_the_window(studio, midi_files):
    preview = studio.preview(midi_files[0], 2.0, 8.0)
    onsets = preview.window.notes[:, 0]
    assert onsets.min() >= 0 and onsets.max() < 6.0 and preview.roll.is_file()
    assert "The model hears 6.0 s" in preview.summary


def test_the_model_hears_whole_durations(studio):
    """A note held 3 s past the window's end reaches the tokenizer, and the model, with its
    3 s (cut at the window's end, it would be heard as staccato)."""
    held = make_performance(np.array([[1.0, 2.0, 60, 80], [9.9, 12.9, 64, 70]]))
    config = SamplingConfig(seconds=1, seed=0)
    take = studio.generate(held, config, start=0.0, end=10.0, audio=False).results[0]
    prompt = take.continuation.prompt
    assert prompt.notes[-1, OFFSET] - prompt.notes[-1, ONSET] == pytest.approx(3.0)
    tok = studio.default.tokenizer
    heard = tok.decode(tok.encode(prompt))
    assert heard.notes[-1, OFFSET] - heard.notes[-1, ONSET] == pytest.approx(3.0, rel=0.02)


def test_outputs_land_in_a_fresh_folder_each_request(studio, midi_files):
    config = SamplingConfig(seconds=3, seed=4, num_candidates=2)
    first = studio.generate(midi_files[1], config)
    second = studio.generate(midi_files[1], config)
    assert first.candidates[0].midi.parent != second.candidates[0].midi.parent
    prompt = read_midi(midi_files[1])
    for c in first.candidates:
        assert c.midi.parent.parent == studio.output_root
        settings = json.loads(read_text_meta(c.midi)[0].removeprefix("musicgen "))
        assert settings == json.loads(json.dumps(c.settings))
        assert len(read_midi(c.midi)) == len(prompt) + len(read_midi(c.continuation_midi))


def test_stop_keeps_what_was_generated(studio, midi_files):
    calls = []
    outcome = studio.generate(
        midi_files[2],
        SamplingConfig(seconds=60, seed=1),
        should_stop=lambda: calls.append(1) or len(calls) > 40,
    )
    assert outcome.stopped_early
    settings = outcome.candidates[0].settings
    assert settings["seconds"] == 60 and outcome.candidates[0].midi.is_file()
    kept = outcome.results[0].continuation.seconds
    assert 0 < kept < 60 and f"stopped at {kept:.1f} of 60 s" in outcome.describe()


@pytest.mark.parametrize(
    "path, error",
    [
        (None, InvalidMidiError),
        ("", InvalidMidiError),
        ("notes.txt", InvalidMidiError),
    ],
)
def test_missing_or_wrong_uploads(studio, path, error):
    with pytest.raises(error):
        studio.read_prompt(path)


def test_bad_window(studio, midi_files):
    with pytest.raises(InvalidParameterError):
        studio.preview(midi_files[0], 9.0, 3.0)
    with pytest.raises(InvalidParameterError):
        studio.preview(midi_files[0], "abc", None)


def test_unknown_model_and_composer_are_named(studio, midi_files):
    with pytest.raises(InvalidParameterError, match="Unknown model 'huge'"):
        studio.generate(midi_files[0], SamplingConfig(seconds=2), model="huge")
    with pytest.raises(InvalidParameterError, match="Unknown composer style 'Satie'"):
        studio.generate(midi_files[0], SamplingConfig(seconds=2, composer="Satie"))


def test_an_already_parsed_prompt_is_not_parsed_again(studio, midi_files, monkeypatch):
    perf = studio.read_prompt(midi_files[0])
    monkeypatch.setattr(studio, "read_prompt", lambda path: pytest.fail("parsed again"))
    assert studio.preview(perf).window.duration > 0
    assert studio.generate(perf, SamplingConfig(seconds=2)).candidates


def test_steps_build_a_piece_named_by_piece_step_and_candidate(studio, midi_files):
    config = SamplingConfig(seconds=3, seed=6, num_candidates=3)
    first = studio.generate(midi_files[1], config)
    upload = read_midi(midi_files[1])
    stem = take_name(midi_files[1].stem)[0]  # the file's name, kept short
    assert [c.midi.name for c in first.candidates] == [f"{stem}-step1-c{k}.mid" for k in (1, 2, 3)]
    takes = [c.settings for c in first.candidates]  # best first: closest to the prompt's level
    distances = [t["distance_from_prompt"] for t in takes]
    assert (
        distances == sorted(distances)
        and len({t["prompt_log_likelihood_per_note"] for t in takes}) == 1
    )
    for t in takes:
        gap = t["log_likelihood_per_note"] - t["prompt_log_likelihood_per_note"]
        assert t["distance_from_prompt"] == pytest.approx(abs(gap), abs=2e-4)
    for c in first.candidates:  # and the originality check of each
        assert c.settings["longest_maestro_run"]["notes"] >= 0
    second = studio.generate(first.candidates[1].midi, config)  # continue candidate 2
    assert second.candidates[0].midi.name == f"{stem}-step2-c1.mid"
    piece = read_midi(second.candidates[0].midi)
    step1 = read_midi(first.candidates[1].midi)
    assert len(step1) == len(upload) + len(read_midi(first.candidates[1].continuation_midi))
    assert len(piece) == len(step1) + len(read_midi(second.candidates[0].continuation_midi))
    # the upload as it was, then each step (the first added onset is on the model's 10 ms
    # grid, so it may sort a few ms before the upload's last note)
    # (a note still sounding when a continuation strikes its key again ends there)
    same = [0, 2, 3]  # onset, pitch, velocity
    gaps = np.abs(upload.notes[:, None, same] - piece.notes[None, :, same]).max(axis=2)
    assert gaps.min(axis=1).max() < 2e-3  # every note of the upload is in the piece
    assert upload.duration - 0.05 < step1.notes[len(upload) :, 0].min()


def test_take_names():
    assert take_name("bach-step2-c3") == ("bach", 3)
    assert take_name("My Piece (v2)") == ("My-Piece-v2", 1)
    assert take_name("") == ("piece", 1) and take_name(None) == ("piece", 1)


def test_model_work_runs_on_one_thread_in_the_callers_context(studio, midi_files):
    """Whichever thread a request comes on, the model runs on the one compute thread (one
    PyTorch thread pool), and sees the request's context (where Gradio keeps its progress)."""
    request = contextvars.ContextVar("request")
    seen = []

    def on_progress(_):
        seen.append((threading.current_thread().name, request.get(None)))

    def serve(i):
        request.set(i)
        config = SamplingConfig(seconds=2, seed=i)
        studio.generate(midi_files[0], config, on_progress=on_progress, audio=False)

    threads = [threading.Thread(target=serve, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {name for name, _ in seen} == {COMPUTE.NAME}
    assert {i for _, i in seen} == {0, 1, 2}
    with pytest.raises(ZeroDivisionError):  # a failure reaches the caller
        COMPUTE.run(lambda: 1 / 0)
