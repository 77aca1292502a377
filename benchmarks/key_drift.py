"""Why long takes drift off key: pitch-class Jensen-Shannon divergence (bits) of each 20 s of a
60 s take from its 20 s prompt, against the same for the real music after the prompt, under
sampler variants (how much context a window slide keeps, a lower temperature for pitches).
Same test-split prompts as continuation_stats (one per piece, the middle), one seed. JSON.

    python benchmarks/key_drift.py --data MAESTRO_DIR [--pieces 16] [--checkpoint DIR]
        [--variants default keep-3/4 pitch-t0.9]
"""

import argparse
import json
import time

import numpy as np
from continuation_stats import features, js_bits, take_notes, test_prompts

from musicgen import generate
from musicgen.checkpoint import BUNDLED_CHECKPOINTS
from musicgen.studio import Model
from musicgen.tokenizer import NOTE_PITCH

SPANS = ((0.0, 20.0), (20.0, 40.0), (40.0, 60.0))
VARIANTS = {  # name: (SLIDE_KEEP, extra temperature divisor of the pitch logits)
    "default": (generate.SLIDE_KEEP, 1.0),
    "keep-3/4": (3 / 4, 1.0),
    "pitch-t0.9": (generate.SLIDE_KEEP, 0.9),
    "keep-3/4+pitch-t0.9": (3 / 4, 0.9),
}


def span_features(notes: np.ndarray, start: float, end: float) -> dict:
    shifted = notes.copy()
    shifted[:, :2] -= start
    return features(shifted, end - start)


def logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # (a row of -inf: its -inf stays)
        return np.log(np.exp(x - top).sum(axis=-1, keepdims=True)) + top


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--pieces", type=int, default=16)
    parser.add_argument("--checkpoint", default=str(BUNDLED_CHECKPOINTS[0]))
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = parser.parse_args()
    longest = SPANS[-1][1]
    prompts = test_prompts(args.data, args.pieces, 1, longest)
    model = Model.load(args.checkpoint)
    is_pitch = model.tokenizer.kind == NOTE_PITCH
    heard = [features(p.window.notes, 20.0)["pc"] for p in prompts]
    real = [p.real(0, longest).notes for p in prompts]

    def summary(takes: list[np.ndarray]) -> dict:
        out = {}
        for start, end in SPANS:
            spans = [span_features(n, start, end) for n in takes]
            out[f"{start:g}-{end:g}s"] = {
                "js_to_prompt": round(
                    float(np.mean([js_bits(s["pc"], h) for s, h in zip(spans, heard)])), 4
                ),
                "notes_per_s": round(float(np.mean([s["density"] for s in spans])), 2),
                "median_duration": round(
                    float(np.nanmean([s["median_duration"] for s in spans])), 3
                ),
            }
        return out

    result = {"prompts": len(prompts), "checkpoint": model.name, "decoder": model.decoder.name}
    result["real"] = summary(real)
    print(json.dumps({"real": result["real"]}), flush=True)
    plain_filter = generate.filter_logits
    for name in args.variants:
        keep, pitch_t = VARIANTS[name]
        generate.SLIDE_KEEP = keep

        def filter_logits(logits, top_k=0, top_p=1.0, pitch_t=pitch_t):
            """A temperature within the pitch field only: the pitches' shares of their total
            are sharpened, the total (a note rather than a shift) is kept."""
            if pitch_t != 1.0:
                log_p = logits - logsumexp(logits)
                pitch = log_p[:, is_pitch]
                total = logsumexp(pitch)
                sharpened = pitch / pitch_t
                sharpened = sharpened - logsumexp(sharpened) + total
                log_p[:, is_pitch] = np.nan_to_num(sharpened, nan=-np.inf)
                logits = log_p
            return plain_filter(logits, top_k, top_p)

        generate.filter_logits = filter_logits
        started = time.perf_counter()
        takes = [take_notes(model, p, longest, 0, 1.0)[0] for p in prompts]
        result[name] = summary(takes) | {"seconds": round(time.perf_counter() - started)}
        print(json.dumps({name: result[name]}), flush=True)
    generate.filter_logits, generate.SLIDE_KEEP = plain_filter, VARIANTS["default"][0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
