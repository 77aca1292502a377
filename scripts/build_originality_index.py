"""Build the originality index (musicgen/originality.py) from MAESTRO's train split.

python scripts/build_originality_index.py --data ../shared/data/maestro-v3.0.0
    [--out checkpoints/maestro-train-ngrams.npz] [--checkpoint DIR (its tokenizer)]
"""

import argparse
import time

import numpy as np

from musicgen.checkpoint import resolve
from musicgen.data import build_cache, list_pieces
from musicgen.originality import INDEX_FILE, OriginalityIndex, note_keys
from musicgen.tokenizer import NOTE_PITCH, PerformanceTokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", default=str(INDEX_FILE))
    parser.add_argument("--checkpoint")
    args = parser.parse_args()
    started = time.perf_counter()
    tok = PerformanceTokenizer.load(resolve(args.checkpoint))
    cache = build_cache(args.data, tok)
    composers = {p.path: p.composer for p in list_pieces(args.data)}
    pieces = []
    for entry in cache.pieces("train"):
        ids = cache.piece_tokens(entry)
        onsets = np.cumsum(tok.shift_seconds[ids])  # the time at every token
        is_pitch = tok.kind[ids] == NOTE_PITCH
        keys = note_keys(onsets[is_pitch], tok.pitch[ids[is_pitch]])
        pieces.append(
            (f"{composers.get(entry['path'], entry['composer'])}: {entry['title']}", keys)
        )
    index = OriginalityIndex.build(pieces)
    index.save(args.out)
    notes = sum(len(k) for _, k in pieces)
    print(
        f"{len(pieces)} pieces, {notes} notes -> {len(index.hashes)} hashed n-grams"
        f" runs in {args.out} ({time.perf_counter() - started:.0f} s)"
    )


if __name__ == "__main__":
    main()
