"""Piano-roll pictures: prompt and continuation in different colours, velocity as brightness,
a marker where the continuation starts."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .midi import OFFSET, ONSET, PITCH, VELOCITY, Performance

LOW, HIGH = 21, 108
ROW = 4  # pixels per key
PROMPT_RGB = np.array([64, 132, 230])
CONTINUATION_RGB = np.array([240, 128, 40])
MARKER_RGB = (200, 30, 60)
BACKGROUND = (250, 250, 252)
MAX_WIDTH = 1600


def draw(
    prompt: Performance, continuation: Performance | None = None, width: int = 1000
) -> Image.Image:
    """The prompt in blue, the continuation (same time axis) in orange after a red marker."""
    parts = [(prompt.notes, PROMPT_RGB)]
    if continuation is not None:
        parts.append((continuation.notes, CONTINUATION_RGB))
    span = max([1.0] + [float(n[:, OFFSET].max()) for n, _ in parts if len(n)])
    width = int(min(max(width, 200), MAX_WIDTH))
    height = (HIGH - LOW + 1) * ROW
    scale = (width - 1) / span
    image = Image.new("RGB", (width, height + 18), BACKGROUND)
    pen = ImageDraw.Draw(image)
    for pitch in range(LOW, HIGH + 1, 1):  # faint lines at every C
        if pitch % 12 == 0:
            y = (HIGH - pitch) * ROW + ROW
            pen.line([(0, y), (width, y)], fill=(228, 228, 236))
    for notes, base in parts:
        for onset, offset, pitch, velocity in notes[:, [ONSET, OFFSET, PITCH, VELOCITY]]:
            shade = 0.35 + 0.65 * velocity / 127.0  # loud notes saturated, soft ones pale
            colour = tuple(int(c) for c in 255 - (255 - base) * shade)
            x0, x1 = onset * scale, max(offset * scale, onset * scale + 1)
            y0 = (HIGH - int(pitch)) * ROW
            pen.rectangle([x0, y0, x1, y0 + ROW - 1], fill=colour)
    pen.text((4, height + 3), "prompt", fill=tuple(int(c) for c in PROMPT_RGB))
    if continuation is not None and len(continuation):
        x = float(continuation.notes[:, ONSET].min()) * scale
        pen.line([(x, 0), (x, height)], fill=MARKER_RGB, width=2)
        pen.text((min(x + 4, width - 130), height + 3), "continuation", fill=MARKER_RGB)
    pen.text((width - 40, height + 3), f"{span:.0f} s", fill=(90, 90, 90))
    return image
