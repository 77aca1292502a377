"""The live player: hear a take while it is written.

The server streams the first take's audio as WAV stretches (streaming.LiveTake) in the first
take slot's audio output; the page hands each one to player.js, which plays them back to back
with Web Audio, sample-exact, so the stretches sound as the one WAV they add up to. It shows
where it is ("12.4 s heard · 18.0 s written"), waits visibly when the model falls behind
("catching up"), and tells the Stop button how much was heard: the take is cut there.
"""

from __future__ import annotations

import re
from pathlib import Path

from .synth import SAMPLE_RATE

HERE = Path(__file__).resolve().parent
JS = (HERE / "player.js").read_text()
CSS = (HERE / "player.css").read_text()
HTML = """
<div class="mg-player" data-state="idle">
  <span class="mg-light" aria-hidden="true"></span>
  <span class="mg-status" role="status" aria-live="polite">Generate, and the take plays
    while it is written.</span>
</div>
"""
# How a streamed stretch's file is named (streaming.LiveTake): the page tells them from the
# take's final WAV by this.
STRETCH_NAME = re.compile(r"^stream-(\d{4})\.wav$")
# JavaScript for the page: the events that feed the player, and what Stop sends.
FEED_JS = (
    "(audio) => { document.dispatchEvent(new CustomEvent('musicgen-stream', "
    "{detail: audio})); return []; }"
)
HEARD_JS = "() => [window.musicgenLive ? window.musicgenLive.stop() : null]"


def page_settings() -> dict:
    return {"sample_rate": SAMPLE_RATE, "resume_seconds": RESUME_SECONDS}


# After running dry, the player waits for this much audio before it plays again (so a slow
# model gives a few clean pauses, not a stutter).
RESUME_SECONDS = 1.5
