"""Do continuations of test-split prompts sound like the real continuations? Prints JSON.

For each of N test-split pieces spread over the split: the prompt is seconds [60, 80) of the
performance, each model adds 20 s (seed 0, the default sampling settings), and the real seconds
[80, 100) are the reference. Measured on both: notes per second, mean velocity, median note
duration, polyphony (notes sounding, averaged over time), the pitch-class histogram's
Jensen-Shannon divergence to the real continuation (bits), and how density, velocity and
duration drift from the first to the last 5 s. As a yardstick, the divergence between the real
continuation and another piece's real continuation ("unrelated but genuine piano music").
Also reported: the most notes any continuation strikes at one onset, beside the limit generation
keeps to (the densest onset of MAESTRO's train split).

    python benchmarks/continuation_stats.py --data ../shared/data/maestro-v3.0.0 [--pieces 32]
        [--checkpoint DIR ...]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from musicgen.checkpoint import BUNDLED_CHECKPOINTS
from musicgen.data import list_pieces
from musicgen.errors import MusicgenError
from musicgen.generate import MAX_NOTES_PER_ONSET, SamplingConfig
from musicgen.midi import OFFSET, ONSET, PITCH, VELOCITY, prompt_window, read_midi
from musicgen.studio import Model

PROMPT, LENGTH, EDGE = (60.0, 80.0), 20.0, 5.0  # seconds


def features(notes: np.ndarray, seconds: float) -> dict:
    """Statistics of notes whose onsets lie in [0, seconds) (offsets cut at `seconds`)."""
    onsets = notes[:, ONSET]
    durations = np.minimum(notes[:, OFFSET], seconds) - onsets
    pcs = np.bincount(notes[:, PITCH].astype(int) % 12, minlength=12).astype(float)

    def part(a: float, b: float) -> dict:
        keep = (onsets >= a) & (onsets < b)
        return {
            "density": float(keep.sum() / (b - a)),
            "velocity": float(notes[keep, VELOCITY].mean()) if keep.any() else float("nan"),
            "median_duration": float(np.median(durations[keep])) if keep.any() else float("nan"),
        }

    return {
        "pc": pcs / max(pcs.sum(), 1),
        **part(0.0, seconds),
        "polyphony": float(durations.sum() / seconds),  # time-averaged notes sounding
        "first": part(0.0, EDGE),
        "last": part(seconds - EDGE, seconds),
    }


def test_prompts(data: str, pieces: int, length: float) -> list[tuple]:
    """(piece, prompt window = seconds PROMPT, real continuation = the `length` s after it) for
    `pieces` test-split performances spread over the split (those too short are skipped)."""
    test = [p for p in list_pieces(data) if p.split == "test"]
    out = []
    for i in np.linspace(0, len(test) - 1, pieces).astype(int):
        perf = read_midi(Path(data) / test[i].path, isolate=False)
        try:
            window = prompt_window(perf, *PROMPT)
            real = prompt_window(perf, PROMPT[1], PROMPT[1] + length)
        except MusicgenError:
            continue  # piece too short
        out.append((test[i], window, real))
    return out


def js_bits(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    kl = lambda a, b: float(np.sum(a[a > 0] * np.log2(a[a > 0] / b[a > 0])))  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def mean(rows: list[dict], *keys: str) -> float:
    values = []
    for row in rows:
        for key in keys:
            row = row[key]
        values.append(row)
    return round(float(np.nanmean(values)), 3)


def summarise(rows: list[dict], side: str) -> dict:
    out = {
        key: mean(rows, side, key)
        for key in ("density", "velocity", "median_duration", "polyphony")
    }
    for key in ("density", "velocity", "median_duration"):
        out[f"{key}_first_5s"] = mean(rows, side, "first", key)
        out[f"{key}_last_5s"] = mean(rows, side, "last", key)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--pieces", type=int, default=32)
    parser.add_argument("--checkpoint", action="append", help="repeatable; default: both bundled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=SamplingConfig.top_p)
    args = parser.parse_args()
    prompts = [
        (piece, window, features(real.notes, LENGTH))
        for piece, window, real in test_prompts(args.data, args.pieces, LENGTH)
    ]
    shuffled = prompts[1:] + prompts[:1]  # each piece's real continuation vs another piece's
    js_other = [js_bits(p[2]["pc"], o[2]["pc"]) for p, o in zip(prompts, shuffled)]
    summary = {
        "pieces": len(prompts),
        "prompt_seconds": PROMPT,
        "continuation_seconds": LENGTH,
        "seed": args.seed,
        "top_p": args.top_p,
        "real": summarise([{"real": p[2]} for p in prompts], "real"),
        "pitch_class_js_bits_other_piece_vs_real": round(float(np.mean(js_other)), 4),
        "models": {},
    }
    checkpoints = args.checkpoint or [str(d) for d in BUNDLED_CHECKPOINTS]
    for checkpoint in checkpoints:
        model = Model.load(checkpoint)
        rows, piles = [], []
        for _piece, window, real in prompts:
            config = SamplingConfig(seconds=LENGTH, seed=args.seed, top_p=args.top_p)
            added = model.continue_window(window, config)[0].added
            start = float(window.notes[:, ONSET].max())  # the continuation's time origin
            generated = added.notes.copy()
            generated[:, [ONSET, OFFSET]] -= start
            piles.append(model.tokenizer.densest_onset(model.tokenizer.encode(added)))
            rows.append({"real": real, "generated": features(generated, LENGTH)})
        js_model = [js_bits(r["real"]["pc"], r["generated"]["pc"]) for r in rows]
        summary["models"][model.name] = {
            **summarise(rows, "generated"),
            "pitch_class_js_bits_vs_real": round(float(np.mean(js_model)), 4),
            "densest_onset": max(piles),
            "densest_onset_limit": MAX_NOTES_PER_ONSET,
        }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
