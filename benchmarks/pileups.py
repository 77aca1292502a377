"""Seeded continuations of the bundled examples, checked for the generation invariants. Prints JSON.

For each bundled checkpoint, each example prompt (its last 30 s, as the app takes it) and a run of
seeds: does every continuation end by itself within one 10 ms grid step of the requested length,
without reaching the token cap, and does no onset hold more notes than the densest onset of
MAESTRO's train split? Candidates are sampled four at a time (one batch, as the app does).

    python benchmarks/pileups.py [--runs 50] [--seconds 10] [--checkpoint DIR ...]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from musicgen.checkpoint import BUNDLED_CHECKPOINTS, REPO_ROOT, load_checkpoint
from musicgen.generate import MAX_NOTES_PER_ONSET, SamplingConfig, sample
from musicgen.midi import prompt_window, read_midi


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=50, help="seeds per checkpoint (4 each)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--checkpoint", action="append", help="repeatable; default: both bundled")
    args = parser.parse_args()
    examples = sorted((REPO_ROOT / "examples").glob("*.mid"))
    result = {"seconds": args.seconds, "limit_notes_per_onset": MAX_NOTES_PER_ONSET, "models": {}}
    for checkpoint in args.checkpoint or BUNDLED_CHECKPOINTS:
        model, tok, _ = load_checkpoint(checkpoint)
        prompts = [tok.encode(prompt_window(read_midi(p), None, None)) for p in examples]
        ends, capped, densest = [], 0, 0
        for run in range(args.runs):
            prompt = prompts[run % len(prompts)]
            config = SamplingConfig(seconds=args.seconds, seed=run, num_candidates=4)
            for ids in (s.ids for s in sample(model, tok, prompt, config)):
                ends.append(tok.seconds_of(ids))
                capped += len(ids) >= config.max_new_tokens
                # with the prompt: a continuation's first onset may add to the prompt's last
                densest = max(densest, tok.densest_onset(np.concatenate([prompt, ids])))
        short = [e for e in ends if not args.seconds - 0.01 < e <= args.seconds + 1e-6]
        result["models"][Path(checkpoint).name] = {
            "continuations": len(ends),
            "end_seconds_min_max": [round(min(ends), 4), round(max(ends), 4)],
            "not_ending_at_length": len(short),
            "reached_token_cap": capped,
            "densest_onset": densest,
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
