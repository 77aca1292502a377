import wave

import numpy as np
import pytest

from musicgen.errors import SoundfontNotFoundError
from musicgen.midi import read_midi
from musicgen.synth import SAMPLE_RATE, TAIL_SECONDS, Renderer, audio_seconds, find_soundfont

try:
    find_soundfont()
    import fluidsynth  # noqa: F401

    HAVE_SYNTH = True
except Exception:  # reported by the skip below
    HAVE_SYNTH = False
needs_synth = pytest.mark.skipif(not HAVE_SYNTH, reason="FluidSynth or a GM soundfont missing")


@needs_synth
def test_wav_is_44k_stereo_long_enough_and_not_silent(tmp_path, midi_files):
    perf = read_midi(midi_files[0])
    path = Renderer().render_wav(perf, tmp_path / "out.wav")
    with wave.open(str(path)) as f:
        assert f.getframerate() == SAMPLE_RATE == 44_100
        assert f.getnchannels() == 2 and f.getsampwidth() == 2
        frames = f.getnframes()
        audio = np.frombuffer(f.readframes(frames), dtype="<i2")
    # exactly the length the piano roll's time axis is drawn to (the playback cursor's scale)
    assert frames / SAMPLE_RATE == pytest.approx(audio_seconds(perf), abs=1 / SAMPLE_RATE)
    assert audio_seconds(perf) == perf.duration + TAIL_SECONDS
    rms = np.sqrt(np.mean(audio.astype(np.float64) ** 2))
    assert rms > 100  # clearly audible, not digital silence
    assert np.abs(audio).max() < 32767  # and not clipped flat


@needs_synth
def test_renderer_is_reusable_and_deterministic(midi_files):
    renderer = Renderer()
    perf = read_midi(midi_files[1])
    first, second = renderer.render(perf), renderer.render(perf)
    assert np.array_equal(first, second)  # nothing rings over from the previous render


def test_missing_soundfont_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("MUSICGEN_SOUNDFONT", str(tmp_path / "nope.sf2"))
    with pytest.raises(SoundfontNotFoundError):
        find_soundfont()
    monkeypatch.delenv("MUSICGEN_SOUNDFONT")
    monkeypatch.setattr("musicgen.synth.SOUNDFONT_LOCATIONS", ())
    with pytest.raises(SoundfontNotFoundError, match="fluid-soundfont-gm"):
        find_soundfont()


def test_the_output_level_lifts_quiet_audio_and_never_clips():
    from musicgen.synth import CEILING, OUTPUT_GAIN_DB, output_level

    ramp = np.arange(-32768, 32768, 64, dtype=np.int16).reshape(-1, 2)
    out = output_level(ramp).astype(np.int64).ravel()
    assert np.all(np.diff(out) >= 0)  # the order of the samples' levels is kept
    assert np.abs(out).max() <= CEILING * 32767 + 1  # no clipping, even at full scale in
    quiet = np.array([[100, -100]], dtype=np.int16)
    assert output_level(quiet)[0, 0] == round(100 * 10 ** (OUTPUT_GAIN_DB / 20))  # plain gain
