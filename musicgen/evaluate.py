"""Negative log-likelihood of whole pieces (sliding window), and n-gram baselines.

Each piece is `BOS tokens`; every piece token is scored once. Windows of the model's context
slide by half a context, and only the tokens not scored before are counted, so each token is
predicted with at least half a context of history (Music Transformer's protocol).
Per-note and per-second figures divide the same total NLL by the pieces' note count and length,
which makes them comparable across tokenizations of the same music.

The per-note total is also split into PARTS: when the next note comes and which pitch it is
(the shift and pitch tokens, with the piece's end), then the note's velocity and its duration.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import device as devices
from .checkpoint import load_checkpoint, resolve
from .data import IGNORE, TokenCache, build_cache
from .errors import MusicgenError
from .tokenizer import NOTE_DURATION, NOTE_PITCH, NOTE_VELOCITY, PerformanceTokenizer

log = logging.getLogger(__name__)

PARTS = ("onset_and_pitch", "velocity", "duration")


def nll_by_part(model, tokenizer: PerformanceTokenizer, inputs, targets) -> torch.Tensor:
    """The summed NLL (len(PARTS),) of a batch's targets (IGNORE: not scored)."""
    out, _ = model(inputs)
    nll = F.cross_entropy(
        out.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="none"
    )
    part_of_kind = torch.zeros(int(tokenizer.kind.max()) + 1, dtype=torch.long)
    part_of_kind[NOTE_VELOCITY], part_of_kind[NOTE_DURATION] = 1, 2
    kinds = torch.as_tensor(tokenizer.kind, device=out.device)[targets.flatten().clamp(min=0)]
    index = part_of_kind.to(out.device)[kinds]
    return torch.zeros(len(PARTS), device=out.device).index_add_(0, index, nll)


@torch.inference_mode()
def score_windows(
    model, tokenizer, pairs: list, autocast: torch.dtype, batch_size: int = 16, desc: str = ""
) -> torch.Tensor:
    """The summed NLL by part (len(PARTS),) of (input, target) windows (from `windows`),
    scored in padded batches under `autocast` on the model's device."""
    dev = model.embed.weight.device
    total = torch.zeros(len(PARTS), dtype=torch.float64)
    for i in tqdm(range(0, len(pairs), batch_size), desc=desc, unit="batch", mininterval=5.0):
        chunk = pairs[i : i + batch_size]
        shape = (len(chunk), max(len(x) for x, _ in chunk))
        inputs = np.full(shape, tokenizer.pad_id, dtype=np.int64)
        targets = np.full(shape, IGNORE, dtype=np.int64)
        for row, (x, y) in enumerate(chunk):
            inputs[row, : len(x)], targets[row, : len(y)] = x, y
        with devices.autocast(dev, autocast):
            inputs, targets = torch.from_numpy(inputs).to(dev), torch.from_numpy(targets).to(dev)
            total += nll_by_part(model, tokenizer, inputs, targets).double().cpu()
    return total


def _pieces(cache: TokenCache, split: str, max_files: int | None) -> list[dict]:
    pieces = cache.pieces(split)
    if not pieces:
        raise MusicgenError(f"No pieces in the '{split}' split.")
    return pieces[:max_files] if max_files else pieces


def _summary(
    total_nll: float, tokens: int, notes: int, seconds: float, files: int, **extra
) -> dict:
    return {
        "nll_per_token": total_nll / tokens,
        "nll_per_note": total_nll / max(notes, 1),
        "nll_per_second": total_nll / max(seconds, 1e-9),
        "files": files,
        "notes": notes,
        "tokens": tokens,
        "seconds": round(seconds, 1),
        **extra,
    }


def windows(seq: np.ndarray, block: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(input, target) pairs covering seq[1:] once; targets already scored are IGNORE."""
    stride = block // 2
    out, scored_until = [], 0  # index (in seq) of the last target scored
    begin = 0
    while scored_until < len(seq) - 1:
        inputs = seq[begin : begin + block]
        targets = seq[begin + 1 : begin + 1 + block].copy()
        first_new = scored_until - begin  # targets[j] is seq[begin + 1 + j]
        targets[: max(first_new, 0)] = IGNORE
        out.append((inputs[: len(targets)], targets))
        scored_until = begin + len(targets)
        begin += stride
    return out


@torch.inference_mode()
def evaluate_checkpoint(
    data: str,
    split: str = "test",
    checkpoint=None,
    device: str | None = None,
    max_files: int | None = None,
    cache_dir: str | None = None,
    batch_size: int = 16,
    dtype: torch.dtype | None = None,
) -> dict:
    """NLL of a checkpoint. dtype None: float32 weights under the device's autocast (bf16 on
    GPUs); a dtype: the weights themselves in it, as a CPU serving them that way computes."""
    directory = resolve(checkpoint)
    dev = devices.pick_device(device)
    model, tokenizer, _ = load_checkpoint(directory, dev, dtype or torch.float32)
    block = model.config.block_size
    cache = build_cache(data, tokenizer, cache_dir)
    pieces = _pieces(cache, split, max_files)

    pairs, tokens, notes, seconds = [], 0, 0, 0.0
    for piece in pieces:
        ids = cache.piece_tokens(piece)
        seq = np.concatenate([[tokenizer.bos_id], ids])
        pairs += windows(seq, block)
        tokens += len(ids)
        notes += int((tokenizer.kind[ids] == NOTE_PITCH).sum())
        seconds += piece["seconds"]
    started = time.perf_counter()
    autocast = devices.inference_dtype(dev) if dtype is None else dtype
    total = score_windows(model, tokenizer, pairs, autocast, batch_size, f"evaluating {split}")
    return _summary(
        float(total.sum()),
        tokens,
        notes,
        seconds,
        len(pieces),
        split=split,
        checkpoint=directory.name,
        nll_per_note_by_part={p: round(float(t) / max(notes, 1), 4) for p, t in zip(PARTS, total)},
        eval_seconds=round(time.perf_counter() - started, 1),
        weights_dtype=str(dtype or torch.float32).removeprefix("torch."),
    )


def evaluate_baseline(
    data: str,
    split: str,
    order: str,
    max_files: int | None = None,
    checkpoint=None,
    cache_dir: str | None = None,
) -> dict:
    """A unigram or bigram model with add-one smoothing fitted on the train split, scored on
    the same tokens as the Transformer (the checkpoint's tokenizer)."""
    tokenizer = PerformanceTokenizer.load(resolve(checkpoint))
    cache = build_cache(data, tokenizer, cache_dir)
    V = tokenizer.vocab_size
    train = [
        np.concatenate([[tokenizer.bos_id], cache.piece_tokens(p)]) for p in cache.pieces("train")
    ]
    if order == "unigram":
        counts = np.ones(V)
        for seq in train:
            counts += np.bincount(seq[1:], minlength=V)
        logp = np.log(counts / counts.sum())
    else:
        counts = np.ones((V, V))
        for seq in train:
            np.add.at(counts, (seq[:-1], seq[1:]), 1)
        logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    total, tokens, notes, seconds = 0.0, 0, 0, 0.0
    pieces = _pieces(cache, split, max_files)
    for piece in pieces:
        seq = np.concatenate([[tokenizer.bos_id], cache.piece_tokens(piece)])
        total -= logp[seq[1:]].sum() if order == "unigram" else logp[seq[:-1], seq[1:]].sum()
        tokens += len(seq) - 1
        notes += int((tokenizer.kind[seq] == NOTE_PITCH).sum())
        seconds += piece["seconds"]
    return _summary(total, tokens, notes, seconds, len(pieces), split=split, model=order)
