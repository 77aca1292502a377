"""The recorder: play a phrase in the browser and it becomes the prompt.

The page does the playing (recorder.js: an on-screen piano, the computer keyboard, a MIDI
keyboard through Web MIDI, a Web Audio voice) and writes the phrase as a Standard MIDI File.
The server takes nothing from the page but those bytes, and they go through the checks an
upload goes through (Studio.save_recording). Here: what the app puts on the page, and the
bytes out of the page's message.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from .errors import InvalidMidiError
from .midi import MAX_FILE_BYTES, MAX_FILE_SECONDS, MAX_NOTES

HERE = Path(__file__).resolve().parent
JS = (HERE / "recorder.js").read_text()
CSS = (HERE / "recorder.css").read_text()
# The recorder's skeleton; recorder.js draws the keys and brings it to life.
HTML = """
<div class="mg-recorder">
  <div class="mg-bar">
    <button type="button" class="mg-record">⏺ Record</button>
    <button type="button" class="mg-octave-down" title="octave down (Z)">◀</button>
    <span class="mg-octave"></span>
    <button type="button" class="mg-octave-up" title="octave up (X)">▶</button>
    <span class="mg-status" role="status" aria-live="polite"></span>
  </div>
  <div class="mg-piano" aria-label="piano keyboard"></div>
  <div class="mg-help">Play with the mouse, the computer keys A W S E D F T G Y H U J K
    (C to C, the letters on the keys; Z / X: octave down / up) or a MIDI keyboard:
    <button type="button" class="mg-connect">connect a MIDI keyboard</button>
    <span class="mg-midi"></span></div>
</div>
"""
# What the page may send: a MIDI file of at most MAX_FILE_BYTES, base64 (4 characters per 3
# bytes).
MAX_MESSAGE_CHARS = (MAX_FILE_BYTES + 2) // 3 * 4


def page_limits() -> dict:
    """The file limits the page cuts a recording to (it says so when it does)."""
    return {"max_seconds": MAX_FILE_SECONDS, "max_notes": MAX_NOTES}


def recording_bytes(encoded: object) -> bytes:
    """The MIDI bytes of what the page sent (base64), or InvalidMidiError."""
    if not isinstance(encoded, str) or not encoded:
        raise InvalidMidiError("The recording did not arrive: record the phrase again.")
    if len(encoded) > MAX_MESSAGE_CHARS:
        raise InvalidMidiError(
            f"The recording is over {MAX_FILE_BYTES / 1e6:.0f} MB, the limit of a prompt file."
        )
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMidiError("The recording arrived damaged: record the phrase again.") from None
