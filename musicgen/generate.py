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


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set to -inf every logit outside the top-k, then outside the smallest set whose
    probability reaches top_p. logits: (B, V)."""
    if top_k and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of strictly more likely tokens
        drop_sorted = before >= top_p  # the most likely token is always kept
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


class _Tables:
    """The tokenizer's numpy tables as tensors on the model's device."""

    def __init__(self, tok: PerformanceTokenizer, device):
        self.allowed = torch.as_tensor(tok.grammar_allowed, device=device)  # (3, V)
        self.next_state = torch.as_tensor(tok.grammar_next, device=device)  # (V,)
        self.shift = torch.as_tensor(tok.shift_seconds, device=device, dtype=torch.float64)
        self.is_shift = self.shift > 0
        self.is_pitch = torch.as_tensor(tok.kind == NOTE_PITCH, device=device)
        self.min_shift = float(tok.shift_seconds[tok.shift_seconds > 0].min())


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
    B = config.num_candidates
    t = _Tables(tok, device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    # Checking "all done" reads a value back from the device: on a GPU only every few tokens
    # (the few extra tokens are cut off below), on a CPU it is free.
    check_every = 1 if device.type == "cpu" else 8

    prefix = [] if (cid := tok.composer_id(config.composer)) is None else [cid]
    prompt = np.asarray(prompt_ids, dtype=np.int64)
    P, max_tokens = len(prompt), config.max_new_tokens
    history = torch.empty(B, P + max_tokens, dtype=torch.long, device=device)  # preallocated
    history[:, :P] = torch.as_tensor(prompt, device=device)
    length = P  # filled part of history
    state = torch.full((B,), tok.grammar_state(prompt) if P else EXPECT_ONSET, device=device)
    elapsed = torch.zeros(B, device=device, dtype=torch.float64)  # music seconds per candidate
    struck = torch.zeros(B, tok.vocab_size, dtype=torch.bool, device=device)  # at this onset
    struck[:, torch.as_tensor(_struck_at_last_onset(tok, prompt), device=device)] = True
    finished_at = torch.full((B,), max_tokens, device=device)  # tokens when each one ended
    done = torch.zeros(B, dtype=torch.bool, device=device)
    log_p = torch.zeros(B, max_tokens, device=device)  # log-probability of each sampled token
    prefix_t = torch.tensor(prefix, device=device, dtype=torch.long).repeat(B, 1)
    bos = torch.full((B, 1), tok.bos_id, device=device)
    decoder = decoder or torch_decoder(model)

    def context(n: int) -> torch.Tensor:
        """[composer] + the last n tokens (BOS when there is nothing yet)."""
        recent = history[:, max(0, length - n) : length]
        return torch.cat([prefix_t, recent if recent.size(1) or prefix else bos], dim=1)

    # Every candidate starts from the same prompt: prefill it once, then copy the cache per row.
    cache = model.new_cache(1, decoder.static_cache)
    x = context(first - len(prefix))[:1]
    every = model.prefill(x, cache, every_position=True)[0]  # (T, V)
    logits = every[-1:].expand(B, -1)
    prompt_level = log_likelihood_per_note(every[:-1], x[0, 1:], t.is_pitch)
    cache = cache.repeat(B)
    position = x.size(1)  # the cache slot of the next token
    start = time.perf_counter()
    generated = 0
    while generated < max_tokens:
        allowed = t.allowed[state]  # (B, V) grammar
        remaining = config.seconds - elapsed + 1e-6
        if not open_end:  # no shift past the requested length
            allowed &= t.shift[None, :] <= remaining[:, None]
        full = struck.sum(dim=1, keepdim=True) >= MAX_NOTES_PER_ONSET
        allowed &= ~(struck | (full & t.is_pitch))  # no repeated pitch, no pile of notes
        if not_before:  # only time shifts until the span begins
            allowed &= ~(t.is_pitch[None, :] & (elapsed < not_before - 1e-6)[:, None])
        allowed |= done[:, None] & t.allowed[state]  # ended rows run on until all end (cut below)
        raw = logits.float()
        logits = raw.masked_fill(~allowed, float("-inf"))
        logits = filter_logits(logits / config.temperature, config.top_k, config.top_p)
        next_id = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]
        # The model's own judgement of the choice: its unmasked, unfiltered probability.
        log_p[:, generated] = raw.log_softmax(dim=-1).gather(1, next_id[:, None])[:, 0]

        history[:, length] = next_id
        length += 1
        generated += 1
        state = t.next_state[next_id]
        elapsed += t.shift[next_id]
        struck &= ~t.is_shift[next_id][:, None]  # a time shift starts a new onset
        struck[torch.arange(B, device=device), next_id] |= t.is_pitch[next_id]
        # Done when not even the smallest shift fits in what is left: within one grid step.
        done = elapsed > config.seconds - t.min_shift + 1e-6
        finished_at = torch.where(done & (finished_at > generated), generated, finished_at)
        finished = generated == max_tokens or (generated % check_every == 0 and bool(done.all()))
        if on_progress is not None and (generated % 16 == 0 or finished):
            rate = generated * B / max(time.perf_counter() - start, 1e-9)
            end = P + min(int(finished_at[0]), generated)  # (an ended row runs on: cut)
            first = Sample(
                history[0, P:end].cpu().numpy(), log_p[0, : end - P].cpu().numpy(), prompt_level
            )
            on_progress(Progress(float(elapsed.min()), config.seconds, generated, rate, first))
        if finished or (should_stop is not None and should_stop()):
            break
        if position == block:  # slide the window: re-prefill the recent tokens
            x = context(keep - len(prefix))
            logits, position = model.prefill(x, cache), x.size(1)
        else:
            pos = torch.tensor([position], device=device)
            logits = decoder.step(next_id[:, None], pos, cache)
            position += 1

    continuation = history[:, P:length].cpu().numpy()
    log_p = log_p.cpu().numpy()
    ends = finished_at.clamp(max=generated).tolist()
    return [Sample(continuation[b, : ends[b]], log_p[b, : ends[b]], prompt_level) for b in range(B)]


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
