"""Fine-tuning a trained model on a person's own MIDI folder: the settings that suit a small
folder, sized to it. `train --init-from MODEL --data FOLDER` fills in every one of these that
its flags leave out (and prints them); the flags given win.

The folder's pieces train under the style token "Other": a folder is not one of the composers
the model has a token for, and "Other" is the token it learned for everyone else (a new token
would start from an untrained embedding).
"""

from __future__ import annotations

import logging
import math

from .checkpoint import resolve
from .data import build_cache, list_pieces
from .errors import MusicgenError
from .tokenizer import PerformanceTokenizer

log = logging.getLogger(__name__)

LR = 1e-4  # a tenth of pre-training's peak: the model is trained already
PASSES = 3  # over the folder's training files
MIN_STEPS, MAX_STEPS = 100, 3000
EVALUATIONS = 10  # per run, on the folder's held-out files
PATIENCE = 3  # evaluations without a better validation loss, and the run stops (the best kept)


def folder_settings(
    init_from: str,
    data: str,
    batch_size: int,
    block_size: int,
    cache_dir: str | None = None,
    max_files: int | None = None,
) -> dict:
    """TrainConfig values for fine-tuning `init_from` on the MIDI folder `data`: a low learning
    rate, a short warm-up, PASSES passes over the folder, EVALUATIONS evaluations and early
    stopping. Refuses a folder that cannot be trained on, saying why."""
    tokenizer = PerformanceTokenizer.load(resolve(init_from))
    pieces = list_pieces(data)  # (a folder without MIDI files is refused here)
    cache = build_cache(data, tokenizer, cache_dir, max_files=max_files)
    listed = min(len(pieces), max_files or len(pieces))
    if len(cache.index) < listed:
        log.warning("skipped %d of %d files that could not be read", listed - len(cache.index),
                    listed)  # fmt: skip
    train = cache.pieces("train")
    tokens = sum(p["length"] for p in train)
    if not cache.pieces("validation") or tokens < block_size:
        raise MusicgenError(
            f"{data} holds {len(cache.index)} readable MIDI file(s), {tokens} tokens to train "
            f"on: fine-tuning needs at least 3 files (one held out to watch it) and more "
            f"music than one window of {block_size} tokens."
        )
    steps = math.ceil(PASSES * tokens / (batch_size * block_size))
    steps = min(max(steps, MIN_STEPS), MAX_STEPS)
    log.info(
        "the folder: %d pieces to train on (%d tokens), %d held out to watch it; %d steps are "
        "%.1f passes over it (the bar shows the time left; --time-limit-min stops earlier with "
        "a checkpoint, --max-steps sets another length)",
        len(train),
        tokens,
        len(cache.pieces("validation")),
        steps,
        steps * batch_size * block_size / tokens,
    )
    return {
        "lr": LR,
        "min_lr": LR / 10,
        "max_steps": steps,
        "warmup_steps": max(10, steps // 20),
        "eval_every": max(10, steps // EVALUATIONS),
        "patience": PATIENCE,
    }
