"""Command line: `python -m musicgen {generate,train,evaluate,bench} ...`."""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from dataclasses import fields
from pathlib import Path

from .errors import InvalidParameterError, MusicgenError


def _generate(args) -> int:
    import shutil

    from tqdm import tqdm

    from .studio import SamplingConfig, Studio

    seed = random.randint(0, 2**31 - 1) if args.random_seed else args.seed
    config = SamplingConfig(
        seconds=args.seconds,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=seed,
        num_candidates=args.candidates,
        composer=args.composer,
    )
    checkpoint = args.model or args.checkpoint
    studio = Studio.load([checkpoint], args.device)
    bar = tqdm(total=round(config.seconds, 1), unit="s of music", desc="generating")

    def on_progress(p):
        bar.n = round(p.seconds, 1)
        bar.set_postfix(tok_s=f"{p.tokens_per_second:,.0f}")
        bar.refresh()

    outcome = studio.generate(
        args.prompt,
        config,
        args.prompt_start,
        args.prompt_end,
        on_progress=on_progress,
        audio=args.wav is not None,
    )
    bar.close()
    for note in outcome.notes:
        logging.warning(note)
    for files, result in zip(outcome.candidates, outcome.results):
        midi, wav = args.output, args.wav
        if len(outcome.candidates) > 1:  # OUT-c1.mid, OUT-c2.mid, ...: best first
            tag = f"-c{result.candidate + 1}"
            midi = midi.with_name(midi.stem + tag + midi.suffix)
            wav = wav and wav.with_name(wav.stem + tag + wav.suffix)
        shutil.copyfile(files.midi, midi)
        if wav is not None and files.wav is not None:
            shutil.copyfile(files.wav, wav)
        c = result.continuation
        judged = ""
        if c.distance_from_prompt is not None:
            judged = (
                f", {c.log_likelihood_per_note:.2f} nats/note, {c.distance_from_prompt:.2f} "
                f"from the prompt's {c.prompt_log_likelihood_per_note:.2f}"
            )
        print(
            f"wrote {midi}"
            + (f" and {wav}" if files.wav else "")
            + f" ({len(c.added)} new notes{judged})"
        )
    print(f"seed {config.seed}")
    return 0


def _rewrite(args) -> int:
    import shutil

    from tqdm import tqdm

    from .studio import SamplingConfig, Studio

    if args.output.resolve() == args.piece.resolve():
        raise InvalidParameterError("-o names the piece itself: the original is never changed.")
    config = SamplingConfig(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        num_candidates=args.candidates,
        composer=args.composer,
    )
    studio = Studio.load([args.model or args.checkpoint], args.device)
    span = args.end - args.start
    bar = tqdm(total=round(span, 1), unit="s of music", desc="rewriting", disable=args.json)

    def on_progress(p):
        bar.n = round(min(p.seconds, span), 1)
        bar.refresh()

    outcome = studio.rewrite(
        args.piece, args.start, args.end, config, audio=args.wav is not None,
        on_progress=on_progress,
    )  # fmt: skip
    bar.close()
    best = outcome.passages[0]
    shutil.copyfile(best.midi, args.output)
    if args.wav is not None and best.wav is not None:
        shutil.copyfile(best.wav, args.wav)
    r = outcome.rewrite
    if args.json:
        print(
            json.dumps(
                {
                    "from": r.start,
                    "to": r.end,
                    "output": str(args.output),
                    "after_notes": r.after_notes,
                    "original": {
                        "after_nll_per_note": r.original.after_nll_per_note,
                        "notes": len(r.original.notes),
                    },
                    "candidates": [
                        {
                            "rank": rank,
                            "after_nll_per_note": p.after_nll_per_note,
                            "log_likelihood_per_note": p.log_likelihood_per_note,
                            "notes": len(p.notes),
                        }
                        for rank, p in enumerate(r.passages)
                    ],
                    "seed": config.seed,
                    "seconds_taken": round(outcome.seconds_taken, 3),
                }
            )
        )
    else:
        for note in outcome.notes:
            logging.warning(note)
        print(outcome.describe().replace("**", "").replace("`", ""))
        print(f"wrote {args.output}" + (f" and {args.wav}" if args.wav else ""))
    return 0


def _train(args) -> int:
    from .train import config_from_args, run

    result = run(config_from_args(args), resume=args.resume)
    print(json.dumps(result))
    return 0


def _evaluate(args) -> int:
    import torch

    from .evaluate import evaluate_baseline, evaluate_checkpoint

    if args.baseline:
        result = evaluate_baseline(
            args.data, args.split, args.baseline, args.max_files, args.checkpoint, args.cache_dir
        )
    else:
        result = evaluate_checkpoint(
            args.data,
            args.split,
            args.checkpoint,
            args.device,
            args.max_files,
            args.cache_dir,
            args.batch_size,
            getattr(torch, args.weights_dtype) if args.weights_dtype else None,
        )
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


def _bench(args) -> int:
    from .bench import run_benchmarks

    result = run_benchmarks(
        args.checkpoint,
        args.device,
        args.data,
        args.seconds,
        args.repeats,
        args.quick,
        args.paths.split(",") if args.paths else None,
        tuple(int(b) for b in args.batches.split(",")) if args.batches else None,
        args.full,
    )
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


# Training options: type and a line of help each; defaults come from ModelConfig (the
# architecture) and TrainConfig.
TRAIN_OPTIONS = {
    "n_layer": (int, "Transformer blocks"),
    "n_head": (int, "attention heads per block"),
    "n_embd": (int, "model width"),
    "block_size": (int, "context in tokens"),
    "dropout": (float, "dropout on embeddings, attention and MLP"),
    "composers": (int, "most frequent composers given a style token (0: none)"),
    "composer_p": (float, "probability a training window starts with its composer token"),
    "velocity_shift": (int, "augmentation: move all velocities by up to this many bins"),
    "cue_p": (float, "share of windows that read the music after them first (for rewriting)"),
    "batch_size": (int, "windows per step (per process)"),
    "grad_accum": (int, "micro-batches accumulated per step"),
    "lr": (float, "peak learning rate"),
    "min_lr": (float, "learning rate at the end of the cosine schedule"),
    "warmup_steps": (int, "linear warm-up steps; none given: 200, or a tenth of a shorter run"),
    "max_steps": (int, "steps of the schedule"),
    "weight_decay": (float, "AdamW weight decay of the matrices"),
    "grad_clip": (float, "gradient norm clip"),
    "seed": (int, "seed of the initialisation and the batches"),
    "eval_every": (int, "steps between validations and checkpoints"),
    "eval_batches": (int, "validation batches (the same ones every time)"),
    "log_every": (int, "steps between log lines"),
    "max_files": (int, "use only the first N files (quick experiments)"),
    "time_limit_min": (float, "stop with a checkpoint after this many minutes"),
    "stop_at_step": (int, "stop with a checkpoint at this step (--resume continues)"),
    "sample_seconds": (float, "length of the sample continuation written per checkpoint"),
    "patience": (int, "stop after this many evaluations without a better loss (0: never)"),
}


def build_parser() -> argparse.ArgumentParser:
    from .checkpoint import BUNDLED
    from .studio import SamplingConfig  # its defaults are the command's defaults
    from .train import ModelConfig, TrainConfig

    parser = argparse.ArgumentParser(prog="python -m musicgen", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="continue a MIDI prompt")
    g.add_argument("prompt", type=Path)
    g.add_argument("-o", "--output", type=Path, required=True, help="prompt + continuation MIDI")
    g.add_argument("--wav", type=Path, help="also render the result to a 44.1 kHz WAV")
    g.add_argument(
        "--seconds", type=float, default=SamplingConfig.seconds, help="seconds of music to add"
    )
    g.add_argument("--temperature", type=float, default=SamplingConfig.temperature)
    g.add_argument("--top-k", type=int, default=SamplingConfig.top_k, help="0 turns it off")
    g.add_argument("--top-p", type=float, default=SamplingConfig.top_p, help="1 turns it off")
    g.add_argument("--seed", type=int, default=SamplingConfig.seed)
    g.add_argument(
        "--random-seed", action="store_true", help="a new random seed (printed) instead of --seed"
    )
    g.add_argument(
        "--candidates",
        type=int,
        default=SamplingConfig.num_candidates,
        help="takes sampled at once, written as OUT-c1.mid, OUT-c2.mid, ... best first",
    )
    g.add_argument("--composer", help="composer style token of the checkpoint, if any")
    g.add_argument("--prompt-start", type=float, help="seconds (default: 30 s before the end)")
    g.add_argument("--prompt-end", type=float, help="seconds (default: the end of the file)")
    which = g.add_mutually_exclusive_group()
    which.add_argument(
        "--model", choices=list(BUNDLED), help="a bundled model: base (default, best music), small"
    )
    which.add_argument("--checkpoint", type=Path, help="a checkpoint folder or training run")
    g.add_argument("--device")
    g.set_defaults(func=_generate)

    r = sub.add_parser("rewrite", help="rewrite a passage of a MIDI piece, everything else kept")
    r.add_argument("piece", type=Path)
    r.add_argument("--from", dest="start", type=float, required=True, help="seconds")
    r.add_argument("--to", dest="end", type=float, required=True, help="seconds")
    r.add_argument("-o", "--output", type=Path, required=True, help="the piece, rewritten")
    r.add_argument("--wav", type=Path, help="also the best passage in context as a WAV")
    r.add_argument("--candidates", type=int, default=16, help="passages written and judged (1-16)")
    r.add_argument("--temperature", type=float, default=SamplingConfig.temperature)
    r.add_argument("--top-k", type=int, default=SamplingConfig.top_k, help="0 turns it off")
    r.add_argument("--top-p", type=float, default=SamplingConfig.top_p, help="1 turns it off")
    r.add_argument("--seed", type=int, default=SamplingConfig.seed)
    r.add_argument("--composer", help="composer style token of the checkpoint, if any")
    which = r.add_mutually_exclusive_group()
    which.add_argument("--model", choices=list(BUNDLED), help="a bundled model (default: base)")
    which.add_argument("--checkpoint", type=Path, help="a checkpoint folder or training run")
    r.add_argument("--device")
    r.add_argument("--json", action="store_true", help="every candidate's score, one JSON line")
    r.set_defaults(func=_rewrite)

    t = sub.add_parser("train", help="train a model on MAESTRO or a folder of MIDI files")
    t.add_argument(
        "--data", required=True, help="MAESTRO (with its CSV split) or any folder of MIDI files"
    )
    t.add_argument("--out", required=True, help="the run's folder: checkpoints, log, samples")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument(
        "--init-from",
        metavar="MODEL",
        help="start from a trained model's weights and tokenizer (base, small, or a checkpoint "
        "folder), with a fresh optimizer and schedule; --block-size may differ from its own",
    )
    defaults = {f.name: f.default for f in (*fields(ModelConfig), *fields(TrainConfig))}
    for name, (kind, text) in TRAIN_OPTIONS.items():
        t.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=kind,
            help=f"{text} (default: {defaults[name]})",
        )
    t.add_argument("--device", help="cuda, mps, xpu or cpu (default: the best available)")
    t.add_argument(
        "--compile", action="store_true", default=None, help="torch.compile the model (GPUs)"
    )
    t.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        default=None,
        help="no transposition, time-stretch or velocity shift (default: augment)",
    )
    t.add_argument(
        "--cache-dir", help="where the token cache lives (default: $MUSICGEN_CACHE or ~/.cache)"
    )
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="NLL of a checkpoint on a split, whole pieces")
    e.add_argument("--data", required=True)
    e.add_argument("--split", choices=("validation", "test"), default="test")
    e.add_argument("--max-files", type=int)
    e.add_argument("--checkpoint", type=Path)
    e.add_argument("--device")
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument(
        "--weights-dtype",
        choices=("float32", "bfloat16"),
        help="cast the weights (as a CPU serving them in bf16 does); default: float32 weights "
        "under the device's autocast",
    )
    e.add_argument(
        "--baseline",
        choices=("unigram", "bigram"),
        help="score an n-gram model fitted on the train split instead",
    )
    e.add_argument("--cache-dir")
    e.add_argument("--json", action="store_true", help="one JSON object on one line")
    e.set_defaults(func=_evaluate)

    b = sub.add_parser("bench", help="generation speed figures (JSON)")
    b.add_argument(
        "--checkpoint", type=Path, action="append", help="repeatable; default: every bundled one"
    )
    b.add_argument("--device")
    b.add_argument("--data", help="MAESTRO folder: also time tokenizing all of it")
    b.add_argument("--seconds", type=float, default=20.0)
    b.add_argument("--repeats", type=int, help="timed runs of each (default 1; --full: 3)")
    b.add_argument(
        "--full",
        action="store_true",
        help="also batch 4, the no-cache baseline and training throughput (several minutes)",
    )
    b.add_argument("--quick", action="store_true", help="fewer, shorter measurements")
    b.add_argument("--paths", help="comma-separated decoding paths (default: all the device has)")
    b.add_argument(
        "--batches",
        help="comma-separated candidate counts (default 1, and 4 on the fast paths; --full: 1,4)",
    )
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("miditok").setLevel(logging.ERROR)
    try:
        return args.func(args)
    except MusicgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
