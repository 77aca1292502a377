"""Rewriting a passage: candidates for a span [start, end) of a piece that carry on from the
music before it and lead into the music after it, best first.

The model reads left to right, so a passage is sampled from the music before the span (the
continuation sampler, no note before the span's start, ending within one grid step of its end),
then judged by how likely the model finds the real music after the span given before + passage:
one teacher-forced pass per candidate over the shared prefix's cache (importance resampling
toward p(passage | before, after)). A span that reaches the piece's end has nothing after it:
its passages are ranked as continuations are (closest to the prompt's own level).

A model trained to read the music after a window first (`train --cue-p`, data.with_cue) writes
its passages after `BOS <the judged music after> EOS <the music before>`: told where the music
goes, not only where it comes from. The judging is the same for every model.

The notes outside the span stay as they were — onset, pitch, velocity; a note held into the span
keeps its duration unless the passage strikes its key again (midi.merge's rule).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from . import device as devices
from .decoders import Decoder
from .errors import InvalidParameterError, check_number
from .generate import (
    PROMPT_FILL,
    Progress,
    Sample,
    SamplingConfig,
    continuation_notes,
    continuation_origin,
    sample,
)
from .midi import ONSET, PROMPT_SECONDS, Performance, make_performance, merge, prompt_window
from .model import MusicTransformer
from .tokenizer import NOTE_PITCH, PerformanceTokenizer

MIN_SPAN_SECONDS, MAX_SPAN_SECONDS = 0.5, 30.0
DEFAULT_SPAN_SECONDS = 4.0  # from/to not given: the last 4 s of the piece
MIN_BEFORE_SECONDS = 2.0  # of music before the span to carry on from
AFTER_SECONDS = 5.0  # of the music after the span that judges a passage...
AFTER_SHARE = 4  # ...at most a quarter of the model's window, to leave room for the passage


@dataclass(frozen=True)
class Passage:
    row: int  # its candidate's batch row: with the seed, what reproduces it (-1: the original)
    ids: np.ndarray  # its tokens, from the last onset before the span
    notes: Performance  # the passage, in the piece's time
    piece: Performance  # the piece with this passage in the span
    # The judgement: the NLL per note (nats) of the music after the span given the music before
    # and this passage, lower is better; None when nothing comes after the span.
    after_nll_per_note: float | None
    log_likelihood_per_note: float | None  # of its own notes (None for the original passage)
    prompt_log_likelihood_per_note: float | None  # the music before's own level

    @property
    def distance_from_prompt(self) -> float | None:
        """As Continuation.distance_from_prompt: the judgement when nothing comes after."""
        if self.log_likelihood_per_note is None or self.prompt_log_likelihood_per_note is None:
            return None
        return abs(self.log_likelihood_per_note - self.prompt_log_likelihood_per_note)


@dataclass(frozen=True)
class Rewrite:
    start: float
    end: float
    passages: list[Passage]  # best first
    original: Passage  # the span's own notes, judged the same way
    after_notes: int  # notes of the music after the span that judged the passages

    def rank(self, passage: Passage) -> tuple:
        """Sort key, best first (see the module's docstring). With music after the span, the
        judgement alone (a rest may be the best lead into it); without, as takes are ranked,
        passages without notes last."""
        if self.after_notes:
            return (0, passage.after_nll_per_note)
        if not len(passage.notes):
            return (2, 0.0)
        distance = passage.distance_from_prompt
        return (0, distance) if distance is not None else (1, 0.0)


def check_span(piece: Performance, start, end) -> tuple[float, float]:
    """(start, end) as numbers, or an error that names what is wrong with the span. None: `end`
    is the piece's end, `start` DEFAULT_SPAN_SECONDS before `end`."""
    if len(piece) == 0:
        raise InvalidParameterError("The piece has no notes to rewrite.")
    end = piece.duration if end is None else check_number("to", end)
    start = end - DEFAULT_SPAN_SECONDS if start is None else check_number("from", start)
    if end <= start:
        raise InvalidParameterError(
            f"The passage to rewrite ends ({end:g} s) before it starts ({start:g} s): "
            "'to' must come after 'from'."
        )
    if start < 0 or end > piece.duration + 1e-6:
        raise InvalidParameterError(
            f"The passage {start:g}–{end:g} s is outside the piece (0–{piece.duration:.1f} s)."
        )
    if not MIN_SPAN_SECONDS <= end - start <= MAX_SPAN_SECONDS:
        raise InvalidParameterError(
            f"The passage is {end - start:.2f} s long: rewrite between {MIN_SPAN_SECONDS:g} and "
            f"{MAX_SPAN_SECONDS:g} s at once."
        )
    first = float(piece.notes[:, ONSET].min())
    if start - first < MIN_BEFORE_SECONDS:
        raise InvalidParameterError(
            f"Only {max(start - first, 0):.1f} s of music comes before {start:g} s: a passage "
            f"carries on from at least {MIN_BEFORE_SECONDS:g} s of it."
        )
    return start, end


def rewrite_passage(
    model: MusicTransformer,
    tok: PerformanceTokenizer,
    piece: Performance,
    start: float,
    end: float,
    config: SamplingConfig,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    decoder: Decoder | None = None,
    judge_dtype: torch.dtype = torch.float32,
    cue: bool = False,
) -> Rewrite:
    """config.num_candidates passages for [start, end) of `piece` (config.seconds is the
    span's: it is not read), ranked; the original passage judged the same way. `judge_dtype`:
    the precision of a PyTorch judging pass (bfloat16 autocast is ~3x faster where the CPU has
    it); an engine decoder (the CPU's ONNX Runtime one) judges in its own weights, as it sampled.
    `cue`: the model was trained to read the music after first (data.with_cue): the passages
    are written after the judged music after the span as a cue (the judging is the same)."""
    start, end = check_span(piece, start, end)
    notes = piece.notes
    prompt, origin = music_before(tok, piece, start)
    before = make_performance(notes[notes[:, ONSET] < start], piece.warnings)
    after = make_performance(notes[notes[:, ONSET] >= end])
    judged = judging_notes(tok, after, end, model.config.block_size // AFTER_SHARE)
    written_after = prompt
    if cue and len(judged):
        room = int(model.config.block_size * PROMPT_FILL) - (config.composer is not None)
        written_after = cue_prompt(tok, prompt, judged, room)
    samples = sample(
        model,
        tok,
        written_after,
        replace(config, seconds=end - origin),
        on_progress,
        should_stop,
        decoder,
        not_before=start - origin,
        open_end=True,
    )
    samples = [_until(tok, s, end - origin) for s in samples]
    span = make_performance(notes[(notes[:, ONSET] >= start) & (notes[:, ONSET] < end)])
    original_ids = tok.encode(_moved(span, -origin))
    passages = [s.ids for s in samples] + [original_ids]
    scores = after_nll(model, tok, prompt, origin, passages, judged, judge_dtype, decoder)
    level = samples[0].prompt_log_likelihood_per_note if samples else None

    def passage(row, ids, passage_notes, score, log_likelihood) -> Passage:
        whole = merge(merge(before, passage_notes, 0.0), after, 0.0)
        per_note = None
        if log_likelihood is not None and len(passage_notes):
            per_note = log_likelihood / len(passage_notes)
        return Passage(row, ids, passage_notes, whole, score, per_note, level)

    written = [
        passage(row, s.ids, _inside(continuation_notes(tok, origin, s.ids), start, end), score,
                s.log_likelihood)
        for row, (s, score) in enumerate(zip(samples, scores))
    ]  # fmt: skip
    original = passage(-1, original_ids, span, scores[-1], None)
    result = Rewrite(start, end, [], original, len(judged))
    return replace(result, passages=sorted(written, key=result.rank))


def music_before(tok: PerformanceTokenizer, piece: Performance, start: float):
    """(the tokens of the PROMPT_SECONDS before `start`, where the last of them is: the
    passage's origin in the piece's time, on the tokenizer's grid)."""
    window_start = max(0.0, start - PROMPT_SECONDS)
    onsets = piece.notes[:, ONSET]
    if not ((onsets >= window_start) & (onsets < start)).any():
        raise InvalidParameterError(
            f"No note starts in the {PROMPT_SECONDS:g} s before {start:g} s: a passage carries "
            "on from the music just before it."
        )
    prompt = tok.encode(prompt_window(piece, window_start, start))
    return prompt, window_start + continuation_origin(tok, prompt)


def cue_prompt(
    tok: PerformanceTokenizer, prompt: np.ndarray, judged: Performance, room: int
) -> np.ndarray:
    """`BOS cue EOS prompt` as data.with_cue lays out a training window: the judged music after
    the span (from its first onset) read first, then the music before, trimmed from the left to
    fit `room` tokens in all."""
    cue = tok.encode(_moved(judged, -float(judged.notes[:, ONSET].min())))
    kept = prompt[-(room - len(cue) - 2) :]
    return np.concatenate([[tok.bos_id], cue, [tok.eos_id], kept]).astype(np.int64)


def judging_notes(
    tok: PerformanceTokenizer, after: Performance, end: float, max_tokens: int
) -> Performance:
    """The first AFTER_SECONDS of the music after the span, as many notes as fit in
    `max_tokens` tokens (with a few to spare for the shift that leads into them)."""
    notes = after.notes[after.notes[:, ONSET] < end + AFTER_SECONDS]
    if not len(notes):
        return make_performance(notes)
    ids = tok.encode(_moved(make_performance(notes), -float(notes[0, ONSET])))
    pitch_at = np.flatnonzero(tok.kind[ids] == NOTE_PITCH)
    fits = int(np.sum(pitch_at + 3 <= max_tokens - 4))  # notes whose tokens fit
    return make_performance(notes[: max(fits, 1)])


def after_nll(
    model: MusicTransformer,
    tok: PerformanceTokenizer,
    prompt: np.ndarray,
    origin: float,
    passages: list[np.ndarray],
    judged: Performance,
    dtype: torch.dtype = torch.float32,
    decoder: Decoder | None = None,
) -> list[float | None]:
    """For each passage's tokens (from `origin`, the prompt's last onset, in the piece's time):
    the NLL per note of the `judged` notes after them, given prompt + passage (None without
    judged notes). With a `decoder` that has an engine's prefill and extend_each, the judging
    pass runs there (as the passages were sampled); else in PyTorch under `dtype`."""
    if not len(judged):
        return [None] * len(passages)
    suffixes, scored_from = [], []
    for ids in passages:
        now = origin + tok.seconds_of(ids)  # where the passage's tokens leave the time
        after_ids = tok.encode(_moved(judged, -now))
        suffixes.append(np.concatenate([ids, after_ids]).astype(np.int64))
        scored_from.append(len(ids))
    totals = score_suffixes(model, prompt, suffixes, scored_from, tok.pad_id, dtype, decoder)
    return [float(t) / len(judged) for t in totals]


@torch.inference_mode()
def score_suffixes(
    model: MusicTransformer,
    prefix: np.ndarray,
    suffixes: list[np.ndarray],
    scored_from: list[int],
    pad_id: int,
    dtype: torch.dtype = torch.float32,
    decoder: Decoder | None = None,
) -> np.ndarray:
    """The summed NLL of suffixes[i][scored_from[i]:] given prefix + suffixes[i][:j], teacher
    forced: the prefix prefilled once, every suffix then run after it (in one batch on a cache
    copied per row, or with `decoder`'s extend_each, row by row after the one cache). What does
    not fit the model's window is dropped from the left: first the prefix, then the suffixes'
    beginnings. `dtype`: the autocast precision of a PyTorch pass."""
    engine = decoder if decoder is not None and decoder.extend_each is not None else None
    with devices.autocast(model.embed.weight.device, dtype):
        return _score_suffixes(model, prefix, suffixes, scored_from, pad_id, engine)


def _score_suffixes(model, prefix, suffixes, scored_from, pad_id, engine) -> np.ndarray:
    dev, block = model.embed.weight.device, model.config.block_size
    keep = min(max(len(s) for s in suffixes), block)
    rows = [s[-keep:] for s in suffixes]
    first = [max(f - (len(s) - len(r)), 0) for f, s, r in zip(scored_from, suffixes, rows)]
    P = min(len(prefix), block - keep)
    cache = model.new_cache(1)
    x = torch.full((len(rows), keep), pad_id, dtype=torch.long, device=dev)
    for i, r in enumerate(rows):
        x[i, : len(r)] = torch.as_tensor(r, device=dev)
    if P:
        head = torch.as_tensor(prefix[-P:], device=dev)[None]
        if engine is not None:
            last = engine.prefill(head, cache)  # (1, V): predicts each suffix's first token
            logits = engine.extend_each(x, P, cache)  # (B, L, V)
        else:
            last = model.prefill(head, cache)
            logits = model.extend(x, P, cache.repeat(len(rows)))
        logits = torch.cat([last[:, None].expand(len(rows), 1, -1), logits[:, :-1]], dim=1)
    else:  # no context for a suffix's first token: it is not scored
        first = [max(f, 1) for f in first]
        out, _ = model(x)
        logits = torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], dim=1)
    log_p = logits.float().log_softmax(dim=-1).gather(2, x[:, :, None])[:, :, 0].cpu().numpy()
    return np.array([-log_p[i, f : len(r)].sum() for i, (f, r) in enumerate(zip(first, rows))])


def _until(tok: PerformanceTokenizer, s: Sample, seconds: float) -> Sample:
    """A passage without the time shift that reached past its span (which said: the next note
    comes after it); the music after the span then starts from its last onset."""
    inside = np.cumsum(tok.shift_seconds[s.ids]) <= seconds + 1e-6
    end = len(s.ids) if inside.all() else int(np.argmin(inside))
    return replace(s, ids=s.ids[:end], token_log_p=s.token_log_p[:end])


def _moved(perf: Performance, seconds: float) -> Performance:
    notes = perf.notes.copy()
    notes[:, :2] += seconds
    return make_performance(notes)


def _inside(passage: Performance, start: float, end: float) -> Performance:
    """The passage's notes with their onsets in [start, end): its shifts put them there on the
    tokenizer's grid, and this keeps them there through the ticks they decode to (a rounding
    of a millisecond or so)."""
    notes = passage.notes[passage.notes[:, ONSET] < end].copy()
    notes[:, ONSET] = np.maximum(notes[:, ONSET], start)
    return make_performance(notes)
