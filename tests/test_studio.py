"""The studio layer behind the app and the CLI: previews, outputs, stop, bad input."""

import json

import pytest

from musicgen.errors import InvalidMidiError, InvalidParameterError
from musicgen.generate import SamplingConfig
from musicgen.midi import read_midi, read_text_meta
from musicgen.studio import Studio


@pytest.fixture(scope="module")
def studio(tiny_checkpoint, tmp_path_factory):
    return Studio.load([tiny_checkpoint], "cpu", tmp_path_factory.mktemp("outputs"))


def test_preview_is_exactly_the_window(studio, midi_files):
    preview = studio.preview(midi_files[0], 2.0, 8.0)
    assert 5.0 < preview.window.duration <= 6.0 + 1e-9 and preview.roll.is_file()
    assert f"The model hears {preview.window.duration:.1f} s" in preview.summary


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
