"""Rewriting a passage, measured: do the chosen passages lead into the music after the span, and
are they nearer the real passage than an unranked one? Prints JSON.

Spans: one of each length (4 and 8 s) in the middle of each of N test-split performances
spread over the split. Each span is rewritten with 16 candidates (`rewrite_passage`, default
settings, a seed per span) and judged by the first seconds of the real music after it. Per
span length, over spans:

- the NLL per note of the music after the span given the music before and: the real passage,
  silence (no note in the span), a candidate at random (the mean over all 16: "unranked"), the
  best of the first 8 rows (N = 8) and the best of all 16 (N = 16), and the share of the gap
  between unranked and real that the chosen passage closes;
- the pitch-class Jensen-Shannon divergence (bits) of chosen and unranked passages to the real
  one, and the overlap of their nine features' distributions with the real passages'
  (continuation_stats.py's view: 1 = the same);
- the seams: notes per second in the passage's last second (chosen, unranked, real) and in the
  real music's first second after the span;
- the wall time of a rewrite (sampling and judging the 16) on this machine.

    python benchmarks/rewrite_stats.py --data ../shared/data/maestro-v3.0.0 [--pieces 48]
        [--lengths 4 8] [--checkpoint DIR] [--candidates 16] [--temperature 1.0]
        [--without-cue]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from continuation_stats import FEATURES, compare, features, js_bits

from musicgen import device as devices
from musicgen.compute import Model
from musicgen.data import list_pieces
from musicgen.generate import SamplingConfig
from musicgen.midi import ONSET, make_performance, read_midi
from musicgen.rewrite import after_nll, judging_notes, music_before


def span_notes(perf, start: float, end: float) -> np.ndarray:
    """The notes struck in [start, end), times from `start`."""
    notes = perf.notes[(perf.notes[:, ONSET] >= start) & (perf.notes[:, ONSET] < end)].copy()
    notes[:, :2] -= start
    return notes


def density(notes: np.ndarray, start: float, end: float) -> float:
    return float(((notes[:, ONSET] >= start) & (notes[:, ONSET] < end)).sum() / (end - start))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--pieces", type=int, default=48)
    parser.add_argument("--lengths", type=float, nargs="+", default=[4.0, 8.0])
    parser.add_argument("--checkpoint", default="base")
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--temperature", type=float, default=SamplingConfig.temperature)
    parser.add_argument(
        "--without-cue",
        action="store_true",
        help="a model trained with cues (train --cue-p) writes without one: what the cue adds",
    )
    args = parser.parse_args()
    model = Model.load(args.checkpoint)
    if args.without_cue:
        model.meta.setdefault("train", {})["cue_p"] = 0.0  # (reads_cue reads it)
    tok, net = model.tokenizer, model.model
    test = [p for p in list_pieces(args.data) if p.split == "test"]
    chosen_pieces = [test[i] for i in np.linspace(0, len(test) - 1, args.pieces).astype(int)]
    result = {
        "machine": {"cpu": devices.cpu_name(), "decoder": model.decoder.name},
        "checkpoint": model.name,
        "pieces": len(chosen_pieces),
        "candidates": args.candidates,
        "temperature": args.temperature,
        "written_after_a_cue": model.reads_cue,
        "lengths": {},
    }
    for length in args.lengths:
        rows = []
        for seed, info in enumerate(chosen_pieces):
            perf = read_midi(Path(args.data) / info.path, isolate=False)
            start = round(perf.duration / 2 - length / 2, 2)
            end = start + length
            config = SamplingConfig(
                seed=seed, num_candidates=args.candidates, temperature=args.temperature
            )
            started = time.perf_counter()
            r = model.rewrite(perf, start, end, config).result()
            wall = time.perf_counter() - started
            if r.original.after_nll_per_note is None:  # no note after the span to judge by
                print(json.dumps({"skipped": info.path, "start": start}), flush=True)
                continue
            by_row = sorted(r.passages, key=lambda p: p.row)
            prompt, origin = music_before(tok, perf, start)
            after = make_performance(perf.notes[perf.notes[:, ONSET] >= end])
            judged = judging_notes(tok, after, end, net.config.block_size // 4)
            real, silence = after_nll(
                net, tok, prompt, origin, [r.original.ids, np.zeros(0, np.int64)], judged
            )
            best8 = min(by_row[:8], key=r.rank)
            rows.append(
                {
                    "piece": info.path,
                    "start": start,
                    "wall_s": wall,
                    "real": real,
                    "real_in_the_run": r.original.after_nll_per_note,
                    "silence": silence,
                    "unranked": float(np.mean([p.after_nll_per_note for p in by_row])),
                    "chosen8": best8.after_nll_per_note,
                    "chosen16": r.passages[0].after_nll_per_note,
                    "real_notes": span_notes(perf, start, end),
                    "chosen_notes": span_notes(r.passages[0].notes, start, end),
                    "best8_notes": span_notes(best8.notes, start, end),
                    "all_notes": [span_notes(p.notes, start, end) for p in by_row],
                    "after_notes": span_notes(after, end, end + 1.0),
                }
            )
            print(json.dumps({"length": length, "piece": info.path, "wall_s": round(wall, 2),
                              **{k: round(rows[-1][k], 3) for k in
                                 ("real", "silence", "unranked", "chosen8", "chosen16")}}),
                  flush=True)  # fmt: skip
        result["lengths"][f"{length:g}s"] = summarise(rows, length)
    print(json.dumps(result))


def summarise(rows: list[dict], length: float) -> dict:
    nll = {k: float(np.mean([r[k] for r in rows])) for k in
           ("real", "real_in_the_run", "silence", "unranked", "chosen8", "chosen16")}  # fmt: skip
    gap = nll["unranked"] - nll["real"]
    real_f = [features(r["real_notes"], length) for r in rows]
    chosen_f = [features(r["chosen_notes"], length) for r in rows]
    # an unranked passage: each span's candidates are i.i.d.; every one of them stands for it
    unranked_f = [[features(n, length) for n in r["all_notes"]] for r in rows]

    def unranked_js() -> float:
        return float(np.mean([np.mean([js_bits(u["pc"], f["pc"]) for u in us])
                              for us, f in zip(unranked_f, real_f)]))  # fmt: skip

    first_unranked = [us[0] for us in unranked_f]  # row 0: a candidate at random
    return {
        "spans": len(rows),
        "nll_per_note_after": {k: round(v, 3) for k, v in nll.items()},
        "gap_closed": {
            "chosen8": round((nll["unranked"] - nll["chosen8"]) / gap, 3),
            "chosen16": round((nll["unranked"] - nll["chosen16"]) / gap, 3),
        },
        "pitch_class_js_bits_to_real": {
            "chosen16": round(
                float(np.mean([js_bits(c["pc"], f["pc"]) for c, f in zip(chosen_f, real_f)])), 4
            ),  # fmt: skip
            "unranked": round(unranked_js(), 4),
        },
        "overlap_with_real": {
            "chosen16": compare(chosen_f, real_f, real_f)["mean_overlap"],
            "unranked": compare(first_unranked, real_f, real_f)["mean_overlap"],
            "features": list(FEATURES),
        },
        "seams_notes_per_s": {
            "last_second_chosen": round(
                float(np.mean([density(r["chosen_notes"], length - 1, length) for r in rows])), 2
            ),
            "last_second_unranked": round(
                float(
                    np.mean(
                        [
                            np.mean([density(n, length - 1, length) for n in r["all_notes"]])
                            for r in rows
                        ]
                    )
                ),
                2,
            ),
            "last_second_real": round(
                float(np.mean([density(r["real_notes"], length - 1, length) for r in rows])), 2
            ),
            "first_second_after_real": round(
                float(np.mean([density(r["after_notes"], 0, 1) for r in rows])), 2
            ),
        },  # fmt: skip
        "wall_s": {
            "median": round(float(np.median([r["wall_s"] for r in rows])), 2),
            "max": round(float(np.max([r["wall_s"] for r in rows])), 2),
        },
    }


if __name__ == "__main__":
    main()
