"""Fine-tuning measured: does a bundled model, fine-tuned on "a user's folder", expect that
music better, and what does it forget? Prints JSON.

The user's folder is every MAESTRO *train* performance of one composer the model has no style
token for (default: Domenico Scarlatti, 18 train and 13 test performances; the tokens are the
12 best-represented composers). The run is the command a user types, `python -m musicgen train
--init-from MODEL --data FOLDER --out RUN` (the folder's settings, sized to it), with a time
limit. Before and after it:

- NLL per note on that composer's *test* performances (the music the user wants);
  `--unseen K` moves K of them into the folder: every MAESTRO train performance was in the
  bundled models' pre-training, so the default folder is music they have heard, where a
  user's own files are music they have not;
- NLL per note on the first files of the whole test split (what it forgot);
- the continuation statistics of 30 s takes after 20 s prompts from the composer's test
  performances (benchmarks/continuation_stats.py): pitch-class JS to the real continuation and
  the overlap of the nine features.

    python benchmarks/finetune.py --data ../shared/data/maestro-v3.0.0 [--model small]
        [--composer "Domenico Scarlatti"] [--minutes 20] [--general-files 20] [--out DIR]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from continuation_stats import EDGE, PROMPT_SECONDS, Prompt, compare, features, take_notes

from musicgen import device as devices
from musicgen.checkpoint import load_checkpoint, resolve
from musicgen.data import list_pieces
from musicgen.evaluate import evaluate_checkpoint, score_windows, windows
from musicgen.midi import prompt_window, read_midi
from musicgen.studio import Model
from musicgen.tokenizer import NOTE_PITCH

TAKE_SECONDS = 30.0


@torch.inference_mode()
def nll_per_note(checkpoint, files: list[Path]) -> float:
    """The model's NLL per note of whole performances (windows as `evaluate` scores them)."""
    model, tok, _ = load_checkpoint(checkpoint)
    pairs, notes = [], 0
    for f in files:
        ids = tok.encode(read_midi(f, isolate=False))
        pairs += windows(np.concatenate([[tok.bos_id], ids]), model.config.block_size)
        notes += int((tok.kind[ids] == NOTE_PITCH).sum())
    total = score_windows(model, tok, pairs, torch.float32, 16, "scoring")
    return float(total.sum()) / notes


def composer_prompts(data: str, paths: list[str]) -> list[Prompt]:
    """A 20 s prompt in the middle of each performance with room for a take after it."""
    out = []
    for path in paths:
        perf = read_midi(Path(data) / path, isolate=False)
        room = perf.duration - 2 * EDGE - PROMPT_SECONDS - TAKE_SECONDS
        if room < 0:
            continue
        start = EDGE + room / 2
        piece = next(p for p in list_pieces(data) if p.path == path)
        out.append(Prompt(piece, start, prompt_window(perf, start, start + PROMPT_SECONDS), perf))
    return out


def figures(checkpoint, data: str, composer_test: list[Path], general: int, prompts) -> dict:
    started = time.perf_counter()
    general_test = evaluate_checkpoint(data, "test", checkpoint, "cpu", max_files=general)
    model = Model.load(str(checkpoint))
    takes = [take_notes(model, p, TAKE_SECONDS, 0, 1.0)[0] for p in prompts]
    stats = compare(
        [features(n, TAKE_SECONDS) for n in takes],
        [features(p.real(0, TAKE_SECONDS).notes, TAKE_SECONDS) for p in prompts],
        [features(p.window.notes, PROMPT_SECONDS) for p in prompts],
    )
    return {
        "composer_test_nll_per_note": round(nll_per_note(checkpoint, composer_test), 4),
        "general_test_nll_per_note": round(general_test["nll_per_note"], 4),
        "takes_30s": {
            "pitch_class_js_bits": stats["pitch_class_js_bits"],
            "mean_overlap": stats["mean_overlap"],
            "density": stats["density"]["mean"],
            "median_duration": stats["median_duration"]["mean"],
        },
        "seconds": round(time.perf_counter() - started),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="small")
    parser.add_argument("--composer", default="Domenico Scarlatti")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--general-files", type=int, default=20)
    parser.add_argument("--out", help="the run's folder (default: a temporary one)")
    parser.add_argument(
        "--unseen",
        type=int,
        default=0,
        help="also put this many of the composer's test performances in the folder (music the "
        "model never saw; they leave the composer's test set)",
    )
    args = parser.parse_args()
    pieces = [p for p in list_pieces(args.data) if p.composer == args.composer]
    train = [p.path for p in pieces if p.split == "train"]
    test = [p.path for p in pieces if p.split == "test"]
    train, test = train + test[: args.unseen], test[args.unseen :]
    if not train or not test:
        sys.exit(f"{args.composer} has {len(train)} train and {len(test)} test performances.")
    work = Path(args.out or tempfile.mkdtemp(prefix="finetune-"))
    folder = work.parent / f"{work.name}-folder"  # the user's folder: their own MIDI files
    folder.mkdir(parents=True, exist_ok=True)
    for path in train:
        link = folder / Path(path).name
        if not link.exists():
            link.symlink_to((Path(args.data) / path).resolve())
    prompts = composer_prompts(args.data, test)
    composer_test = [Path(args.data) / p for p in test]
    result = {
        "machine": {"cpu": devices.cpu_name(), "threads": torch.get_num_threads()},
        "model": args.model,
        "composer": args.composer,
        "folder_pieces": len(train),
        "of_them_unseen_in_pretraining": args.unseen,
        "composer_test_pieces": len(test),
        "general_test_files": args.general_files,
        "prompts": len(prompts),
    }
    result["before"] = figures(
        resolve(args.model), args.data, composer_test, args.general_files, prompts
    )
    print(json.dumps({"before": result["before"]}), flush=True)
    command = [sys.executable, "-m", "musicgen", "train", "--init-from", args.model]
    command += ["--data", str(folder), "--out", str(work), "--time-limit-min", str(args.minutes)]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    result["train_minutes"] = round((time.perf_counter() - started) / 60, 1)
    result["command"] = " ".join(["python", *command[1:]])
    result["after"] = figures(resolve(work), args.data, composer_test, args.general_files, prompts)
    for key in ("composer_test_nll_per_note", "general_test_nll_per_note"):
        before, after = result["before"][key], result["after"][key]
        result[key.replace("nll_per_note", "change")] = round(after / before - 1, 4)
    result["run"] = str(work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
