"""How loud the studio's audio is: the integrated loudness (ITU-R BS.1770-4: K-weighting, 400 ms
blocks, the absolute and relative gates) and the peak of the bundled examples rendered as the
studio renders them (the whole file, or its first `--seconds`). Prints JSON.

    python benchmarks/loudness.py [--seconds 60]
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np

from musicgen.midi import prompt_window, read_midi
from musicgen.synth import SAMPLE_RATE, Renderer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def biquad(x: np.ndarray, b, a) -> np.ndarray:
    """A direct-form I biquad over x (a plain loop: a benchmark, not a hot path)."""
    y = np.zeros_like(x)
    x1 = x2 = y1 = y2 = 0.0
    for i, v in enumerate(x.tolist()):
        out = b[0] * v + b[1] * x1 + b[2] * x2 - a[1] * y1 - a[2] * y2
        x2, x1, y2, y1 = x1, v, y1, out
        y[i] = out
    return y


def k_weighting(rate: int):
    """BS.1770's two stages (a high shelf, then a high-pass), for any sample rate."""
    f0, gain, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = (
        [(vh + vb * k / q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0],
        [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0],
    )
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    high_pass = ([1.0, -2.0, 1.0], [1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0])
    return shelf, high_pass


def integrated_lufs(audio: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """audio: (frames, channels) floats in [-1, 1]."""
    shelf, high_pass = k_weighting(rate)
    weighted = [biquad(biquad(ch, *shelf), *high_pass) for ch in audio.T.astype(np.float64)]
    block, step = int(0.4 * rate), int(0.1 * rate)
    starts = range(0, max(len(audio) - block, 0) + 1, step)
    power = np.array([sum(float(np.mean(w[s : s + block] ** 2)) for w in weighted) for s in starts])
    loud = -0.691 + 10 * np.log10(np.maximum(power, 1e-12))
    kept = power[loud > -70]
    relative = -0.691 + 10 * np.log10(kept.mean()) - 10
    kept = power[loud > max(-70, relative)]
    return float(-0.691 + 10 * np.log10(kept.mean()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    renderer = Renderer()
    rows = {}
    for path in sorted(EXAMPLES.glob("*.mid")):
        perf = read_midi(path, isolate=False)
        perf = prompt_window(perf, 0.0, min(args.seconds, perf.duration))
        audio = renderer.render(perf).astype(np.float64) / 32768
        rms = 20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-12)
        rows[path.stem] = {
            "lufs": round(integrated_lufs(audio), 1),
            "rms_dbfs": round(float(rms), 1),
            "peak_dbfs": round(float(20 * np.log10(np.abs(audio).max() + 1e-12)), 1),
        }
        print(json.dumps({path.stem: rows[path.stem]}), flush=True)
    lufs = [r["lufs"] for r in rows.values()]
    summary = {
        "examples": rows,
        "median_lufs": float(np.median(lufs)),
        "loudest_peak_dbfs": max(r["peak_dbfs"] for r in rows.values()),
        "seconds": args.seconds,
        "soundfont": renderer.soundfont.name,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
