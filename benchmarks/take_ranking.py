"""Does the studio's "best first" pick the better take? Prints JSON.

For each of N test-split pieces: the prompt is 20 s from its middle (continuation_stats's
prompts, one position a piece), the model samples K takes of 10 s at once (the studio's default
settings), and the real 10 s after the prompt are the reference.
Per take: its self-repetition (the share of its 6-note pitch sequences that it has already
played) and how far it is from the real continuation: |log ratio| of note density and of
polyphony, and the pitch-class Jensen-Shannon divergence (bits). Reported: each measure for the
take each ranking in RANKINGS puts first and last, minus the mean take of the same prompt
(negative: closer to the real music), as [mean, standard error] over prompts; and the mean
rank correlation between the likelihood and self-repetition. The rankings, from the sampling
run's own figures (per note):
  likelihood:   the highest mean log-likelihood first (what the studio did before);
  prompt_level: the smallest distance to the prompt's own log-likelihood per note (what the
                studio does: Continuation.distance_from_prompt).
As a check of the idea behind prompt_level, the real continuation's log-likelihood per note
(teacher-forced after the prompt tokens generation prefills) minus the prompt's level.

    python benchmarks/take_ranking.py --data ../shared/data/maestro-v3.0.0 [--pieces 24]
        [--candidates 4] [--checkpoint DIR]
"""

import argparse
import json

import numpy as np
import torch
from continuation_stats import PROMPT_SECONDS, features, js_bits, test_prompts

from musicgen.checkpoint import BUNDLED_CHECKPOINTS
from musicgen.generate import SamplingConfig, log_likelihood_per_note
from musicgen.midi import OFFSET, ONSET, PITCH
from musicgen.studio import Model
from musicgen.tokenizer import NOTE_PITCH

LENGTH = 10.0  # seconds of each take (the prompt: continuation_stats.PROMPT_SECONDS)
REPEAT_NGRAM = 6


def self_repetition(notes: np.ndarray) -> float:
    """Share of the REPEAT_NGRAM-note pitch sequences (onset order) already played earlier."""
    pitches = notes[np.lexsort((notes[:, PITCH], notes[:, ONSET])), PITCH].astype(int)
    grams = [tuple(pitches[i : i + REPEAT_NGRAM]) for i in range(len(pitches) - REPEAT_NGRAM + 1)]
    seen, repeated = set(), 0
    for g in grams:
        repeated += g in seen
        seen.add(g)
    return repeated / len(grams) if grams else 0.0


def rank_corr(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def real_log_likelihood_per_note(model: Model, window, real) -> float | None:
    """The model's mean log-likelihood per note of the real continuation, after the prompt
    tokens generation prefills (its last 3/4 block), as the takes are scored."""
    tok, block = model.tokenizer, model.model.config.block_size
    prompt = tok.encode(window)[-(block * 3 // 4) :]
    after = tok.encode(real)[: block - len(prompt)]  # on the continuation's 10 ms grid
    x = torch.as_tensor(np.concatenate([prompt, after]))
    with torch.inference_mode():
        logits, _ = model.model(x[None])
    is_pitch = torch.as_tensor(tok.kind == NOTE_PITCH)
    return log_likelihood_per_note(logits[0, len(prompt) - 1 : -1], x[len(prompt) :], is_pitch)


RANKINGS = {  # take -> the key sorted on, best first (smallest first)
    "likelihood": lambda t: -t["ll"],
    "prompt_level": lambda t: t["distance"],
}


def measures(take: np.ndarray, real: dict) -> dict:
    f = features(take, LENGTH)
    ratio = lambda x, y: abs(float(np.log(max(x, 1e-3) / max(y, 1e-3))))  # noqa: E731
    return {
        "density_error": ratio(f["density"], real["density"]),
        "polyphony_error": ratio(f["polyphony"], real["polyphony"]),
        "pitch_class_js": js_bits(f["pc"], real["pc"]),
        "self_repetition": self_repetition(take),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--pieces", type=int, default=24)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--checkpoint", default=str(BUNDLED_CHECKPOINTS[0]))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=SamplingConfig.temperature)
    parser.add_argument("--top-p", type=float, default=SamplingConfig.top_p)
    args = parser.parse_args()
    model = Model.load(args.checkpoint)
    rows, real_repetition, correlations, real_ll = [], [], [], []
    for prompt in test_prompts(args.data, args.pieces, positions=1, needed=LENGTH):
        window, real = prompt.window, prompt.real(0, LENGTH)
        real_features = features(real.notes, LENGTH)
        real_repetition.append(self_repetition(real.notes))
        config = SamplingConfig(
            seconds=LENGTH,
            seed=args.seed,
            num_candidates=args.candidates,
            temperature=args.temperature,
            top_p=args.top_p,
        )
        takes = model.continue_window(window, config).result()
        prompt_level = takes[0].prompt_log_likelihood_per_note  # the sampling run's own
        real_ll.append(real_log_likelihood_per_note(model, window, real) - prompt_level)
        start = float(window.notes[:, ONSET].max())  # the continuation's time origin
        judged = []
        for c in takes:
            if c.log_likelihood_per_note is None:
                continue  # no notes: nothing to compare
            notes = c.added.notes.copy()
            notes[:, [ONSET, OFFSET]] -= start
            judged.append(
                {
                    "ll": c.log_likelihood_per_note,
                    "prompt_ll": c.prompt_log_likelihood_per_note,
                    "distance": c.distance_from_prompt,
                    **measures(notes, real_features),
                }
            )
        rows.append(judged)
        correlations.append(
            rank_corr([t["ll"] for t in judged], [t["self_repetition"] for t in judged])
        )
    keys = ["density_error", "polyphony_error", "pitch_class_js", "self_repetition"]

    def mean_se(values) -> list[float]:
        values = np.asarray(values, dtype=float)
        return [
            round(float(values.mean()), 4),
            round(float(values.std(ddof=1)) / len(values) ** 0.5, 4),
        ]

    def pick(which) -> dict:
        """Each measure for the take `which` picks, minus the mean take of the same prompt
        (negative: closer to the real music), as [mean, standard error] over prompts."""
        return {k: mean_se([which(r)[k] - np.mean([t[k] for t in r]) for r in rows]) for k in keys}

    summary = {
        "checkpoint": model.name,
        "decoder": model.decoder.name,
        "prompts": len(rows),
        "candidates": args.candidates,
        "temperature": args.temperature,
        "top_p": args.top_p,
        "prompt_seconds": PROMPT_SECONDS,
        "take_seconds": LENGTH,
        "real_self_repetition": round(float(np.mean(real_repetition)), 4),
        "likelihood_vs_self_repetition_rank_corr": round(float(np.nanmean(correlations)), 3),
        "mean_take": {k: round(float(np.mean([t[k] for r in rows for t in r])), 4) for k in keys},
        "mean_gaps_nats_per_note": {
            "likelihood_minus_prompt": round(
                float(np.mean([t["ll"] - t["prompt_ll"] for r in rows for t in r])), 3
            ),
            "real_continuation_minus_prompt": mean_se(real_ll),
        },
    }
    for name, key in RANKINGS.items():
        summary[f"first_by_{name}"] = pick(lambda r, key=key: min(r, key=key))
        summary[f"last_by_{name}"] = pick(lambda r, key=key: max(r, key=key))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
