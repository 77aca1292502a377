"""Datasets: MAESTRO (its CSV split) or any folder of MIDI files, pre-tokenized into a cache.

The cache is one uint16 array of all tokens plus a JSON index (file, split, composer, offsets),
keyed by a hash of the tokenizer configuration and the file list, so a second run is instant and a
changed tokenizer never reads stale tokens. Training windows are sampled from it, augmented
(augment.py).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import zlib
from collections import Counter
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import device as devices
from .augment import Augmentation
from .errors import MusicgenError
from .midi import read_midi
from .model import IGNORE
from .tokenizer import NOTE_PITCH, SHIFT, PerformanceTokenizer

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
CUE_SHARE = 4  # a cue is at most a quarter of the window, as a rewrite's judged music after
OTHER = "Other"
MIDI_SUFFIXES = (".mid", ".midi")


@dataclass(frozen=True)
class PieceInfo:
    path: str  # relative to the data folder
    split: str
    composer: str
    title: str = ""


def list_pieces(data_dir: str | Path) -> list[PieceInfo]:
    """MAESTRO's official split when its CSV is there; otherwise every MIDI file under the
    folder with a stable pseudo-random 90/5/5 split (by a hash of the path)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MusicgenError(f"Data folder not found: {data_dir}")
    csvs = sorted(data_dir.glob("maestro-v*.csv"))
    if csvs:
        with open(csvs[-1], newline="", encoding="utf-8") as f:
            return [
                PieceInfo(
                    r["midi_filename"], r["split"], r["canonical_composer"], r["canonical_title"]
                )
                for r in csv.DictReader(f)
            ]
    paths = sorted(
        p for p in data_dir.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()
    )
    if not paths:
        raise MusicgenError(f"No .mid/.midi files under {data_dir}")
    # A stable pseudo-random order (by a hash of the path): 5% test, 5% validation (at least one
    # file each when there are three or more), the rest train.
    rels = sorted(
        (p.relative_to(data_dir).as_posix() for p in paths),
        key=lambda rel: zlib.crc32(rel.encode()),
    )
    held_out = max(1, len(rels) // 20) if len(rels) >= 3 else 0
    split_of = {
        rel: "test" if i < held_out else "validation" if i < 2 * held_out else "train"
        for i, rel in enumerate(rels)
    }
    return [PieceInfo(rel, split_of[rel], OTHER, Path(rel).stem) for rel in sorted(split_of)]


def top_composers(pieces: list[PieceInfo], count: int = 12) -> tuple[str, ...]:
    """The most frequent single composers of the training split, plus 'Other'."""
    counts = Counter(
        p.composer
        for p in pieces
        if p.split == "train" and "/" not in p.composer and p.composer != OTHER
    )
    return tuple(sorted(c for c, _ in counts.most_common(count))) + (OTHER,)


def composer_of(piece: PieceInfo, composers: tuple[str, ...]) -> str:
    return piece.composer if piece.composer in composers else OTHER


# ---------------------------------------------------------------------------------------------
# Token cache

_worker_tokenizer: PerformanceTokenizer | None = None


def _init_worker(tokenizer_dir: str) -> None:
    global _worker_tokenizer  # one tokenizer per worker process, loaded once
    _worker_tokenizer = PerformanceTokenizer.load(tokenizer_dir)


def _tokenize_file(path: str) -> tuple[np.ndarray | None, float, int]:
    try:
        perf = read_midi(path, isolate=False)  # our own data set: trusted
    except MusicgenError as exc:
        log.warning("skipping %s: %s", path, exc)
        return None, 0.0, 0
    return _worker_tokenizer.encode(perf).astype(np.uint16), perf.duration, len(perf)


@dataclass
class TokenCache:
    tokens: np.ndarray  # uint16, all pieces concatenated
    index: list[dict]  # per piece: path, split, composer, title, start, length, seconds, notes

    def pieces(self, split: str) -> list[dict]:
        return [p for p in self.index if p["split"] == split]

    def piece_tokens(self, entry: dict) -> np.ndarray:
        return self.tokens[entry["start"] : entry["start"] + entry["length"]].astype(np.int64)


def cache_key(tokenizer: PerformanceTokenizer, pieces: list[PieceInfo]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(tokenizer.inner.config.to_dict(serialize=True), sort_keys=True).encode())
    h.update(json.dumps(list(tokenizer.composers)).encode())
    for p in pieces:
        h.update(f"{p.path}|{p.split}|{p.composer}\n".encode())
    return h.hexdigest()[:16]


def build_cache(
    data_dir: str | Path,
    tokenizer: PerformanceTokenizer,
    cache_root: str | Path | None = None,
    workers: int | None = None,
    max_files: int | None = None,
) -> TokenCache:
    """Tokenize every piece once (in parallel) and reuse the result on later calls."""
    data_dir = Path(data_dir)
    pieces = list_pieces(data_dir)
    if max_files:
        pieces = pieces[:max_files]
    folder = Path(cache_root or devices.cache_root()) / f"tokens-{cache_key(tokenizer, pieces)}"
    if (folder / "index.json").is_file():
        index = json.loads((folder / "index.json").read_text())
        return TokenCache(np.load(folder / "tokens.npy", mmap_mode="r"), index)

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(folder)
    paths = [str(data_dir / p.path) for p in pieces]
    workers = workers or min(os.cpu_count() or 1, 8)
    ctx = get_context("spawn")  # no fork: the parent may hold torch threads
    chunks, index, start = [], [], 0
    with ctx.Pool(workers, initializer=_init_worker, initargs=(str(folder),)) as pool:
        results = pool.imap(_tokenize_file, paths, chunksize=4)
        for piece, (ids, seconds, notes) in tqdm(
            zip(pieces, results), total=len(pieces), desc="tokenizing", unit="file"
        ):
            if ids is None or len(ids) == 0:
                continue
            chunks.append(ids)
            index.append(
                dict(
                    path=piece.path,
                    split=piece.split,
                    title=piece.title,
                    composer=composer_of(piece, tokenizer.composers),
                    start=start,
                    length=len(ids),
                    seconds=seconds,
                    notes=notes,
                )
            )
            start += len(ids)
    tokens = np.concatenate(chunks) if chunks else np.zeros(0, np.uint16)
    np.save(folder / "tokens.tmp.npy", tokens)
    os.replace(folder / "tokens.tmp.npy", folder / "tokens.npy")
    (folder / "index.tmp.json").write_text(json.dumps(index))
    os.replace(folder / "index.tmp.json", folder / "index.json")  # written last: marks complete
    log.info("token cache: %d pieces, %d tokens in %s", len(index), len(tokens), folder)
    return TokenCache(np.load(folder / "tokens.npy", mmap_mode="r"), index)


# ---------------------------------------------------------------------------------------------
# Training windows


class WindowSampler:
    """Random (B, T+1) token windows of [composer] BOS piece EOS, deterministic in
    (seed, rank, step); with `cue_p`, that share of them rearranged by `with_cue`."""

    def __init__(
        self,
        cache: TokenCache,
        split: str,
        tokenizer: PerformanceTokenizer,
        length: int,
        augment: bool = True,
        composer_p: float = 0.5,
        velocity_shift: int = 0,
        cue_p: float = 0.0,
    ):
        self.pieces = [(cache.piece_tokens(p), p["composer"]) for p in cache.pieces(split)]
        if not self.pieces:
            raise MusicgenError(f"The data set has no pieces in the '{split}' split.")
        lengths = np.array([len(t) for t, _ in self.pieces], dtype=np.float64)
        self.weights = lengths / lengths.sum()  # sample pieces in proportion to their length
        self.tok, self.length, self.composer_p = tokenizer, length, composer_p
        self.augmentation = Augmentation(tokenizer, velocity_shift) if augment else None
        self.cue_p = cue_p

    def window(self, rng: np.random.Generator) -> np.ndarray:
        ids, composer = self.pieces[rng.choice(len(self.pieces), p=self.weights)]
        prefix = []
        composer_id = self.tok.composer_id(composer) if composer in self.tok.composers else None
        if composer_id is not None and rng.random() < self.composer_p:
            prefix = [composer_id]
        n = self.length + 1 - len(prefix)
        seq = np.concatenate([[self.tok.bos_id], ids, [self.tok.eos_id]]).astype(np.int64)
        start = rng.integers(0, max(1, len(seq) - n + 1))
        out = seq[start : start + n]
        if self.augmentation is not None:
            out = self.augmentation(out, rng)
        if self.cue_p and rng.random() < self.cue_p:
            out = with_cue(self.tok, out, rng, self.length // CUE_SHARE)
        out = np.concatenate([prefix, out]).astype(np.int64)
        if len(out) < self.length + 1:
            out = np.concatenate([out, np.full(self.length + 1 - len(out), IGNORE)])
        return out

    def batch(self, batch_size: int, seed: int, rank: int, step: int) -> np.ndarray:
        rng = np.random.default_rng([seed, rank, step])
        return np.stack([self.window(rng) for _ in range(batch_size)])


def with_cue(
    tok: PerformanceTokenizer, ids: np.ndarray, rng: np.random.Generator, max_cue: int
) -> np.ndarray:
    """A window's tokens as `BOS cue EOS stream`: the music from one of its onsets on (whole
    notes, at most `max_cue` tokens) read first, as a piece of its own, then the music up to that
    onset. A model trained on such windows learns to write toward music it has been told comes
    next — what a rewrite's passage must do (rewrite.py places the music after the span there).
    The window unchanged when it has no room for a cue."""
    kind = tok.kind[ids]
    onsets = np.flatnonzero((kind[1:] == NOTE_PITCH) & (kind[:-1] == SHIFT)) + 1
    n = len(ids)
    onsets = onsets[(onsets >= n // 4) & (onsets <= n - 16)]  # a stream to read, a cue to read
    if not len(onsets):
        return ids
    at = int(rng.choice(onsets))
    notes = np.flatnonzero(kind == NOTE_PITCH)
    ends = notes[(notes > at) & (notes <= at + rng.integers(max_cue // 4, max_cue + 1))]
    if not len(ends):
        return ids
    cue = ids[at : int(ends[-1])]  # whole notes: it ends where another note starts
    stream = ids[:at][-(n - len(cue) - 2) :]
    return np.concatenate([[tok.bos_id], cue, [tok.eos_id], stream]).astype(ids.dtype)


def split_window(batch, pad_id: int):
    """A (B, T+1) window batch -> model inputs (padding as pad_id) and targets (B, T) each."""
    inputs = batch[:, :-1].masked_fill(batch[:, :-1] == IGNORE, pad_id)
    return inputs, batch[:, 1:]
