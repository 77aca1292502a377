"""A take heard while it is written: stretches that add up to the take, Stop where the
listener was, a failure that keeps what was played (library tier, tiny random model)."""

import dataclasses
import wave

import numpy as np
import pytest
from test_synth import needs_synth

from musicgen.generate import Decoder, SamplingConfig, continue_performance
from musicgen.midi import OFFSET, ONSET, make_performance, read_midi
from musicgen.streaming import FIRST_STRETCH_SECONDS, Stretch
from musicgen.studio import Studio
from musicgen.synth import Renderer, audio_seconds


def frames(path) -> np.ndarray:
    with wave.open(str(path)) as f:
        return np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, 2)


@pytest.fixture(scope="module")
def studio(tiny_checkpoint, tmp_path_factory):
    return Studio.load([tiny_checkpoint], "cpu", tmp_path_factory.mktemp("outputs"))


def stream(studio, prompt, config, **kwargs) -> tuple[list[Stretch], object]:
    items = list(studio.stream(prompt, config, **kwargs))
    assert all(isinstance(i, Stretch) for i in items[:-1]) and not isinstance(items[-1], Stretch)
    return items[:-1], items[-1]


@needs_synth
def test_a_performance_rendered_as_it_grows_is_the_one_render(midi_files):
    """Each call knows only the notes struck so far (their whole durations included); the
    stretches still add up to one render of the whole, sample for sample."""
    renderer = Renderer()
    perf = read_midi(midi_files[0])
    whole = renderer.render(perf)
    pieces = []
    with renderer.stream() as synth:
        for t in np.arange(0.3, perf.duration, 0.77):
            known = make_performance(perf.notes[perf.notes[:, ONSET] < t])
            pieces.append(synth.render_until(known, t))
        pieces.append(synth.render_until(perf, audio_seconds(perf)))
    assert np.array_equal(np.concatenate(pieces), whole)


@needs_synth
def test_the_streamed_stretches_are_the_take(studio, midi_files):
    config = SamplingConfig(seconds=6, seed=5, num_candidates=2)
    stretches, outcome = stream(studio, midi_files[1], config, start=0.0, end=4.0)
    assert stretches[0].start == 0 and stretches[0].end == pytest.approx(FIRST_STRETCH_SECONDS)
    for before, after in zip(stretches, stretches[1:], strict=False):
        assert after.start == before.end and after.index == before.index + 1
    assert stretches[-1].final and not any(s.final for s in stretches[:-1])
    assert stretches[1].roll is not None and stretches[1].roll.is_file()
    streamed = np.concatenate([frames(s.wav) for s in stretches])
    take = next(c for c in outcome.candidates if c.settings["batch_row"] == 0)
    result = next(r for r in outcome.results if r.settings["batch_row"] == 0)
    assert np.array_equal(streamed, frames(take.wav))
    assert np.array_equal(streamed, Renderer().render(result.continuation.combined))
    assert f"played as it was written is take {take.settings['candidate'] + 1}" in (
        outcome.describe()
    )


def test_the_first_take_reported_while_sampling_is_the_take(studio, midi_files):
    """What the sampler reports as it goes (and the studio plays) is a prefix of the take."""
    model = studio.default
    seen = []
    window = read_midi(midi_files[2])
    takes = continue_performance(
        model.model,
        model.tokenizer,
        window,
        SamplingConfig(seconds=4, seed=2, num_candidates=3),
        lambda p: seen.append(p.first),
    )
    assert len(seen) > 2
    full = seen[-1]
    for first in seen:
        assert np.array_equal(first.ids, full.ids[: len(first.ids)])
        assert np.allclose(first.token_log_p, full.token_log_p[: len(first.ids)])
    assert np.isclose(full.log_likelihood, takes[0].log_likelihood_per_note * len(takes[0].added))


@needs_synth
def test_stop_keeps_what_the_listener_heard(studio, midi_files):
    """Stopped at `heard` s into the take: the take keeps the notes struck before it, each
    ending by then, as the same seed gives without a stop."""
    config = SamplingConfig(seconds=8, seed=11)
    whole = studio.generate(midi_files[0], config, 0.0, 4.0, audio=False).results[0]
    heard = 6.5  # 2.5 s after the prompt's 4 s
    calls = []
    stopped = studio.generate(
        midi_files[0],
        config,
        0.0,
        4.0,
        should_stop=lambda: calls.append(1) or len(calls) > 20,
        keep_until=lambda: heard,
    )
    assert stopped.stopped_early and "kept what you heard: 6.5 s of the take" in stopped.describe()
    added = stopped.results[0].continuation.added.notes
    expected = whole.continuation.added.notes
    expected = expected[expected[:, ONSET] < heard - 1e-9]
    assert len(added) and np.all(added[:, OFFSET] <= heard + 1e-9)
    assert np.array_equal(added[:, [ONSET, 2, 3]], expected[: len(added), [ONSET, 2, 3]])
    assert np.allclose(added[:, OFFSET], np.minimum(expected[: len(added), OFFSET], heard))
    assert stopped.candidates[0].wav.is_file()


@needs_synth
def test_a_failure_midway_keeps_what_was_played(studio, midi_files):
    """The model breaks after some notes: the take keeps what had been streamed and says what
    happened, instead of losing everything."""
    model = studio.default
    steps = []

    def breaking_step(idx, position, cache):
        steps.append(1)
        if len(steps) > 60:
            raise RuntimeError("the accelerator went away")
        return model.decoder.step(idx, position, cache)

    broken = dataclasses.replace(model, decoder=Decoder("breaking", breaking_step))
    failing = Studio([broken], studio.output_root)
    stretches, outcome = stream(failing, midi_files[2], SamplingConfig(seconds=30, seed=3))
    played = stretches[-1].end
    assert not stretches[-1].final and "Generation failed" in outcome.describe()
    assert "the accelerator went away" in outcome.describe()
    added = outcome.results[0].continuation.added.notes
    assert np.all(added[:, OFFSET] <= played + 1e-9)
    assert outcome.candidates[0].wav.is_file() and outcome.candidates[0].midi.is_file()
