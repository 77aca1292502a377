"""The app as people and scripts use it: a launched server, gradio_client, a real browser."""

import shutil
import wave

import pytest
from conftest import ROOT
from gradio_client import Client, handle_file

from musicgen.app_process import running_app
from musicgen.midi import read_midi, read_text_meta

EXAMPLE = sorted((ROOT / "examples").glob("*.mid"))[0]

pytestmark = pytest.mark.slow  # real processes: a server, the CLI, training runs


@pytest.fixture(scope="module")
def app(tiny_checkpoint, tmp_path_factory):
    with running_app(tiny_checkpoint, tmp_path_factory.mktemp("app-outputs")) as (url, proc):
        yield url, proc


@pytest.fixture(scope="module")
def client(app):
    return Client(app[0], verbose=False)


def generate(client, prompt, **kwargs):
    kwargs = {"seconds": 4, "temperature": 1.0, "seed": 1} | kwargs
    return client.predict(prompt=handle_file(str(prompt)), api_name="/generate", **kwargs)


def test_upload_gives_audio_and_midi(client, midi_files):
    out = generate(client, midi_files[0], seed=5)
    wav, roll, files = out[0], out[1], out[2]
    with wave.open(wav) as f:
        assert f.getframerate() == 44_100 and f.getnframes() > 44_100
    combined, continuation = read_midi(files[0]), read_midi(files[1])
    prompt = read_midi(midi_files[0])
    assert len(combined) == len(prompt) + len(continuation)
    assert '"seed": 5' in read_text_meta(files[0])[0]
    assert roll.endswith(".png")
    assert out[-1] == 5  # the seed used is reported


def test_same_seed_same_music(client, midi_files):
    a = read_midi(generate(client, midi_files[1], seed=11)[2][1])
    b = read_midi(generate(client, midi_files[1], seed=11)[2][1])
    assert (a.notes == b.notes).all()


def test_example_prompt_and_candidates(client):
    out = generate(client, EXAMPLE, seconds=3, seed=2, candidates=2)
    first, second = out[2], out[5]
    assert first and second and first[0] != second[0]


def test_chaining_continues_the_previous_result(client, tmp_path, midi_files):
    first = generate(client, midi_files[2], seed=3)[2][0]
    local = tmp_path / "first.mid"
    shutil.copy(first, local)
    second = generate(client, local, seed=4)[2][0]
    assert read_midi(second).duration > read_midi(local).duration


def test_bad_upload_is_an_error_message_and_the_server_lives(app, client, tmp_path, midi_files):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"this is not a midi file")
    with pytest.raises(Exception, match="not a MIDI file"):
        generate(client, bad)
    with pytest.raises(Exception, match="temperature must be between 0.05 and 2"):
        generate(client, midi_files[0], temperature=50)
    assert app[1].poll() is None
    assert generate(client, midi_files[0])[2]


def test_browser_example_generate_shows_audio_and_piano_roll(app, artifacts):
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(app[0])
            page.get_by_label("…or pick an example (MAESTRO test split)").click()
            page.get_by_role("option").first.click()
            page.get_by_alt_text("Prompt window").or_(
                page.locator("img[src*='prompt']")
            ).first.wait_for(timeout=60_000)
            page.get_by_role("button", name="Generate").click()
            page.locator("audio").first.wait_for(state="attached", timeout=90_000)
            page.locator("img[src*='musicgen-seed']").first.wait_for(timeout=90_000)
            page.screenshot(path=str(artifacts / "app.png"), full_page=True)
        finally:
            browser.close()
