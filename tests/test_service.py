"""The per-request service behind the app: previews, outputs, stop, bad input."""

import json

import pytest

from musicgen.errors import InvalidMidiError, InvalidParameterError
from musicgen.generate import SamplingConfig
from musicgen.midi import read_midi, read_text_meta
from musicgen.pipeline import Studio
from musicgen.service import Service


@pytest.fixture(scope="module")
def service(tiny_checkpoint, tmp_path_factory):
    return Service(Studio.load(tiny_checkpoint, "cpu"), tmp_path_factory.mktemp("outputs"))


def test_preview_is_exactly_the_window(service, midi_files):
    preview = service.preview(midi_files[0], 2.0, 8.0)
    assert 5.0 < preview.window.duration <= 6.0 + 1e-9 and preview.roll.is_file()
    assert f"The model hears {preview.window.duration:.1f} s" in preview.summary


def test_outputs_land_in_a_fresh_folder_each_request(service, midi_files):
    config = SamplingConfig(seconds=3, seed=4, num_candidates=2)
    first = service.generate(midi_files[1], config)
    second = service.generate(midi_files[1], config)
    assert first.candidates[0].midi.parent != second.candidates[0].midi.parent
    prompt = read_midi(midi_files[1])
    for c in first.candidates:
        assert c.midi.parent.parent == service.output_root
        settings = json.loads(read_text_meta(c.midi)[0].removeprefix("musicgen "))
        assert settings == json.loads(json.dumps(c.settings))
        assert len(read_midi(c.midi)) == len(prompt) + len(read_midi(c.continuation_midi))


def test_stop_keeps_what_was_generated(service, midi_files):
    calls = []
    outcome = service.generate(
        midi_files[2],
        SamplingConfig(seconds=60, seed=1),
        should_stop=lambda: calls.append(1) or len(calls) > 40,
    )
    assert outcome.stopped_early
    settings = outcome.candidates[0].settings
    assert settings["seconds"] == 60 and outcome.candidates[0].midi.is_file()
    assert "stopped early" in outcome.describe(service.studio)


@pytest.mark.parametrize(
    "path, error",
    [
        (None, InvalidMidiError),
        ("", InvalidMidiError),
        ("notes.txt", InvalidMidiError),
    ],
)
def test_missing_or_wrong_uploads(service, path, error):
    with pytest.raises(error):
        service.read_prompt(path)


def test_bad_window(service, midi_files):
    with pytest.raises(InvalidParameterError):
        service.preview(midi_files[0], 9.0, 3.0)
    with pytest.raises(InvalidParameterError):
        service.preview(midi_files[0], "abc", None)
