"""The take heard while it is written, as people and scripts get it: gradio_client's submit()
streaming partial outputs, and a real browser playing the stream (then Stop midway)."""

import io
import threading
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from gradio_client import Client, handle_file

from musicgen.app_process import running_app
from musicgen.checkpoint import BUNDLED_CHECKPOINTS
from musicgen.midi import ONSET, read_midi

pytestmark = pytest.mark.slow  # real processes: servers and a browser
EXAMPLE = ROOT / "examples" / "chopin-etude-op-10-no-12.mid"
STRETCH = "stream-"


def frames(source) -> np.ndarray:
    """The samples of a WAV file (a path or its bytes)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    with wave.open(io.BytesIO(data)) as f:
        return np.frombuffer(f.readframes(f.getnframes()), "<i2").reshape(-1, 2)


def streamed_take(client, **kwargs) -> tuple[list, tuple]:
    """All the partial outputs of one /generate call, and its final output."""
    kwargs = {"seconds": 6, "temperature": 1.0, "seed": 1} | kwargs
    job = client.submit(prompt=handle_file(str(EXAMPLE)), api_name="/generate", **kwargs)
    final = job.result()
    outputs = job.outputs()
    assert outputs[-1] == final
    return outputs[:-1], final


def test_the_api_streams_the_take_and_predict_is_unchanged(app):
    client = Client(app[0], verbose=False)
    partial, final = streamed_take(client, seed=4, prompt_start=0, prompt_end=5)
    assert partial, "no partial output"
    first = partial[0]
    assert Path(first[0]).name.startswith(STRETCH) and len(frames(first[0])) > 0  # playable
    assert len(first) == len(final)  # the same outputs, filled in as they come
    streamed = np.concatenate([frames(p[0]) for p in partial])
    assert np.array_equal(streamed, frames(final[0]))
    again = client.predict(
        prompt=handle_file(str(EXAMPLE)),
        seconds=6,
        temperature=1.0,
        seed=4,
        prompt_start=0,
        prompt_end=5,
        api_name="/generate",
    )
    assert np.array_equal(frames(again[0]), frames(final[0]))
    assert len(again) == len(final)
    assert np.array_equal(read_midi(again[2][1]).notes, read_midi(final[2][1]).notes)


def test_four_clients_streaming_at_once_each_get_their_own_music(app):
    results = {}

    def listen(seed):
        client = Client(app[0], verbose=False)
        results[seed] = streamed_take(client, seed=seed, prompt_start=0, prompt_end=5)

    threads = [threading.Thread(target=listen, args=(seed,)) for seed in (11, 12, 13, 14)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(results) == [11, 12, 13, 14]
    finals = {}
    for seed, (partial, final) in results.items():
        streamed = np.concatenate([frames(p[0]) for p in partial])
        assert np.array_equal(streamed, frames(final[0])), seed
        finals[seed] = read_midi(final[2][1]).notes  # the continuation's notes
    notes = list(finals.values())
    assert all(
        not (len(a) == len(b) and np.allclose(a, b))
        for i, a in enumerate(notes)
        for b in notes[i + 1 :]
    )


@pytest.fixture(scope="module")
def small_app(tmp_path_factory):
    """The app on the bundled maestro-small: real music, at a real model's pace."""
    small = next(d for d in BUNDLED_CHECKPOINTS if d.name == "maestro-small")
    with running_app(small, tmp_path_factory.mktemp("small-outputs")) as (url, proc):
        yield url, proc


@pytest.fixture()
def page(small_app, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    page.goto(small_app[0])
    page.get_by_role("button", name="Generate").wait_for()
    yield page
    page.close()


def choose_example(page, start: str | None = None, end: str | None = None) -> None:
    page.get_by_label("…or pick an example (MAESTRO test split)").click()
    page.get_by_role("option", name="Chopin").first.click()
    page.locator("img[src*='prompt']").first.wait_for(timeout=60_000)
    for label, value in (("Prompt from (s)", start), ("Prompt to (s)", end)):
        if value is not None:
            page.get_by_label(label).fill(value)
    page.wait_for_timeout(1500)  # the preview of the window lands


def set_seconds(page, seconds: int) -> None:
    box = page.get_by_label("number input for Seconds of music to add")
    box.fill(str(seconds))
    box.press("Enter")
    slider = page.get_by_label("range slider for Seconds of music to add")
    page.wait_for_function(
        "([s, v]) => s.value === v", arg=[slider.element_handle(), str(seconds)], timeout=5_000
    )


def stats(page) -> dict | None:
    return page.evaluate("window.musicgenLive && window.musicgenLive.stats()")


def fetch(url: str, base: str) -> bytes:
    with urllib.request.urlopen(url if url.startswith("http") else base + url) as response:
        return response.read()


def test_the_take_plays_while_it_is_written_and_is_what_streamed(page, small_app, artifacts):
    choose_example(page)
    # (20 s of music: the default)
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        "() => window.musicgenLive?.stats()?.firstSoundAt != null", timeout=60_000
    )
    page.screenshot(path=str(artifacts / "streaming.png"), full_page=True)
    page.wait_for_function("() => window.musicgenLive.stats().doneAt != null", timeout=120_000)
    s = stats(page)
    assert s["firstSoundAt"] < s["doneAt"], s  # heard before the take was finished
    assert s["sampleRate"] == 44100 and s["stretches"] >= 1
    page.wait_for_function(  # every stretch arrived
        "() => window.musicgenLive.stats().written > 0 && "
        "window.musicgenLive.stats().urls.length === window.musicgenLive.stats().stretches",
        timeout=30_000,
    )
    s = stats(page)
    streamed = np.concatenate([frames(fetch(u, small_app[0])) for u in s["urls"]])
    final_src = page.locator("#take-1-audio audio").get_attribute("src")
    assert np.array_equal(streamed, frames(fetch(final_src, small_app[0])))
    assert s["written"] == pytest.approx(len(streamed) / 44100, abs=1e-3)


def test_stop_midway_keeps_exactly_what_was_heard(page, small_app, artifacts):
    choose_example(page, "0", "1")  # a 1 s prompt: the continuation is heard at once
    set_seconds(page, 120)
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function("() => (window.musicgenLive?.stats()?.heard ?? 0) > 2.5", timeout=60_000)
    page.get_by_role("button", name="Stop", exact=True).click()
    s = stats(page)
    assert s["state"] == "stopped"
    page.locator("img[src*='-step1-c1']").first.wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    summary = page.get_by_text("stopped at").first.inner_text()
    assert "of 120 s added (kept what you heard" in summary
    heard = page.evaluate("window.musicgenLive.stats().heard")  # frozen at the Stop
    links = page.locator("a[href*='-continuation.mid']")
    continuation = read_midi_bytes(fetch(links.first.get_attribute("href"), small_app[0]))
    assert len(continuation) > 0
    assert continuation[:, ONSET].max() < heard + 0.05  # nothing after the Stop was kept
    page.screenshot(path=str(artifacts / "stream-stopped.png"), full_page=True)


def read_midi_bytes(data: bytes) -> np.ndarray:
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".mid") as f:
        f.write(data)
        f.flush()
        return read_midi(f.name).notes


def test_the_player_waits_visibly_when_the_music_is_late(app, browser, artifacts):
    """A stretch that comes late (here: held back on its way to the page) makes the player
    say it is catching up and wait, then go on where it was: nothing skipped, nothing lost."""
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    late = []  # the requests for the third stretch, held until the player has run dry
    page.route("**/stream-0003.wav", lambda route: late.append(route))
    page.goto(app[0])
    page.get_by_role("button", name="Generate").wait_for()
    choose_example(page, "0", "3")
    set_seconds(page, 4)  # a short take: it is listened to the end
    page.get_by_role("button", name="Generate").click()
    page.wait_for_function(
        "() => window.musicgenLive?.stats()?.state === 'catching-up'", timeout=60_000
    )
    page.locator("#live-player").screenshot(path=str(artifacts / "catching-up.png"))
    assert "Catching up" in page.locator("#live-player").inner_text()
    dry = stats(page)
    assert dry["heard"] == pytest.approx(dry["written"], abs=0.05)  # it played all it had
    for route in late:
        route.continue_()
    page.wait_for_function(  # going on: every stretch in, the take complete
        "() => { const s = window.musicgenLive.stats(); return s.state === 'playing' && "
        "s.doneAt != null && s.stretches === s.urls.length; }",
        timeout=60_000,
    )
    s = stats(page)
    assert late and s["stalls"] >= 1 and s["heard"] >= dry["heard"]
    final_src = page.locator("#take-1-audio audio").get_attribute("src")
    final = frames(fetch(final_src, app[0]))
    assert s["written"] == pytest.approx(len(final) / 44100, abs=1e-3)  # nothing skipped
    page.close()
