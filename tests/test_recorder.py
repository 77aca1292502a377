"""The recorder: a phrase played in a real browser (computer keys, a stand-in MIDI keyboard)
becomes the prompt, through the checks an upload goes through; and what the server refuses."""

import base64
import time

import numpy as np
import pytest

from musicgen.errors import InvalidMidiError
from musicgen.midi import MAX_FILE_BYTES, OFFSET, ONSET, PITCH, VELOCITY, read_midi
from musicgen.recorder import recording_bytes
from musicgen.studio import Studio

# A stand-in for the browser's Web MIDI (a headless browser has no device): one input whose
# messages the test sends through window.testMidi.send([status, data1, data2]).
FAKE_WEB_MIDI = """
(() => {
  const input = { name: "Test keyboard", onmidimessage: null };
  window.testMidi = {
    send: (data) => {  // -> the message's time stamp
      const timeStamp = performance.now();
      input.onmidimessage?.({ data: Uint8Array.from(data), timeStamp });
      return timeStamp;
    },
  };
  navigator.requestMIDIAccess = () =>
    Promise.resolve({ inputs: new Map([["test", input]]), onstatechange: null });
})();
"""


def test_the_server_takes_only_a_midi_file_from_the_page(tiny_checkpoint, tmp_path, midi_files):
    studio = Studio.load([tiny_checkpoint], "cpu", tmp_path)
    data = midi_files[0].read_bytes()
    path, perf = studio.save_recording(base64.b64encode(data).decode())
    assert path.name.startswith("recording-") and path.suffix == ".mid"
    assert path.read_bytes() == data and len(perf) == len(read_midi(midi_files[0]))
    for message, why in [
        (None, "did not arrive"),
        ({"midi": "x"}, "did not arrive"),
        ("not base64!", "damaged"),
        ("A" * (MAX_FILE_BYTES * 2), "limit"),
        (base64.b64encode(b"MThd nonsense").decode(), "MIDI header"),
    ]:
        with pytest.raises(InvalidMidiError, match=why):
            studio.save_recording(message)
    no_notes = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x00\x04\x00\xff\x2f\x00"
    with pytest.raises(InvalidMidiError, match="no"):
        studio.save_recording(base64.b64encode(no_notes).decode())
    assert recording_bytes(base64.b64encode(b"MThd").decode()) == b"MThd"


@pytest.fixture()
def page(app, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.add_init_script(FAKE_WEB_MIDI)
    page = context.new_page()
    page.goto(app[0])
    page.locator(".mg-piano .mg-key").first.wait_for(timeout=60_000)
    yield page
    context.close()


def recorded_prompt(page) -> np.ndarray:
    """The notes of the prompt file now in the prompt box (read from its download link)."""
    page.locator("#prompt-file").get_by_text("recording-").wait_for(timeout=30_000)
    link = page.locator("#prompt-file a[href]").first.get_attribute("href")
    response = page.request.get(link if link.startswith("http") else page.url + link)
    return read_midi(response.body()).notes


@pytest.mark.slow
def test_a_phrase_played_on_the_computer_keys_becomes_the_prompt(page, artifacts):
    record = page.locator(".mg-record")
    record.click()
    assert record.inner_text().endswith("Stop recording")
    played = []  # (pitch, when the key went down)
    # C4, E4 and G4 with gaps of 0.4 and 0.25 s, then X (octave up) and C5 on the A key
    for key, pitch, hold, gap in [("a", 60, 0.15, 0.4), ("d", 64, 0.2, 0.25), ("g", 67, 0.3, 0.3)]:
        played.append((pitch, time.perf_counter()))
        page.keyboard.down(key)
        if pitch == 64:
            assert page.locator(".mg-down").count() == 1  # the key is seen going down
            page.locator(".mg-recorder").screenshot(path=str(artifacts / "recorder-key-down.png"))
        time.sleep(hold)
        page.keyboard.up(key)
        time.sleep(gap - hold if gap > hold else 0.05)
    page.keyboard.press("x")
    played.append((72, time.perf_counter()))
    page.keyboard.down("a")
    time.sleep(0.2)
    record.click()  # stopped while the key is still down: released there
    page.keyboard.up("a")
    notes = recorded_prompt(page)
    page.screenshot(path=str(artifacts / "recorder.png"), full_page=True)
    assert notes[:, PITCH].tolist() == [p for p, _ in played]
    assert notes[0, ONSET] == pytest.approx(0.0, abs=1e-3)  # leading silence trimmed
    gaps = np.diff([t for _, t in played])
    np.testing.assert_allclose(np.diff(notes[:, ONSET]), gaps, atol=0.03)
    assert notes[-1, OFFSET] - notes[-1, ONSET] == pytest.approx(0.2, abs=0.1)
    page.get_by_text("notes. The model hears").wait_for(timeout=30_000)  # its preview
    page.get_by_role("button", name="Generate").click()
    page.locator("img[src*='recording-'][src*='-step1-c1']").first.wait_for(timeout=90_000)
    page.screenshot(path=str(artifacts / "recorder-take.png"), full_page=True)


@pytest.mark.slow
def test_an_empty_recording_says_so_and_changes_nothing(page):
    record = page.locator(".mg-record")
    record.click()
    page.wait_for_timeout(300)
    record.click()
    page.get_by_text("Nothing was recorded").wait_for(timeout=5_000)
    page.wait_for_timeout(1000)
    assert page.locator("#prompt-file").get_by_text("recording-").count() == 0


@pytest.mark.slow
def test_a_midi_keyboard_plays_with_velocity_and_pedal(page):
    page.get_by_role("button", name="connect a MIDI keyboard").click()
    page.get_by_text("MIDI: Test keyboard.").wait_for(timeout=5_000)
    page.locator(".mg-record").click()
    send = lambda *data: page.evaluate("d => window.testMidi.send(d)", list(data))  # noqa: E731
    first = send(0x90, 60, 100)  # C4, loud (send gives the message's time stamp, ms)
    send(0xB0, 64, 127)  # the pedal down
    page.wait_for_timeout(200)
    send(0x80, 60, 0)  # the key up: the pedal holds the note
    soft = send(0x90, 67, 30)  # G4, soft (note-on with velocity 0 is a note-off)
    page.wait_for_timeout(300)
    send(0x90, 67, 0)
    page.wait_for_timeout(300)
    pedal_up = send(0xB0, 64, 0)  # the pedal up: both notes end here
    page.wait_for_timeout(200)
    page.locator(".mg-record").click()
    notes = recorded_prompt(page)
    assert notes[:, PITCH].tolist() == [60, 67]
    assert notes[0, VELOCITY] > notes[1, VELOCITY] + 40
    assert notes[1, ONSET] == pytest.approx((soft - first) / 1000, abs=0.005)
    np.testing.assert_allclose(notes[:, OFFSET], (pedal_up - first) / 1000, atol=0.005)
