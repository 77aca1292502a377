"""Do continuations sound like the music they continue? Measured as a musician would hear it,
with the music's own variation as the yardstick. Prints JSON.

Prompts: N test-split performances spread over the split, P prompt positions in each (spread
over the part of the piece where the prompt and twice the longest length of real music fit);
a prompt is PROMPT_SECONDS of the performance. Each model adds the longest length asked (default
settings; prompt i gets seed + i, so that one seed's luck is averaged over the prompts, not
shared by every take), and each length L (10, 30, 60 s) is measured on the take's first L seconds.

- reference: the real L seconds after the prompt;
- real_next ("real music against itself"): the real L seconds after the reference, measured
  against the reference exactly as a take is: how much music moves from one stretch to the next
  is the most a take may differ.

Per side and length, over prompts: the mean of each feature (notes per second, median duration,
polyphony = notes sounding averaged over time, velocity, ...); the average error (the side's
mean against the reference's mean, signed); the per-piece error (mean |log ratio| of the side's
value to the reference's, prompt by prompt); the pitch-class histogram's Jensen-Shannon
divergence to the reference (bits) and to the prompt; and the overlap view of Yang & Lerch
(2018, "On the evaluation of generative models in music"): each feature's distribution over
prompts (a Gaussian kernel density) against the reference's, as the area they share (1 = the
same distribution). Also: the most notes any take strikes at one onset, beside the limit
generation keeps to.

    python benchmarks/continuation_stats.py --data ../shared/data/maestro-v3.0.0 [--pieces 48]
        [--positions 2] [--lengths 10 30 60] [--checkpoint DIR ...] [--save FILE]
"""

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from musicgen.checkpoint import BUNDLED_CHECKPOINTS
from musicgen.data import PieceInfo, list_pieces
from musicgen.generate import MAX_NOTES_PER_ONSET, SamplingConfig
from musicgen.midi import OFFSET, ONSET, PITCH, VELOCITY, Performance, prompt_window, read_midi
from musicgen.studio import Model

PROMPT_SECONDS = 20.0
LENGTHS = (10.0, 30.0, 60.0)
EDGE = 10.0  # seconds kept clear of a performance's first and last notes
# The features of the overlap view; the first three are the ones the targets name.
FEATURES = (
    "density",  # notes per second
    "median_duration",  # s, whole durations
    "polyphony",  # notes sounding, averaged over time
    "velocity",  # mean
    "velocity_spread",  # standard deviation
    "pitch_mean",
    "pitch_range",  # semitones between the lowest and highest note
    "interval",  # mean |pitch step| between successive notes (onset order)
    "ioi",  # median time between successive distinct onsets, s
)


@dataclass(frozen=True)
class Prompt:
    piece: PieceInfo
    start: float  # of the prompt in the performance, s
    window: Performance  # what the model hears
    performance: Performance  # the whole performance (the reference and real_next are in it)

    @property
    def end(self) -> float:
        return self.start + PROMPT_SECONDS

    def real(self, offset: float, length: float) -> Performance:
        """The real notes with onsets in [end + offset, end + offset + length), from 0."""
        return prompt_window(self.performance, self.end + offset, self.end + offset + length)


def test_prompts(data: str, pieces: int, positions: int, needed: float) -> list[Prompt]:
    """Prompts of PROMPT_SECONDS at `positions` places in each of `pieces` test-split
    performances spread over the split, each followed by at least `needed` s of the piece
    (shorter performances are skipped). One position is the middle of the room there is."""
    test = [p for p in list_pieces(data) if p.split == "test"]
    out = []
    for i in np.linspace(0, len(test) - 1, pieces).astype(int):
        perf = read_midi(Path(data) / test[i].path, isolate=False)
        first, last = EDGE, perf.duration - EDGE - PROMPT_SECONDS - needed
        if last < first:
            continue  # too short
        for k in range(positions):
            start = first + (last - first) * (k + 1) / (positions + 1)
            window = prompt_window(perf, start, start + PROMPT_SECONDS)
            out.append(Prompt(test[i], round(start, 2), window, perf))
    return out


def features(notes: np.ndarray, seconds: float) -> dict:
    """Statistics of notes whose onsets lie in [0, seconds) (onset, offset, pitch, velocity)."""
    notes = notes[(notes[:, ONSET] >= 0) & (notes[:, ONSET] < seconds)]
    notes = notes[np.lexsort((notes[:, PITCH], notes[:, ONSET]))]
    onsets, pitches = notes[:, ONSET], notes[:, PITCH]
    pcs = np.bincount(pitches.astype(int) % 12, minlength=12).astype(float)
    nan = float("nan")
    some = len(notes) > 0
    distinct = np.unique(np.round(onsets, 2))
    return {
        "pc": pcs / max(pcs.sum(), 1),
        "density": len(notes) / seconds,
        "median_duration": float(np.median(notes[:, OFFSET] - onsets)) if some else nan,
        "polyphony": float((np.minimum(notes[:, OFFSET], seconds) - onsets).sum() / seconds),
        "velocity": float(notes[:, VELOCITY].mean()) if some else nan,
        "velocity_spread": float(notes[:, VELOCITY].std()) if some else nan,
        "pitch_mean": float(pitches.mean()) if some else nan,
        "pitch_range": float(pitches.max() - pitches.min()) if some else nan,
        "interval": float(np.abs(np.diff(pitches)).mean()) if len(notes) > 1 else nan,
        "ioi": float(np.median(np.diff(distinct))) if len(distinct) > 1 else nan,
    }


def js_bits(p: np.ndarray, q: np.ndarray) -> float:
    m = (p + q) / 2
    kl = lambda a, b: float(np.sum(a[a > 0] * np.log2(a[a > 0] / b[a > 0])))  # noqa: E731
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def overlap_area(a: np.ndarray, b: np.ndarray, points: int = 512) -> float:
    """The area two samples' Gaussian kernel densities share (Scott's bandwidth each)."""
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    widths = [max(x.std(ddof=1), 1e-9) * len(x) ** -0.2 for x in (a, b)]
    grid = np.linspace(
        min(a.min(), b.min()) - 4 * max(widths), max(a.max(), b.max()) + 4 * max(widths), points
    )

    def density(x, width):
        z = (grid[:, None] - x[None, :]) / width
        return np.exp(-0.5 * z**2).sum(axis=1) / (len(x) * width * np.sqrt(2 * np.pi))

    shared = np.minimum(density(a, widths[0]), density(b, widths[1]))
    return float(np.sum((shared[1:] + shared[:-1]) / 2 * np.diff(grid)))


def compare(side: list[dict], reference: list[dict], prompts: list[dict]) -> dict:
    """One side's rows against the reference's, prompt by prompt (see the module's text)."""
    out = {}
    for key in FEATURES:
        s = np.array([r[key] for r in side])
        r = np.array([r[key] for r in reference])
        ok = np.isfinite(s) & np.isfinite(r)
        ratio = np.log(np.maximum(s[ok], 1e-3) / np.maximum(r[ok], 1e-3))
        out[key] = {
            "mean": round(float(np.nanmean(s)), 3),
            "average_error": round(float(np.nanmean(s) / np.nanmean(r) - 1), 3),
            "per_piece_error": round(float(np.abs(ratio).mean()), 3),
            "overlap": round(overlap_area(s, r), 3),
        }
    out["mean_overlap"] = round(float(np.nanmean([out[k]["overlap"] for k in FEATURES])), 3)
    out["pitch_class_js_bits"] = _js_mean(side, reference)
    out["pitch_class_js_bits_vs_prompt"] = _js_mean(side, prompts)
    return out


def _js_mean(rows: list[dict], others: list[dict]) -> float:
    return round(float(np.mean([js_bits(a["pc"], b["pc"]) for a, b in zip(rows, others)])), 4)


def take_notes(model: Model, prompt: Prompt, seconds: float, seed: int, top_p: float):
    """A take's notes, times from the continuation's origin (the prompt's last onset)."""
    config = SamplingConfig(seconds=seconds, seed=seed, top_p=top_p)
    added = model.continue_window(prompt.window, config).result()[0].added
    notes = added.notes.copy()
    notes[:, [ONSET, OFFSET]] -= float(prompt.window.notes[:, ONSET].max())
    return notes, model.tokenizer.densest_onset(model.tokenizer.encode(added))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--pieces", type=int, default=48)
    parser.add_argument("--positions", type=int, default=2, help="prompts per performance")
    parser.add_argument("--lengths", type=float, nargs="+", default=list(LENGTHS))
    parser.add_argument("--checkpoint", action="append", help="repeatable; default: both bundled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=SamplingConfig.top_p)
    parser.add_argument("--save", help="also write every prompt's features to this JSON file")
    args = parser.parse_args()
    longest = max(args.lengths)
    prompts = test_prompts(args.data, args.pieces, args.positions, 2 * longest)

    def measured(notes_by_prompt) -> dict:  # length -> the features of each prompt's notes
        return {L: [features(n, L) for n in notes_by_prompt] for L in args.lengths}

    heard = [features(p.window.notes, PROMPT_SECONDS) for p in prompts]
    reference = measured([p.real(0, longest).notes for p in prompts])
    real_next = {
        L: [features(p.real(L, L).notes, L) for p in prompts] for L in args.lengths
    }  # the L seconds right after the reference of that length
    summary = {
        "performances": len({p.piece.path for p in prompts}),
        "prompts": len(prompts),
        "prompt_seconds": PROMPT_SECONDS,
        "seed": args.seed,
        "top_p": args.top_p,
        "reference": {
            f"{L:g}s": {k: round(float(np.nanmean([r[k] for r in rows])), 3) for k in FEATURES}
            | {"pitch_class_js_bits_vs_prompt": _js_mean(rows, heard)}
            for L, rows in reference.items()
        },
        "real_next": {f"{L:g}s": compare(real_next[L], reference[L], heard) for L in args.lengths},
        "models": {},
    }
    saved = {"prompts": [(p.piece.path, p.start) for p in prompts], "models": {}}
    for checkpoint in args.checkpoint or [str(d) for d in BUNDLED_CHECKPOINTS]:
        model = Model.load(checkpoint)
        takes = [
            take_notes(model, p, longest, args.seed + i, args.top_p) for i, p in enumerate(prompts)
        ]
        generated = measured([notes for notes, _ in takes])
        summary["models"][model.name] = {
            "decoder": model.decoder.name,
            **{f"{L:g}s": compare(generated[L], reference[L], heard) for L in args.lengths},
            "densest_onset": max(pile for _, pile in takes),
            "densest_onset_limit": MAX_NOTES_PER_ONSET,
        }
        saved["models"][model.name] = generated
    if args.save:
        saved |= {"heard": heard, "reference": reference, "real_next": real_next}
        Path(args.save).write_text(json.dumps(saved, default=_plain))
    print(json.dumps(summary))


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else str(value)


if __name__ == "__main__":
    main()
