"""The densest music of MAESTRO's train split, behind two limits of generation
(musicgen/generate.py): the most notes at one onset (MAX_NOTES_PER_ONSET) and the most tokens in
a stretch of 3, 10 and 60 s (the token cap must stay above them). Prints JSON.

    python benchmarks/maestro_density.py --data ../shared/data/maestro-v3.0.0 [--checkpoint DIR]
"""

import argparse
import json

import numpy as np

from musicgen.checkpoint import resolve
from musicgen.data import build_cache
from musicgen.tokenizer import PerformanceTokenizer

STRETCHES = (3.0, 10.0, 60.0)  # seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoint", help="whose tokenizer (default: the bundled default)")
    args = parser.parse_args()
    tok = PerformanceTokenizer.load(resolve(args.checkpoint))
    cache = build_cache(args.data, tok)
    densest_onset, densest_piece = 0, None
    tokens_in = dict.fromkeys(STRETCHES, 0)
    for entry in cache.pieces("train"):
        ids = cache.piece_tokens(entry)
        if (n := tok.densest_onset(ids)) > densest_onset:
            densest_onset, densest_piece = n, entry["path"]
        time = np.cumsum(tok.shift_seconds[ids])  # the time at every token
        for seconds in STRETCHES:
            ends = np.searchsorted(time, time + seconds)  # tokens within `seconds` of each one
            tokens_in[seconds] = max(tokens_in[seconds], int((ends - np.arange(len(ids))).max()))
    print(
        json.dumps(
            {
                "split": "train",
                "densest_onset_notes": densest_onset,
                "densest_onset_piece": densest_piece,
                "most_tokens_in": {f"{s:g}s": n for s, n in tokens_in.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
