"""Originality: the longest run of consecutive notes a continuation shares with a MAESTRO
training piece, looked up in a compact index of hashed note n-grams.

A note is its pitch and the time since the previous onset (10 ms steps). Every run of NGRAM
consecutive notes of the train split is hashed; winnowing keeps the smallest hash of every WINDOW
consecutive ones, so any shared run of NGRAM + WINDOW - 1 notes or more is certain to hit the
index (shorter ones often do), at about 2 / (WINDOW + 1) of the n-grams' size. A continuation's
n-grams are all looked up; hits of one piece at most WINDOW apart are one shared run, whose
length is estimated from its first and last hit. Built once by
`scripts/build_originality_index.py`, shipped as checkpoints/maestro-train-ngrams.npz.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .midi import ONSET, PITCH, Performance

NGRAM, WINDOW = 10, 16
INDEX_FILE = Path(__file__).resolve().parent.parent / "checkpoints" / "maestro-train-ngrams.npz"
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: a bijection on 64-bit integers


def note_keys(onsets: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """One integer per note (in onset order): pitch and inter-onset time in 10 ms steps."""
    order = np.lexsort((pitches, onsets))
    onsets, pitches = onsets[order], pitches[order]
    ioi = np.diff(onsets, prepend=onsets[:1] if len(onsets) else onsets)
    steps = np.clip(np.round(ioi * 100), 0, 1023).astype(np.uint64)
    return (pitches.astype(np.uint64) << np.uint64(10)) | steps


def ngram_hashes(keys: np.ndarray) -> np.ndarray:
    """32-bit hashes of every NGRAM consecutive keys (empty when there are fewer)."""
    n = len(keys) - NGRAM + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint32)
    h = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):  # wrap-around arithmetic is the point
        for j in range(NGRAM):
            h = (h + keys[j : j + n] + np.uint64(j)) * _MULTIPLIER
    return (h >> np.uint64(32)).astype(np.uint32)


def winnow(hashes: np.ndarray) -> np.ndarray:
    """Positions of the smallest hash in every WINDOW consecutive ones (each kept once)."""
    if len(hashes) <= WINDOW:
        return np.array([int(np.argmin(hashes))] if len(hashes) else [], dtype=int)
    windows = np.lib.stride_tricks.sliding_window_view(hashes, WINDOW)
    return np.unique(windows.argmin(axis=1) + np.arange(len(windows)))


def performance_keys(perf: Performance) -> np.ndarray:
    return note_keys(perf.notes[:, ONSET], perf.notes[:, PITCH].astype(np.int64))


@dataclass(frozen=True)
class SharedRun:
    notes: int  # estimated length of the longest shared run (0: none of NGRAM notes or more)
    title: str | None  # the training piece it comes from

    def describe(self) -> str:
        if not self.notes:
            return f"no run of {NGRAM} notes or more copied from MAESTRO"
        return f"longest run copied from MAESTRO: {self.notes} notes ({self.title})"


class OriginalityIndex:
    def __init__(self, hashes: np.ndarray, pieces: np.ndarray, titles: list[str]):
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.pieces, self.titles = hashes[order], pieces[order], titles

    @classmethod
    def build(cls, pieces: list[tuple[str, np.ndarray]]) -> OriginalityIndex:
        """From (title, note keys) per training piece."""
        hashes, owners = [], []
        for i, (_, keys) in enumerate(pieces):
            h = ngram_hashes(keys)
            kept = np.unique(h[winnow(h)])
            hashes.append(kept)
            owners.append(np.full(len(kept), i, dtype=np.uint16))
        return cls(np.concatenate(hashes), np.concatenate(owners), [t for t, _ in pieces])

    def save(self, path: str | Path) -> None:
        np.savez(path, hashes=self.hashes, pieces=self.pieces, titles=np.array(self.titles))

    @classmethod
    def load(cls, path: str | Path = INDEX_FILE) -> OriginalityIndex | None:
        if not Path(path).is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return cls(data["hashes"], data["pieces"], [str(t) for t in data["titles"]])

    def longest_run(self, perf: Performance) -> SharedRun:
        h = ngram_hashes(performance_keys(perf))
        lo = np.searchsorted(self.hashes, h, side="left")
        hi = np.searchsorted(self.hashes, h, side="right")
        hits: dict[int, list[int]] = {}
        for position in np.flatnonzero(hi > lo):
            for piece in self.pieces[lo[position] : hi[position]]:
                hits.setdefault(int(piece), []).append(int(position))
        best = SharedRun(0, None)
        for piece, positions in hits.items():
            start = previous = positions[0]
            for p in positions[1:] + [None]:
                if p is not None and p - previous <= WINDOW:
                    previous = p
                    continue
                length = previous - start + NGRAM
                if length > best.notes:
                    best = SharedRun(length, self.titles[piece])
                if p is not None:
                    start = previous = p
        return best
