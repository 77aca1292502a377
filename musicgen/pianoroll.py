"""Piano-roll pictures a musician can read: a keyboard down the left with every C labelled, a
time axis in seconds, the prompt in blue and the continuation in orange (velocity as
brightness), and a red marker where the continuation starts. PLAYBACK_CURSOR_JS moves a line
across a roll while its audio plays (in the browser)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .midi import OFFSET, ONSET, PIANO_HIGH, PIANO_LOW, PITCH, VELOCITY, Performance

ROW = 5  # pixels per key
KEYBOARD = 44  # pixels left of the roll: key strip and octave labels
RIGHT = 8  # pixels right of the roll
AXIS = 26  # pixels under the roll: time ticks and labels
LEGEND = 22  # pixels above the roll
PROMPT_RGB = np.array([64, 132, 230])
CONTINUATION_RGB = np.array([240, 128, 40])
MARKER_RGB = (200, 30, 60)
BACKGROUND = (252, 252, 254)
GRID = (226, 226, 234)
TEXT = (60, 60, 70)
MAX_WIDTH = 1600
BLACK_KEYS = {1, 3, 6, 8, 10}  # pitch classes
TICK_STEPS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)  # scalable (FreeType) where Pillow has it
    except TypeError:
        return ImageFont.load_default()


def _tick_step(span: float, width: int) -> float:
    """The smallest round step giving labels at least ~70 px apart."""
    for step in TICK_STEPS:
        if step * width / span >= 70:
            return step
    return TICK_STEPS[-1]


def draw(
    prompt: Performance,
    continuation: Performance | None = None,
    width: int = 1000,
    seconds: float | None = None,
    rewritten: tuple[float, float] | None = None,
    origin: float = 0.0,
) -> Image.Image:
    """The prompt in blue, the continuation (same time axis) in orange after a red marker.
    The time axis runs from 0 to `seconds` (give the length of the audio beside the roll, so
    that PLAYBACK_CURSOR_JS lines up), by default to the last note's end. With `rewritten` (start,
    end), the orange notes are a passage rewritten inside the piece: red markers at both ends
    of the span, and the legend says so. `origin`: the piece's time at the roll's left edge
    (an excerpt of a longer piece is labelled in the piece's seconds)."""
    parts = [(prompt.notes, PROMPT_RGB)]
    if continuation is not None:
        parts.append((continuation.notes, CONTINUATION_RGB))
    last_off = max([float(n[:, OFFSET].max()) for n, _ in parts if len(n)], default=0.0)
    span = max(1.0, last_off if seconds is None else seconds)
    width = int(min(max(width, 300), MAX_WIDTH))
    roll_w = width - KEYBOARD - RIGHT
    keys = PIANO_HIGH - PIANO_LOW + 1
    top, bottom = LEGEND, LEGEND + keys * ROW
    scale = roll_w / span
    image = Image.new("RGB", (width, bottom + AXIS), BACKGROUND)
    pen = ImageDraw.Draw(image)
    small, label = _font(11), _font(13)

    def y_of(pitch: int) -> int:
        return top + (PIANO_HIGH - pitch) * ROW

    def x_of(seconds: float) -> float:
        return KEYBOARD + seconds * scale

    # keyboard strip and a grid line at every C, labelled C1..C8
    for pitch in range(PIANO_LOW, PIANO_HIGH + 1):
        y = y_of(pitch)
        black = pitch % 12 in BLACK_KEYS
        pen.rectangle(
            [KEYBOARD - 14, y, KEYBOARD - 2, y + ROW - 1],
            fill=(40, 40, 48) if black else (255, 255, 255),
            outline=(200, 200, 206),
        )
        if pitch % 12 == 0:
            pen.line([(KEYBOARD, y + ROW), (width, y + ROW)], fill=GRID)
            pen.text((2, y + ROW // 2 - 7), f"C{pitch // 12 - 1}", fill=TEXT, font=small)
    # time grid and axis
    step = _tick_step(span, roll_w)
    for t in np.arange(0.0, span + 1e-9, step):
        x = x_of(float(t))
        pen.line([(x, top), (x, bottom)], fill=GRID)
        pen.line([(x, bottom), (x, bottom + 4)], fill=TEXT)
        text = f"{t + origin:g} s"
        pen.text((min(x + 2, width - 40), bottom + 6), text, fill=TEXT, font=small)
    # notes
    for notes, base in parts:
        for onset, offset, pitch, velocity in notes[:, [ONSET, OFFSET, PITCH, VELOCITY]]:
            shade = 0.35 + 0.65 * velocity / 127.0  # loud notes saturated, soft ones pale
            colour = tuple(int(c) for c in 255 - (255 - base) * shade)
            x0, x1 = x_of(onset), max(x_of(offset), x_of(onset) + 1)
            y0 = y_of(int(pitch))
            pen.rectangle([x0, y0, x1, y0 + ROW - 1], fill=colour)
    # legend and the markers: where the continuation starts, or the rewritten span
    pen.rectangle([KEYBOARD, 5, KEYBOARD + 12, 15], fill=tuple(int(c) for c in PROMPT_RGB))
    first = "prompt" if rewritten is None else "the piece"
    pen.text((KEYBOARD + 16, 3), first, fill=TEXT, font=label)
    if rewritten is not None:
        for edge in rewritten:
            pen.line([(x_of(edge), top), (x_of(edge), bottom)], fill=MARKER_RGB, width=2)
        legend_x = KEYBOARD + 90
        pen.rectangle(
            [legend_x, 5, legend_x + 12, 15], fill=tuple(int(c) for c in CONTINUATION_RGB)
        )
        first_s, last_s = rewritten[0] + origin, rewritten[1] + origin
        text = f"the passage, {first_s:.1f} s to {last_s:.1f} s"
        pen.text((legend_x + 16, 3), text, fill=TEXT, font=label)
    elif continuation is not None and len(continuation):
        start = float(continuation.notes[:, ONSET].min())
        x = x_of(start)
        pen.line([(x, top), (x, bottom)], fill=MARKER_RGB, width=2)
        legend_x = KEYBOARD + 90
        pen.rectangle(
            [legend_x, 5, legend_x + 12, 15], fill=tuple(int(c) for c in CONTINUATION_RGB)
        )
        pen.text((legend_x + 16, 3), f"continuation from {start:.1f} s", fill=TEXT, font=label)
    return image


# A line over each roll at the playing position of the audio beside it: both sit in an element
# of class `musicgen-playable`, and the roll's time axis spans the audio (draw's `seconds`), so
# the position is currentTime / duration of the roll's width. Polled every animation frame:
# the native <audio> element's timeupdate fires only ~4 times a second.
PLAYBACK_CURSOR_JS = f"""
() => {{
  const LEFT = {KEYBOARD}, RIGHT = {RIGHT}, TOP = {LEGEND};
  const HEIGHT = {(PIANO_HIGH - PIANO_LOW + 1) * ROW};
  function place(box) {{
    const audio = box.querySelector("audio"), img = box.querySelector("img");
    let cursor = box.querySelector(".musicgen-cursor");
    const show = audio && img && img.naturalWidth > 0 && audio.duration > 0
      && (!audio.paused || audio.currentTime > 0);
    if (!show) {{
      if (cursor) cursor.style.display = "none";
      return;
    }}
    const frame = img.parentElement;
    if (!cursor || cursor.parentElement !== frame) {{
      cursor?.remove();
      cursor = document.createElement("div");
      cursor.className = "musicgen-cursor";
      if (getComputedStyle(frame).position === "static") frame.style.position = "relative";
      frame.appendChild(cursor);
    }}
    // where the picture is drawn inside the <img> box (object-fit: scale-down, centred)
    const scale = Math.min(1, img.clientWidth / img.naturalWidth,
                           img.clientHeight / img.naturalHeight);
    const i = img.getBoundingClientRect(), f = frame.getBoundingClientRect();
    const x0 = i.left - f.left + img.clientLeft + (img.clientWidth - img.naturalWidth * scale) / 2;
    const y0 = i.top - f.top + img.clientTop + (img.clientHeight - img.naturalHeight * scale) / 2;
    const along = Math.min(1, audio.currentTime / audio.duration);
    const x = x0 + (LEFT + along * (img.naturalWidth - LEFT - RIGHT)) * scale;
    Object.assign(cursor.style, {{
      display: "block", position: "absolute", pointerEvents: "none", zIndex: 5,
      left: `${{x - 1}}px`, top: `${{y0 + TOP * scale}}px`,
      width: "2px", height: `${{HEIGHT * scale}}px`, background: "rgba(20, 20, 30, 0.85)",
    }});
    cursor.dataset.along = along.toFixed(4);
  }}
  function tick() {{
    document.querySelectorAll(".musicgen-playable").forEach(place);
    requestAnimationFrame(tick);
  }}
  requestAnimationFrame(tick);
}}
"""
