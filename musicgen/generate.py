"""Sampling: continue a prompt with temperature / top-k / top-p, N candidates in one batch.

Every step masks the logits with the tokenizer's grammar (a note is Pitch Velocity Duration), so
every output decodes, and masks time shifts that would run past the requested length, so a
continuation lasts what was asked. The KV cache is created here, per call; when it fills, the
window slides: the last half window is prefilled again (rotary positions make that exact for
everything inside the new window).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .decoders import Decoder, torch_decoder
from .errors import InvalidParameterError, check_number
from .midi import OFFSET, ONSET, Performance, make_performance, merge
from .model import MusicTransformer
from .tokenizer import EXPECT_ONSET, NOTE_PITCH, PerformanceTokenizer

log = logging.getLogger(__name__)

MAX_CONTINUATION_SECONDS = 120.0  # the most music one request adds
MAX_CANDIDATES = 4  # what the studio offers at once
MAX_BATCH = 16  # candidates one sampling run takes (the GPU bench measures 16)
# The token cap of a request, a safety bound that music never reaches: above the densest stretch
# of MAESTRO's train split at every length (3 s: 686 tokens, 10 s: 1,618, 60 s: 6,826;
# `benchmarks/maestro_density.py`).
MAX_TOKENS_PER_SECOND, TOKEN_ALLOWANCE = 120, 600
# How much of the model's window the prompt fills, and how much is kept when the window is
# full and slides (prefilled again).
PROMPT_FILL, SLIDE_KEEP = 3 / 4, 1 / 2
# The densest onset of MAESTRO's train split (10 ms grid): 10 notes
# (`benchmarks/maestro_density.py`); generation never strikes more at one onset.
MAX_NOTES_PER_ONSET = 10


@dataclass(frozen=True)
class SamplingConfig:
    seconds: float = 20.0  # of music to add
    temperature: float = 1.0
    top_k: int = 0  # 0: off
    # 1.0: off. Off by default, measured: cutting the tail at 0.95 made every take more
    # predictable than real music, and it showed — fewer notes held (polyphony -27% against
    # -8% untruncated for maestro-base), more looping, maestro-small's drift into dense, loud
    # staccato (benchmarks/continuation_stats.py, take_ranking.py; the model cards).
    top_p: float = 1.0
    seed: int = 0
    num_candidates: int = 1
    composer: str | None = None  # a composer token of the checkpoint, or None

    def __post_init__(self):
        seconds = check_number("seconds", self.seconds)
        if not 0.5 <= seconds <= MAX_CONTINUATION_SECONDS:
            raise InvalidParameterError(
                f"seconds must be between 0.5 and {MAX_CONTINUATION_SECONDS:.0f}."
            )
        temperature = check_number("temperature", self.temperature)
        if not 0.05 <= temperature <= 2.0:
            raise InvalidParameterError("temperature must be between 0.05 and 2.")
        top_k = check_number("top_k", self.top_k, int)
        if not 0 <= top_k <= 10_000:
            raise InvalidParameterError("top_k must be between 0 (off) and 10000.")
        top_p = check_number("top_p", self.top_p)
        if not 0.0 < top_p <= 1.0:
            raise InvalidParameterError("top_p must be in (0, 1] (1 turns it off).")
        seed = check_number("seed", self.seed, int)
        if not 0 <= seed < 2**63:
            raise InvalidParameterError("seed must be a non-negative integer.")
        candidates = check_number("num_candidates", self.num_candidates, int)
        if not 1 <= candidates <= MAX_BATCH:
            raise InvalidParameterError(f"num_candidates must be between 1 and {MAX_BATCH}.")
        if self.composer is not None and not isinstance(self.composer, str):
            raise InvalidParameterError("composer must be a string.")
        for name, value in (
            ("seconds", seconds),
            ("temperature", temperature),
            ("top_k", top_k),
            ("top_p", top_p),
            ("seed", seed),
            ("num_candidates", candidates),
        ):
            object.__setattr__(self, name, value)  # normalised types (e.g. numpy -> python)

    @property
    def max_new_tokens(self) -> int:
        return int(self.seconds * MAX_TOKENS_PER_SECOND) + TOKEN_ALLOWANCE


@dataclass(frozen=True)
class Progress:
    seconds: float  # of music generated so far (slowest candidate)
    target_seconds: float
    tokens: int  # generated per candidate
    tokens_per_second: float  # all candidates together
    # The first candidate so far: the take the studio plays while the rest is written
    # (everything before its last onset is settled).
    first: Sample


def filter_logits(logits: np.ndarray, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Set to -inf every logit outside the top-k, then outside the smallest set whose
    probability reaches top_p. logits: (B, V)."""
    if top_k and top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k:].min(axis=-1, keepdims=True)
        logits = np.where(logits < kth, -np.inf, logits)
    if top_p < 1.0:
        order = np.argsort(-logits, axis=-1, kind="stable")
        probs = softmax(np.take_along_axis(logits, order, axis=-1))
        before = np.cumsum(probs, axis=-1) - probs  # mass of strictly more likely tokens
        drop = np.zeros(logits.shape, dtype=bool)
        # (the most likely token stays; 1e-9: a set that reaches p up to rounding reaches it)
        np.put_along_axis(drop, order, before >= top_p - 1e-9, axis=-1)
        logits = np.where(drop, -np.inf, logits)
    return logits


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax_of(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """log softmax(x)[b, ids[b]] for each row b."""
    top = x.max(axis=-1)
    total = np.log(np.exp(x - top[:, None]).sum(axis=-1)) + top
    return x[np.arange(len(x)), ids] - total


def draw(logits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One token id per row (B, V), with probability softmax(logits): one uniform number per
    row against the cumulative weights (inverse transform sampling)."""
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    cumulative = np.cumsum(weights, axis=-1)
    u = rng.random(len(logits)) * cumulative[:, -1]
    return (cumulative <= u[:, None]).sum(axis=-1)  # the first id whose cumulative exceeds u


class _Tables:
    """The tokenizer's tables the sampler reads every token."""

    def __init__(self, tok: PerformanceTokenizer):
        self.allowed = tok.grammar_allowed  # (3, V): what may follow in each grammar state
        self.next_state = tok.grammar_next  # (V,)
        self.shift = tok.shift_seconds  # (V,)
        self.new_onset = self.shift > 0  # a time shift starts a new onset
        self.is_pitch = tok.kind == NOTE_PITCH
        self.min_shift = float(self.shift[self.new_onset].min())


def _struck_at_last_onset(tok: PerformanceTokenizer, ids: np.ndarray) -> np.ndarray:
    """Pitch ids struck after the last time shift of a sequence (the current onset)."""
    shifts = np.flatnonzero(tok.shift_seconds[ids] > 0)
    tail = ids[shifts[-1] + 1 :] if len(shifts) else ids
    return tail[tok.kind[tail] == NOTE_PITCH]


@dataclass(frozen=True)
class Sample:
    ids: np.ndarray  # the continuation's tokens (prompt not included)
    # the log-probability of each of those tokens under the model (nats, temperature 1,
    # unfiltered)
    token_log_p: np.ndarray
    # The prompt's own level, the same for every candidate: the model's mean log-likelihood per
    # note of the prompt tokens it was given (None without notes). Real music goes on about as
    # surprising as it was; samples come out more predictable (benchmarks/take_ranking.py).
    prompt_log_likelihood_per_note: float | None

    @property
    def log_likelihood(self) -> float:
        return float(self.token_log_p.sum())

    def until(self, tok: PerformanceTokenizer, seconds: float) -> Sample:
        """The notes struck before `seconds` into the continuation (a listener's Stop): the
        tokens up to the first time shift that reaches it."""
        reached = np.cumsum(tok.shift_seconds[self.ids]) >= seconds - 1e-9
        end = int(np.argmax(reached)) if reached.any() else len(self.ids)
        return Sample(self.ids[:end], self.token_log_p[:end], self.prompt_log_likelihood_per_note)


@torch.inference_mode()
def sample(
    model: MusicTransformer,
    tok: PerformanceTokenizer,
    prompt_ids: np.ndarray,
    config: SamplingConfig,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    decoder: Decoder | None = None,
    not_before: float = 0.0,
    open_end: bool = False,
) -> list[Sample]:
    """A Sample (continuation token ids and their log-likelihood) for each candidate.

    Each continuation ends by itself when no time shift fits in what is left of the requested
    length (so within one 10 ms grid step of it, whatever shifts the model picked), and one
    onset never strikes a pitch twice nor more than MAX_NOTES_PER_ONSET notes. No note starts
    before `not_before` seconds after the prompt's last onset (a passage written into a span
    starts inside it). With `open_end`, a time shift may also reach past the length: the model's
    way of saying that the next note comes after it, which ends that candidate there (its last
    token; without it, the shifts that fit are all the model can choose near the end, and a
    passage that must lead into music after it crowds its last second with notes).
    """
    device = model.embed.weight.device
    block = model.config.block_size
    # The prompt fills 3/4 of the window; when the window is full, the last half is prefilled
    # again: each slide costs one prefill per block/2 new tokens and keeps half a window of context.
    first, keep = int(block * PROMPT_FILL), int(block * SLIDE_KEEP)
    B, V = config.num_candidates, tok.vocab_size
    t = _Tables(tok)
    rng = np.random.default_rng(config.seed)
    # The sampler's work per token is a few numpy ops on (B, V) arrays on the host: a dozen
    # microseconds, where the same in PyTorch ops cost a quarter of a millisecond of dispatch
    # (on a GPU too, where each op is a kernel launch); one copy of the logits crosses over.

    prefix = [] if (cid := tok.composer_id(config.composer)) is None else [cid]
    prompt = np.asarray(prompt_ids, dtype=np.int64)
    P, max_tokens = len(prompt), config.max_new_tokens
    history = np.empty((B, P + max_tokens), dtype=np.int64)  # preallocated
    history[:, :P] = prompt
    length = P  # filled part of history
    rows = np.arange(B)
    state = np.full(B, tok.grammar_state(prompt) if P else EXPECT_ONSET)
    elapsed = np.zeros(B)  # music seconds per candidate
    struck = np.zeros((B, V), dtype=bool)  # pitches struck at the current onset
    struck[:, _struck_at_last_onset(tok, prompt)] = True
    notes = struck.sum(axis=1)  # notes struck at the current onset
    finished_at = np.full(B, max_tokens)  # tokens when each one ended
    done = np.zeros(B, dtype=bool)
    log_p = np.zeros((B, max_tokens), dtype=np.float32)  # log-probability of each sampled token
    decoder = decoder or torch_decoder(model)
    prefill = decoder.prefill or model.prefill

    def context(n: int) -> torch.Tensor:
        """[composer] + the last n tokens (BOS when there is nothing yet)."""
        recent = history[:, max(0, length - n) : length]
        if not recent.shape[1] and not prefix:
            recent = np.full((B, 1), tok.bos_id)
        ids = np.concatenate([np.tile(np.asarray(prefix, dtype=np.int64), (B, 1)), recent], 1)
        return torch.as_tensor(ids, device=device)

    # Every candidate starts from the same prompt: prefill it once, then copy the cache per row.
    cache = model.new_cache(1, decoder.static_cache)
    x = context(first - len(prefix))[:1]
    every = prefill(x, cache, every_position=True)[0]  # (T, V)
    logits = every[-1:].expand(B, -1)
    prompt_level = log_likelihood_per_note(
        every[:-1], x[0, 1:], torch.as_tensor(t.is_pitch, device=device)
    )
    cache = cache.repeat(B)
    position = x.size(1)  # the cache slot of the next token
    start = time.perf_counter()
    generated = 0
    while generated < max_tokens:
        raw = logits.float().cpu().numpy()  # (B, V)
        allowed = t.allowed[state]  # the grammar
        if not open_end:  # no shift past the requested length
            allowed &= t.shift <= (config.seconds + 1e-6 - elapsed)[:, None]
        allowed &= ~struck  # no pitch twice at one onset
        if (full := notes >= MAX_NOTES_PER_ONSET).any():  # no pile of notes
            allowed[full] &= ~t.is_pitch
        if not_before and (early := elapsed < not_before - 1e-6).any():
            allowed[early] &= ~t.is_pitch  # only time shifts until the span begins
        if done.any():  # ended rows run on until all end (cut below)
            allowed[done] = t.allowed[state[done]]
        masked = np.where(allowed, raw, -np.inf)
        if config.temperature != 1.0:
            masked /= config.temperature
        next_id = draw(filter_logits(masked, config.top_k, config.top_p), rng)
        # The model's own judgement of the choice: its unmasked, unfiltered probability.
        log_p[:, generated] = log_softmax_of(raw, next_id)

        history[:, length] = next_id
        length += 1
        generated += 1
        state = t.next_state[next_id]
        elapsed += t.shift[next_id]
        onset = t.new_onset[next_id]
        struck[onset], notes[onset] = False, 0
        pitch = t.is_pitch[next_id]
        struck[rows[pitch], next_id[pitch]] = True
        notes += pitch
        # Done when not even the smallest shift fits in what is left: within one grid step.
        done = elapsed > config.seconds - t.min_shift + 1e-6
        finished_at[done & (finished_at > generated)] = generated
        finished = generated == max_tokens or bool(done.all())
        if on_progress is not None and (generated % 16 == 0 or finished):
            rate = generated * B / max(time.perf_counter() - start, 1e-9)
            end = P + min(int(finished_at[0]), generated)  # (an ended row runs on: cut)
            first = Sample(history[0, P:end].copy(), log_p[0, : end - P].copy(), prompt_level)
            on_progress(Progress(float(elapsed.min()), config.seconds, generated, rate, first))
        if finished or (should_stop is not None and should_stop()):
            break
        if position == block:  # slide the window: re-prefill the recent tokens
            x = context(keep - len(prefix))
            logits, position = prefill(x, cache), x.size(1)
        else:
            idx = torch.as_tensor(next_id[:, None], device=device)
            logits = decoder.step(idx, torch.tensor([position], device=device), cache)
            position += 1

    ends = np.minimum(finished_at, generated)
    return [
        Sample(history[b, P : P + ends[b]].copy(), log_p[b, : ends[b]].copy(), prompt_level)
        for b in range(B)
    ]


def log_likelihood_per_note(logits, ids, is_pitch) -> float | None:
    """Mean log-probability per note of `ids` (T,) given the logits (T, V) that predicted them."""
    notes = int(is_pitch[ids].sum())
    if not notes:
        return None
    return float(logits.float().log_softmax(dim=-1).gather(1, ids[:, None]).sum()) / notes


@dataclass(frozen=True)
class Continuation:
    prompt: Performance
    added: Performance  # the new notes, times relative to the start of the prompt
    combined: Performance
    tokens: int
    seconds: float  # of music added (the time its shifts cover)
    log_likelihood_per_note: float | None  # the model's mean log-probability per added note
    prompt_log_likelihood_per_note: float | None  # the same of the prompt (see Sample)

    @property
    def distance_from_prompt(self) -> float | None:
        """How far the take's log-likelihood per note is from the prompt's, in nats: the model's
        judgement of a take, smaller is better. Measured on MAESTRO's test split, real music goes
        on about as surprising as its prompt, while the takes the model finds most likely are
        the ones that loop (benchmarks/take_ranking.py): "most likely first" picks worse takes
        than chance, "closest to the prompt first" better ones."""
        if self.log_likelihood_per_note is None or self.prompt_log_likelihood_per_note is None:
            return None
        return abs(self.log_likelihood_per_note - self.prompt_log_likelihood_per_note)


def continue_performance(
    model: MusicTransformer,
    tok: PerformanceTokenizer,
    prompt: Performance,
    config: SamplingConfig,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    decoder: Decoder | None = None,
    keep_until: Callable[[], float | None] | None = None,
) -> list[Continuation]:
    """One Continuation per candidate: the prompt as given, the new notes, and both together.
    `keep_until`, asked once sampling ends, may cut the takes at a time (seconds from the
    prompt's start: what a listener had heard when they pressed Stop); None keeps them whole."""
    prompt_ids = tok.encode(prompt)
    origin = continuation_origin(tok, prompt_ids)
    samples = sample(model, tok, prompt_ids, config, on_progress, should_stop, decoder)
    cut = keep_until() if keep_until is not None else None
    return [make_continuation(tok, prompt, origin, s, cut) for s in samples]


def continuation_origin(tok: PerformanceTokenizer, prompt_ids: np.ndarray) -> float:
    """Where continuation tokens start: the prompt's last onset on the tokenizer's grid."""
    return tok.seconds_of(prompt_ids)


def continuation_notes(tok: PerformanceTokenizer, origin: float, ids: np.ndarray) -> Performance:
    """The notes of continuation tokens, in the prompt's time."""
    return merge(Performance(np.zeros((0, 4))), tok.decode(ids), origin)


def make_continuation(
    tok: PerformanceTokenizer,
    prompt: Performance,
    origin: float,
    s: Sample,
    cut: float | None = None,
) -> Continuation:
    """A Sample as notes; with `cut` (seconds from the prompt's start), only the notes struck
    before it, each ending by then: nothing after it was heard."""
    if cut is not None:
        s = s.until(tok, cut - origin)
    cont = continuation_notes(tok, origin, s.ids)
    if cut is not None:  # (the ticks notes decode to may round the shifts' sum: cut them too)
        notes = cont.notes[cont.notes[:, ONSET] < cut].copy()
        notes[:, OFFSET] = np.minimum(notes[:, OFFSET], cut)
        cont = make_performance(notes, cont.warnings)
    per_note = s.log_likelihood / len(cont) if len(cont) else None
    return Continuation(
        prompt,
        cont,
        merge(prompt, cont, 0.0),
        len(s.ids),
        tok.seconds_of(s.ids),
        per_note,
        s.prompt_log_likelihood_per_note,
    )
