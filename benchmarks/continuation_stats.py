"""Do continuations of test-split prompts look like the real continuations? Prints JSON.

For each of N test-split pieces: the prompt is seconds [60, 80) of the performance, the model adds
20 s, and the real seconds [80, 100) are the reference. Compared per piece: pitch-class
histogram (Jensen-Shannon divergence, in bits), note density, mean pitch, mean velocity.
As a yardstick, the same divergences are computed between the real continuation and the real
continuation of a *different* piece (what "unrelated but genuine piano music" scores).

    python benchmarks/continuation_stats.py --data ../shared/data/maestro-v3.0.0 [--pieces 24]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen.data import list_pieces  # noqa: E402
from musicgen.errors import MusicgenError  # noqa: E402
from musicgen.generate import SamplingConfig  # noqa: E402
from musicgen.midi import PITCH, VELOCITY, prompt_window, read_midi  # noqa: E402
from musicgen.pipeline import Studio  # noqa: E402


def features(notes: np.ndarray, seconds: float) -> dict:
    pcs = np.bincount(notes[:, PITCH].astype(int) % 12, minlength=12).astype(float)
    return {
        "pc": pcs / max(pcs.sum(), 1),
        "density": len(notes) / seconds,
        "pitch": float(notes[:, PITCH].mean()) if len(notes) else float("nan"),
        "velocity": float(notes[:, VELOCITY].mean()) if len(notes) else float("nan"),
    }


def js_bits(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    kl = lambda a, b: float(np.sum(a[a > 0] * np.log2(a[a > 0] / b[a > 0])))  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--pieces", type=int, default=24)
    parser.add_argument("--checkpoint")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    studio = Studio.load(args.checkpoint)
    test = [p for p in list_pieces(args.data) if p.split == "test"]
    chosen = [test[i] for i in np.linspace(0, len(test) - 1, args.pieces).astype(int)]
    rows = []
    for piece in chosen:
        perf = read_midi(Path(args.data) / piece.path, isolate=False)
        try:
            real = prompt_window(perf, 80.0, 100.0)
            config = SamplingConfig(seconds=20, seed=args.seed)
            result = studio.continue_midi(perf, config, 60.0, 80.0)[0].continuation
        except MusicgenError:
            continue  # piece too short
        generated = result.continuation.notes
        rows.append(
            {
                "piece": piece.title,
                "composer": piece.composer,
                "real": features(real.notes, 20.0),
                "generated": features(generated, 20.0),
            }
        )
    shuffled = rows[1:] + rows[:1]  # each piece's real continuation vs another piece's
    js_model = [js_bits(r["real"]["pc"], r["generated"]["pc"]) for r in rows]
    js_other = [js_bits(r["real"]["pc"], o["real"]["pc"]) for r, o in zip(rows, shuffled)]
    summary = {
        "pieces": len(rows),
        "pitch_class_js_bits": {
            "model_vs_real": round(float(np.mean(js_model)), 4),
            "other_piece_vs_real": round(float(np.mean(js_other)), 4),
        },
        "notes_per_second": {
            "real": round(float(np.mean([r["real"]["density"] for r in rows])), 2),
            "generated": round(float(np.mean([r["generated"]["density"] for r in rows])), 2),
            "correlation": round(
                float(
                    np.corrcoef(
                        [r["real"]["density"] for r in rows],
                        [r["generated"]["density"] for r in rows],
                    )[0, 1]
                ),
                3,
            ),
        },
        "mean_pitch": {
            "real": round(float(np.nanmean([r["real"]["pitch"] for r in rows])), 1),
            "generated": round(float(np.nanmean([r["generated"]["pitch"] for r in rows])), 1),
        },
        "mean_velocity": {
            "real": round(float(np.nanmean([r["real"]["velocity"] for r in rows])), 1),
            "generated": round(float(np.nanmean([r["generated"]["velocity"] for r in rows])), 1),
        },
        "checkpoint": studio.name,
        "seed": args.seed,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
