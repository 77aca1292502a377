"""The app as people and scripts use it: a launched server, gradio_client, a real browser."""

import wave
from pathlib import Path

import pytest
from conftest import ROOT
from gradio_client import Client, handle_file

from musicgen.midi import prompt_window, read_midi, read_text_meta, write_midi
from musicgen.pianoroll import KEYBOARD, LEGEND, RIGHT
from musicgen.studio import MAX_CANDIDATES

EXAMPLE = sorted((ROOT / "examples").glob("*.mid"))[0]

pytestmark = pytest.mark.slow  # real processes: a server, the CLI, training runs


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


def test_a_piece_built_step_by_step_through_the_api(client, tmp_path):
    # Upload a 50 s file, continue 10 s, continue take 2 for 10 s, undo that, continue again:
    # the final MIDI holds the 50 s of the upload as they were, then 20 s of continuation.
    upload = tmp_path / "sonata.mid"
    write_midi(prompt_window(read_midi(EXAMPLE), 0.0, 50.0), upload)
    notes = read_midi(upload).notes
    step1 = generate(client, upload, seconds=10, seed=3, candidates=2)
    take2 = step1[5][0]
    assert Path(take2).name == "sonata-step1-c2.mid"
    generate(client, take2, seconds=10, seed=4)  # step 2 ...
    final = generate(client, take2, seconds=10, seed=5)  # ... undone: step 2 again
    piece = read_midi(final[2][0])
    assert Path(final[2][0]).name == "sonata-step2-c1.mid"
    # the upload untouched (but a note still sounding when the continuation strikes its key
    # again ends there)
    kept = piece.notes[: len(notes)]
    assert abs(kept[:, [0, 2, 3]] - notes[:, [0, 2, 3]]).max() < 2e-3
    assert (kept[:, 1] <= notes[:, 1] + 2e-3).all()
    added = piece.notes[len(notes) :, 0]
    last_upload_onset = notes[:, 0].max()
    assert len(added) and added.min() >= last_upload_onset - 1e-3
    assert added.max() <= last_upload_onset + 20.0 + 0.02  # two steps of 10 s
    for out in (step1, final):  # every take carries the model's judgement, best first
        judged = [t["distance_from_prompt"] for t in out[-3]]
        assert all(t["log_likelihood_per_note"] is not None for t in out[-3])
        assert all(j is not None for j in judged) and judged == sorted(judged)
        assert all(t["longest_maestro_run"]["notes"] >= 0 for t in out[-3])


def rewrite(client, piece, **kwargs):
    kwargs = {"start": 4.0, "end": 8.0, "candidates": 3, "seed": 1} | kwargs
    return client.predict(piece=handle_file(str(piece)), api_name="/rewrite", **kwargs)


def test_rewrite_a_passage_through_the_api(client, midi_files, tmp_path):
    out = rewrite(client, midi_files[0])
    slot = 3  # per passage offered: audio, roll, MIDI
    wav, roll, midi = out[0], out[1], out[2]
    with wave.open(wav) as f:  # in context: 3 s before the span to 3 s after it, and the tail
        assert f.getframerate() == 44_100 and 10.0 <= f.getnframes() / 44_100 <= 12.0
    assert roll.endswith("-step1-r1.png") and Path(midi).name.endswith("-step1-r1.mid")
    settings = out[slot * MAX_CANDIDATES]
    assert len(settings) == 3 and settings[0]["rewrite"] == {"from": 4.0, "to": 8.0}
    judged = [s["after_nll_per_note"] for s in settings]
    assert judged == sorted(judged) and settings[0]["original_after_nll_per_note"] > 0
    assert out[slot * 3] is None  # (only three passages: the fourth slot stays empty)
    piece, original = read_midi(midi).notes, read_midi(midi_files[0]).notes
    outside = lambda n: n[(n[:, 0] < 4) | (n[:, 0] >= 8)][:, [0, 2, 3]]  # noqa: E731
    assert abs(outside(piece) - outside(original)).max() < 0.01
    # a kept passage is the piece: rewriting it again is step 2
    again = rewrite(client, midi, start=2.5, end=3.5, candidates=2)
    assert Path(again[2]).name.endswith("-step2-r1.mid")
    with pytest.raises(Exception, match="between 0.5 and 30"):
        rewrite(client, midi_files[0], start=4.0, end=4.2)
    with pytest.raises(Exception, match="candidates must be between 2 and 16"):
        rewrite(client, midi_files[0], candidates=40)


def test_bad_upload_is_an_error_message_and_the_server_lives(app, client, tmp_path, midi_files):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"this is not a midi file")
    with pytest.raises(Exception, match="not a MIDI file"):
        generate(client, bad)
    with pytest.raises(Exception, match="temperature must be between 0.05 and 2"):
        generate(client, midi_files[0], temperature=50)
    assert app[1].poll() is None
    assert generate(client, midi_files[0])[2]


@pytest.fixture(scope="module")
def page(app, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(app[0])
    yield page
    page.close()


def errors_shown(page) -> dict:
    """The error pop-ups' texts, and the labels of the fields wearing a red "Error" badge."""
    return page.evaluate(
        """() => ({
        toasts: [...document.querySelectorAll('[data-testid=toast-text]')].map(t => t.innerText),
        badges: [...document.querySelectorAll('[data-testid=status-tracker] .error')].map(
            b => b.closest('.block')?.innerText.split('\\n')[0] ?? '(page)'),
        })"""
    )


def close_toasts(page) -> None:
    for button in page.locator("[data-testid=toast-close]").all():
        button.click()


def test_browser_starts_blank_and_a_mistake_gets_one_message_in_its_place(page, artifacts):
    page.reload()
    page.get_by_role("button", name="Generate").wait_for()
    page.wait_for_timeout(1500)  # the load event blanks the automatic boxes
    for label in ("Prompt from (s)", "Prompt to (s)", "Seed used"):
        assert page.get_by_label(label).input_value() == "", label  # not a made-up 0
    assert page.get_by_role("button", name="Undo the last continue").is_disabled()
    assert not page.get_by_role("button", name="Continue from take 1").is_visible()
    page.get_by_role("button", name="Generate").click()  # no prompt yet
    page.get_by_test_id("toast-text").first.wait_for(timeout=10_000)
    page.wait_for_timeout(500)
    shown = errors_shown(page)
    page.screenshot(path=str(artifacts / "error-no-prompt.png"), full_page=True)
    assert shown["toasts"] == ["Upload a MIDI file or pick an example first."]
    assert len(shown["badges"]) <= 1 and "Seed used" not in shown["badges"], shown
    close_toasts(page)
    # a window outside the file: said beside the boxes, no pop-up, no badge
    page.get_by_label("…or pick an example (MAESTRO test split)").click()
    page.get_by_role("option").first.click()
    page.locator("img[src*='prompt']").first.wait_for(timeout=60_000)
    page.get_by_label("Prompt from (s)").fill("10")
    page.get_by_label("Prompt to (s)").fill("5")
    page.get_by_text("⚠️").wait_for(timeout=10_000)
    page.screenshot(path=str(artifacts / "error-window.png"), full_page=True)
    assert errors_shown(page) == {"toasts": [], "badges": []}
    page.get_by_label("Prompt to (s)").fill("15")  # right again: the message goes
    page.locator("img[src*='prompt']").first.wait_for(timeout=30_000)
    page.get_by_text("The model hears 5.0 s").wait_for(timeout=10_000)
    assert page.get_by_text("⚠️").count() == 0


def test_browser_example_generate_shows_audio_and_piano_roll(page, artifacts):
    page.get_by_label("…or pick an example (MAESTRO test split)").click()
    page.get_by_role("option").first.click()
    page.locator("img[src*='prompt']").first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Generate").click()
    page.locator("audio").first.wait_for(state="attached", timeout=90_000)
    page.locator("img[src*='-step1-c1']").first.wait_for(timeout=90_000)
    page.screenshot(path=str(artifacts / "app.png"), full_page=True)


def test_browser_cursor_follows_the_take_being_played(page, artifacts):
    """The line over a take's roll sits at the audio's position on the roll's own time axis
    (the picture's geometry is pianoroll's), and moves while it plays."""
    take = page.locator(".musicgen-playable").filter(has=page.locator("img[src*='-c1']"))
    take.locator("img").wait_for(timeout=90_000)
    audio = take.locator("audio")
    audio.evaluate("a => new Promise(r => a.readyState > 0 ? r() : a.onloadedmetadata = r)")
    audio.evaluate("a => { a.currentTime = a.duration / 4; }")
    cursor = take.locator(".musicgen-cursor")
    cursor.wait_for(timeout=5_000)
    page.wait_for_timeout(300)
    natural_width = take.locator("img").evaluate("i => i.naturalWidth")
    picture, line = take.locator("img").bounding_box(), cursor.bounding_box()
    scale = picture["width"] / natural_width  # the roll is shown narrower than drawn
    roll_x = (line["x"] + line["width"] / 2 - picture["x"]) / scale
    expected = KEYBOARD + (natural_width - KEYBOARD - RIGHT) / 4
    assert roll_x == pytest.approx(expected, abs=3), (roll_x, expected)
    assert line["y"] == pytest.approx(picture["y"] + LEGEND * scale, abs=2)
    audio.evaluate("a => { a.muted = true; return a.play(); }")
    page.wait_for_timeout(1200)
    played = float(cursor.get_attribute("data-along"))
    audio.evaluate("a => a.pause()")
    assert played > 0.25 and cursor.bounding_box()["x"] > line["x"]
    take.screenshot(path=str(artifacts / "cursor.png"))


def test_browser_builds_a_three_step_piece_with_an_undo(page, artifacts):
    page.get_by_label("…or pick an example (MAESTRO test split)").click()
    page.get_by_role("option").nth(1).click()
    page.locator("img[src*='prompt']").first.wait_for(timeout=60_000)
    candidates = page.get_by_label("Candidates").last  # the slider's number box
    candidates.fill("2")
    candidates.press("Enter")
    prompt_roll = page.locator("img[src*='prompt.png']").first

    def prompt_becomes(action, name: str) -> None:
        """Do `action`; the prompt file must become the take `name`, and its preview follow.
        (Not the preview's picture: a tiny random model can repeat itself exactly, and then
        two windows are the same picture.)"""
        action()
        page.locator("#prompt-file").get_by_text(name).wait_for(timeout=30_000)
        page.wait_for_timeout(1500)  # the preview's outputs land
        assert prompt_roll.is_visible()

    def step(n: int, take: int) -> None:
        page.get_by_role("button", name="Generate").click()
        page.locator(f"img[src*='-step{n}-c2']").first.wait_for(timeout=90_000)
        page.wait_for_timeout(1000)  # the rest of the event's outputs (the takes) land
        page.screenshot(path=str(artifacts / f"piece-step{n}.png"), full_page=True)
        button = page.get_by_role("button", name=f"Continue from take {take}")
        prompt_becomes(button.click, f"-step{n}-c{take}")

    step(1, take=2)  # continue the second take: the prompt is now ...-step1-c2.mid
    step(2, take=1)
    undo = page.get_by_role("button", name="Undo the last continue")
    prompt_becomes(undo.click, "-step1-c2")  # back one step: step 1's second take again
    take2 = page.get_by_role("button", name="Continue from take 2")
    prompt_becomes(take2.click, "-step2-c2")  # step 2's other take instead
    page.get_by_role("button", name="Generate").click()
    page.locator("img[src*='-step3-c2']").first.wait_for(timeout=90_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(artifacts / "piece-final.png"), full_page=True)


def test_browser_rewrites_a_passage_and_keeps_it(page, artifacts):
    """The whole flow: a piece, a span, the passages offered (audio and roll in context), one
    kept as the piece, then undone."""
    page.get_by_label("…or pick an example (MAESTRO test split)").click()
    page.get_by_role("option").nth(2).click()
    page.locator("img[src*='prompt']").first.wait_for(timeout=60_000)
    # (the file box shows the queue's progress over its name until the event has finished)
    page.wait_for_function(
        "() => { const t = document.querySelector('#prompt-file')?.innerText || '';"
        " return t.includes('.mid') && !t.includes('queue'); }",
        timeout=30_000,
    )
    name = page.locator("#prompt-file").inner_text()
    page.get_by_text("✎ Rewrite a passage of the piece").click()
    page.get_by_label("Passage to (s)").fill("14")
    page.get_by_label("Passage from (s)").fill("13.8")  # too short: said in its place
    page.get_by_text("between 0.5 and 30 s at once").wait_for(timeout=10_000)
    page.get_by_label("Passage from (s)").fill("10")
    page.locator("#passage-preview img").wait_for(timeout=30_000)  # the passage, marked
    assert errors_shown(page)["toasts"] == []
    tries = page.get_by_label("Passages to try").last
    tries.fill("4")
    tries.press("Enter")
    page.locator("#rewrite-button").click()
    page.locator("img[src*='-step1-r4']").first.wait_for(timeout=90_000)
    page.wait_for_timeout(1000)
    page.locator("#rewrite").screenshot(path=str(artifacts / "rewrite.png"))
    assert page.get_by_text("the original passage").count() == 1  # the summary's judgement
    page.get_by_role("button", name="Keep passage 2").click()
    page.locator("#prompt-file").get_by_text("-step1-r2").wait_for(timeout=30_000)
    page.get_by_role("button", name="Undo the last continue").click()
    page.locator("#prompt-file").get_by_text(name.split(".")[0][-12:]).wait_for(timeout=30_000)
    page.screenshot(path=str(artifacts / "rewrite-page.png"), full_page=True)
