"""How much of its context does a model use, and can it be given more without training? JSON.

1. **Within the trained window** (`by_context`): full windows from test pieces (up to 4 a
   piece, none at a piece's start); each token's NLL grouped by how many tokens of context
   predicted it, for every token and for the pitch tokens alone (which note: the key). If the
   NLL still falls at the window's far end, the model would use more context than it has.
2. **Beyond it** (`stretched`): the model's rotary tables stretched to twice its window with no
   training — the trained frequencies run on past the window (extrapolate), every position
   halved (linear), an NTK-aware base (base · 2^(d/(d-2))), or YaRN (only the slow dimensions
   interpolated, attention sharpened by 0.1·ln 2 + 1) — scored with evaluate's protocol (windows
   sliding by half) on the same pieces, against the trained window. Both under bf16 autocast
   (`evaluate` on a CPU computes float32: about twice the time).

    python benchmarks/context_use.py --data ../shared/data/maestro-v3.0.0 [--pieces 24]
        [--checkpoint DIR] [--device cuda] [--cache-dir DIR] [--no-stretch]
"""

import argparse
import dataclasses
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from musicgen import device as devices
from musicgen.checkpoint import load_checkpoint, resolve
from musicgen.data import build_cache
from musicgen.evaluate import PARTS, score_windows, windows
from musicgen.model import rope_frequencies
from musicgen.tokenizer import NOTE_PITCH

CONTEXT_EDGES = (1, 64, 128, 256, 512, 768, 1024, 1536)  # tokens of context, bucket edges
WINDOWS_PER_PIECE = 4
STRETCH = 2  # how many times the trained window the stretched tables reach
STRETCHES = ("extrapolate", "linear", "ntk", "yarn")


def rotary_frequencies(model, kind: str) -> tuple[torch.Tensor, float]:
    """(inverse frequencies (hd/2,), attention scale) of a stretch to STRETCH × the window."""
    config = model.config
    d, base, block = config.head_dim, config.rope_base, config.block_size
    if kind == "ntk":
        return rope_frequencies(d, base * STRETCH ** (d / (d - 2))), 1.0
    inv_freq = rope_frequencies(d, base)
    if kind == "linear":
        return inv_freq / STRETCH, 1.0
    if kind == "yarn":  # Peng et al. 2023: dims turning < 1 time over the window interpolated,
        turns = block * inv_freq / (2 * math.pi)  # > 32 times kept, a ramp between
        kept = ((turns - 1) / (32 - 1)).clamp(0, 1)
        inv_freq = kept * inv_freq + (1 - kept) * inv_freq / STRETCH
        return inv_freq, 0.1 * math.log(STRETCH) + 1
    return inv_freq, 1.0  # extrapolate


def set_rotary(model, block: int, inv_freq: torch.Tensor, scale: float) -> None:
    """Rotary tables for `block` positions; `scale` multiplies q and k (both tables)."""
    angles = torch.outer(torch.arange(block, dtype=torch.float32), inv_freq.cpu())
    angles = angles.to(model.embed.weight.device)
    model.rope_cos, model.rope_sin = angles.cos() * scale, angles.sin() * scale
    model.config = dataclasses.replace(model.config, block_size=block)


@torch.inference_mode()
def by_context(model, tok, pieces: list[np.ndarray]) -> list[dict]:
    block, dev = model.config.block_size, model.embed.weight.device
    edges = [e for e in CONTEXT_EDGES if e < block] + [block + 1]
    context = np.arange(1, block + 1)  # tokens of context behind each target of a window
    bucket = np.digitize(context, edges) - 1
    sums = np.zeros((2, len(edges) - 1))
    counts = np.zeros_like(sums)
    for ids in pieces:
        # up to WINDOWS_PER_PIECE full windows, the piece's first skipped
        for start in range(block, len(ids) - block - 1, block)[:WINDOWS_PER_PIECE]:
            window = torch.as_tensor(ids[start : start + block + 1], device=dev)[None]
            with torch.autocast(dev.type, torch.bfloat16):
                logits, _ = model(window[:, :-1])
            nll = F.cross_entropy(logits[0].float(), window[0, 1:], reduction="none")
            nll = nll.cpu().numpy()
            pitch = tok.kind[ids[start + 1 : start + block + 1]] == NOTE_PITCH
            for row, keep in enumerate((np.ones_like(pitch), pitch)):
                np.add.at(sums[row], bucket[keep], nll[keep])
                np.add.at(counts[row], bucket[keep], 1)
    return [
        {
            "context_tokens": f"{edges[i]}-{edges[i + 1] - 1}",
            "nll_per_token": round(float(sums[0, i] / counts[0, i]), 4),
            "nll_per_pitch_token": round(float(sums[1, i] / counts[1, i]), 4),
            "tokens": int(counts[0, i]),
        }
        for i in range(len(edges) - 1)
    ]


def nll_per_note(model, tok, pieces: list[np.ndarray]) -> dict:
    """evaluate's protocol on these pieces (its windows and scoring, under bf16 autocast)."""
    block = model.config.block_size
    pairs = [w for ids in pieces for w in windows(np.concatenate([[tok.bos_id], ids]), block)]
    total = score_windows(model, tok, pairs, torch.bfloat16)
    notes = sum(int((tok.kind[ids] == NOTE_PITCH).sum()) for ids in pieces)
    return {
        "nll_per_note": round(float(total.sum()) / notes, 4),
        "by_part": {p: round(float(t) / notes, 4) for p, t in zip(PARTS, total)},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--pieces", type=int, default=24)
    parser.add_argument("--checkpoint")
    parser.add_argument("--device", help="default: the best available")
    parser.add_argument("--cache-dir", help="the token cache's folder")
    parser.add_argument(
        "--no-stretch", action="store_true", help="only the trained window (part 1, and its NLL)"
    )
    args = parser.parse_args()
    directory = resolve(args.checkpoint)
    model, tok, _ = load_checkpoint(directory, devices.pick_device(args.device))
    cache = build_cache(args.data, tok, args.cache_dir)
    test = cache.pieces("test")
    chosen = np.linspace(0, len(test) - 1, args.pieces).astype(int)
    pieces = [cache.piece_tokens(test[i]) for i in chosen]
    started = time.perf_counter()
    block = model.config.block_size
    result = {
        "checkpoint": directory.name,
        "pieces": len(pieces),
        "block_size": block,
        "by_context": by_context(model, tok, pieces),
        "trained": nll_per_note(model, tok, pieces),
        "stretched": {},
    }
    for kind in () if args.no_stretch else STRETCHES:
        set_rotary(model, STRETCH * block, *rotary_frequencies(model, kind))
        result["stretched"][f"{kind}, {STRETCH * block} tokens"] = nll_per_note(model, tok, pieces)
        trained = rope_frequencies(model.config.head_dim, model.config.rope_base)
        set_rotary(model, block, trained, 1.0)
    result["seconds"] = round(time.perf_counter() - started)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
