"""Hostile uploads, fuzzing, bad parameters, load, files: clean errors, no crashes, no hangs."""

import concurrent.futures as cf
import math
import time
import urllib.error
import urllib.request

import pytest
from gradio_client import Client, handle_file
from hostile_midi import EXPECTED, write_corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicgen.app_process import running_app
from musicgen.errors import InvalidMidiError
from musicgen.midi import Performance, read_midi
from musicgen.studio import Model, Studio

VALID_NAMES = {name for name, message in EXPECTED.items() if message is None}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("hostile"))


def test_every_hostile_file_gets_its_clear_error_quickly(corpus):
    for name, path in corpus.items():
        if name in VALID_NAMES:
            assert len(read_midi(path)) > 0
        else:
            with pytest.raises(
                InvalidMidiError, match=EXPECTED[name].replace("(", r"\(").replace(")", r"\)")
            ):
                read_midi(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_real_midi_never_crashes_or_hangs(midi_files, data):
    original = bytearray(midi_files[data.draw(st.integers(0, len(midi_files) - 1))].read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert", "dup"]))
        pos = data.draw(st.integers(0, max(len(original) - 1, 0)))
        if kind == "flip" and original:
            original[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and original:
            original[pos] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del original[pos:]
        elif kind == "insert":
            original[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        elif kind == "dup":
            original += original[pos : pos + 64]
    try:
        result = read_midi(bytes(original))
        assert isinstance(result, Performance) and len(result) > 0
        assert all(math.isfinite(x) for x in result.notes.flat)
    except InvalidMidiError as exc:
        assert str(exc)


def test_old_outputs_are_cleaned_up(tmp_path, tiny_checkpoint):
    studio = Studio(Model.load(tiny_checkpoint, "cpu"), tmp_path, max_age_s=0.0)
    old = studio.new_folder()
    (old / "x.wav").write_bytes(b"1")
    time.sleep(0.01)
    assert studio.cleanup() >= 1 and not old.exists()


# ----- through the launched app


@pytest.fixture(scope="module")
def app(tiny_checkpoint, tmp_path_factory):
    with running_app(tiny_checkpoint, tmp_path_factory.mktemp("outputs")) as (url, proc):
        yield url, proc


def predict(url_or_client, path, **kwargs):
    client = (
        url_or_client if isinstance(url_or_client, Client) else Client(url_or_client, verbose=False)
    )
    kwargs = {"seconds": 3, "temperature": 1.0, "seed": 0} | kwargs
    return client.predict(prompt=handle_file(str(path)), api_name="/generate", **kwargs)


@pytest.mark.slow
def test_hostile_uploads_through_the_api_then_a_valid_request(app, corpus, midi_files):
    client = Client(app[0], verbose=False)
    for name, path in corpus.items():
        if name in VALID_NAMES:
            assert predict(client, path)[2], name
            continue
        with pytest.raises(Exception) as info:
            predict(client, path)
        message = str(info.value)
        expected = "maximum file size" if name == "50MB.mid" else EXPECTED[name]  # upload limit
        assert expected.lower() in message.lower(), (name, message)
        assert app[1].poll() is None, f"server died on {name}"
    out = predict(client, midi_files[0], seed=9)
    assert out[0].endswith(".wav") and len(out[2]) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        # NaN is refused by the client itself
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"seconds": 1000}, "seconds must be between 2 and 120"),
        ({"seed": -5}, "seed must be between 0 and"),
        ({"top_p": 0}, "top_p must be between 0.05 and 1"),
        ({"candidates": 9}, "candidates must be between 1 and 4"),
        ({"prompt_start": -1}, "prompt_start must be at least 0"),
        ({"prompt_start": 50, "prompt_end": 10}, "ends \\(10 s\\) before it starts \\(50 s\\)"),
    ],
)
def test_bad_parameters_through_the_api(app, midi_files, kwargs, fragment):
    with pytest.raises(Exception, match=f"(?i){fragment}"):
        predict(app[0], midi_files[0], **kwargs)


@pytest.mark.slow
def test_files_outside_the_app_cannot_be_read(app):
    for path in ("/etc/passwd", "../../../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd"):
        try:
            with urllib.request.urlopen(f"{app[0]}gradio_api/file={path}") as response:
                body = response.read()
            assert b"root:" not in body
        except urllib.error.HTTPError as exc:
            assert exc.code in (400, 403, 404)


@pytest.mark.slow
def test_eight_concurrent_sessions_get_their_own_results(app, midi_files):
    seeds = list(range(100, 108))
    jobs = [(seed, midi_files[seed % len(midi_files)]) for seed in seeds]
    expected = {
        seed: read_midi(predict(app[0], path, seed=seed)[2][1]).notes for seed, path in jobs
    }
    with cf.ThreadPoolExecutor(8) as pool:  # 8 separate clients = 8 sessions
        futures = {seed: pool.submit(predict, app[0], path, seed=seed) for seed, path in jobs}
        results = {seed: f.result(timeout=300) for seed, f in futures.items()}
    for seed in seeds:
        assert results[seed][-1] == seed
        assert (read_midi(results[seed][2][1]).notes == expected[seed]).all(), seed


@pytest.mark.slow
def test_load_beyond_the_queue_is_refused_not_hung(tiny_checkpoint, tmp_path, midi_files):
    env = {"MUSICGEN_QUEUE_SIZE": "1", "MUSICGEN_CONCURRENCY": "1"}
    with running_app(tiny_checkpoint, tmp_path, env) as (url, proc):

        def attempt(seed):
            try:
                predict(url, midi_files[0], seed=seed, seconds=30)
                return "ok"
            except Exception as exc:
                return str(exc)

        with cf.ThreadPoolExecutor(6) as pool:
            outcomes = list(pool.map(attempt, range(6), timeout=300))
        assert "ok" in outcomes
        refused = [o for o in outcomes if o != "ok"]
        assert refused and all("queue" in o.lower() for o in refused), outcomes
        assert proc.poll() is None
