"""Sampling from the two-level model: one trunk step per note, its fields written in order.

The promises are the token sampler's (generate.sample_tokens), kept per field: the time shift
is masked so that a continuation ends within one grid step of its length; no pitch is struck
twice at one onset, nor more than MAX_NOTES_PER_ONSET notes; temperature, top-k and top-p apply
to each field; candidates share one prefill; the window slides as in the token sampler; the
prompt's own level comes from the same prefill. A sample is returned as flat tokens
(events.to_tokens), so everything after sampling is the same for both kinds of model.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from .events import (
    DURATION_FIELD,
    FIELDS,
    PITCH_FIELD,
    SHIFT_FIELD,
    VELOCITY_FIELD,
    to_events,
    to_tokens,
    token_count,
)
from .generate import (
    MAX_NOTES_PER_ONSET,
    PROMPT_FILL,
    SLIDE_KEEP,
    Decoder,
    Progress,
    Sample,
    SamplingConfig,
    _struck_at_last_onset,
    _Tables,
    filter_logits,
    torch_decoder,
)
from .model import EventTransformer
from .tokenizer import NOTE_DURATION, NOTE_VELOCITY, PerformanceTokenizer


@torch.inference_mode()
def sample_events(
    model: EventTransformer,
    tok: PerformanceTokenizer,
    prompt_ids: np.ndarray,
    config: SamplingConfig,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    decoder: Decoder | None = None,
) -> list[Sample]:
    """A Sample per candidate, as sample_tokens gives, from an event model."""
    device = model.embed.weight.device
    block = model.config.block_size
    first, keep = int(block * PROMPT_FILL), int(block * SLIDE_KEEP)  # see the token sampler
    B, pad = config.num_candidates, tok.pad_id
    t = _Tables(tok, device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    decoder = decoder or torch_decoder(model)
    # What each field may be while sampling (no BOS, EOS or style token is ever written).
    pad_only = torch.zeros(tok.vocab_size, dtype=torch.bool, device=device)
    pad_only[pad] = True
    field_ok = {
        SHIFT_FIELD: t.is_shift | pad_only,
        PITCH_FIELD: t.is_pitch | pad_only,  # PAD: an event without a note (a silence)
        VELOCITY_FIELD: torch.as_tensor(tok.kind == NOTE_VELOCITY, device=device),
        DURATION_FIELD: torch.as_tensor(tok.kind == NOTE_DURATION, device=device),
    }

    composer = tok.composer_id(config.composer)
    prompt_tokens = np.asarray(prompt_ids, dtype=np.int64)
    prompt = torch.as_tensor(to_events(tok, prompt_tokens), device=device)
    P, max_events = len(prompt), config.max_new_tokens  # a note is at least one event
    history = torch.empty(B, P + max_events, FIELDS, dtype=torch.long, device=device)
    history[:, :P] = prompt
    length = P
    prefix = torch.as_tensor(
        to_events(tok, np.array([composer if composer is not None else tok.bos_id])),
        device=device,
    )[None].expand(B, -1, -1)

    def context(n: int) -> torch.Tensor:
        """[composer] + the last n events (BOS when there is nothing yet)."""
        recent = history[:, max(0, length - n) : length]
        if composer is None and recent.size(1):
            return recent
        return torch.cat([prefix, recent], dim=1)

    elapsed = torch.zeros(B, device=device, dtype=torch.float64)
    struck = torch.zeros(B, tok.vocab_size, dtype=torch.bool, device=device)
    struck[:, torch.as_tensor(_struck_at_last_onset(tok, prompt_tokens), device=device)] = True
    # After an event without a note the next one must move time (else two readings of one
    # token sequence); the prompt's last event decides where sampling starts.
    after_silence = torch.full((B,), bool(P and prompt[-1, PITCH_FIELD] == pad), device=device)
    finished_at = torch.full((B,), max_events, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    log_p = torch.zeros(B, max_events, device=device)
    rows = torch.arange(B, device=device)

    cache = model.new_cache(1, decoder.static_cache)
    x = context(first - (composer is not None))[:1]
    states = model.prefill(x, cache, every_position=True)  # (1, T, C)
    nll, _, notes = model.field_nll(states[:, :-1], x[:, 1:])
    prompt_level = -float(nll.sum()) / int(notes) if int(notes) else None
    h = states[:, -1].expand(B, -1)
    cache = cache.repeat(B)
    position = x.size(1)

    def choose(field: int, before, allowed, counted=None) -> torch.Tensor:
        """Sample one field for every row; its log-probability under the model (unmasked,
        unfiltered: the model's own judgement) joins the take's, in the `counted` rows."""
        raw = model.field_logits(h, before, field, cache, position).float()
        logits = raw.masked_fill(~allowed, float("-inf"))
        logits = filter_logits(logits / config.temperature, config.top_k, config.top_p)
        chosen = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]
        judged = raw.log_softmax(dim=-1).gather(1, chosen[:, None])[:, 0]
        log_p[:, generated] += judged if counted is None else judged * counted
        return chosen

    start = time.perf_counter()
    generated = 0
    while generated < max_events:
        remaining = config.seconds - elapsed + 1e-6
        full = struck.sum(dim=1) >= MAX_NOTES_PER_ONSET
        shift_ok = field_ok[SHIFT_FIELD] & (t.shift[None, :] <= remaining[:, None])
        shift_ok[:, pad] = ~(after_silence | full)  # a note at the same onset, where it fits
        shift_ok |= done[:, None] & field_ok[SHIFT_FIELD]  # ended rows run on (cut below)
        shift = choose(SHIFT_FIELD, torch.zeros_like(h), shift_ok)
        moved = shift != pad
        elapsed += t.shift[shift]
        struck &= ~moved[:, None]  # a time shift starts a new onset
        # Done when not even the smallest shift fits in what is left: within one grid step.
        # A row that is done here ends on this shift, without a note, as the token sampler.
        done_now = elapsed > config.seconds - t.min_shift + 1e-6
        before = model.embed_field(shift)
        pitch_ok = field_ok[PITCH_FIELD] & ~struck
        pitch_ok[:, pad] = moved  # an event without a note needs a shift
        ending = done_now & ~done
        pitch_ok[ending] = pad_only  # the last event: the shift alone (its "no note" is not
        pitch = choose(PITCH_FIELD, before, pitch_ok, ~ending)  # the model's: not counted)
        note = pitch != pad
        velocity = duration = torch.full_like(pitch, pad)
        if bool(note.any()):
            before = before + model.embed_field(pitch)
            velocity = choose(VELOCITY_FIELD, before, field_ok[VELOCITY_FIELD], note)
            before = before + model.embed_field(velocity)
            duration = choose(DURATION_FIELD, before, field_ok[DURATION_FIELD], note)
            velocity = torch.where(note, velocity, pad)  # rows without a note: none
            duration = torch.where(note, duration, pad)
        event = torch.stack([shift, pitch, velocity, duration], dim=1)  # (B, F)
        history[:, length] = event
        length += 1
        generated += 1
        struck[rows, pitch] |= note
        after_silence = ~note
        done = done_now
        finished_at = torch.where(done & (finished_at > generated), generated, finished_at)
        finished = generated == max_events or bool(done.all())
        if on_progress is not None and (generated % 8 == 0 or finished):
            rate = generated * B / max(time.perf_counter() - start, 1e-9)
            end = P + min(int(finished_at[0]), generated)  # (an ended row runs on: cut)
            events = history[0, P:end].cpu().numpy()
            first = Sample(
                to_tokens(tok, events),
                per_token(tok, events, log_p[0, : end - P].cpu().numpy()),
                prompt_level,
            )
            on_progress(Progress(float(elapsed.min()), config.seconds, generated, rate, first))
        if finished or (should_stop is not None and should_stop()):
            break
        if position == block:  # slide the window: re-prefill the recent events
            x = context(keep - (composer is not None))
            h, position = model.prefill(x, cache), x.size(1)
        else:
            h = decoder.step(event[:, None, :], torch.tensor([position], device=device), cache)
            position += 1

    events = history[:, P:length].cpu().numpy()
    log_p = log_p.cpu().numpy()
    ends = finished_at.clamp(max=generated).tolist()
    return [
        Sample(
            to_tokens(tok, events[b, : ends[b]]),
            per_token(tok, events[b, : ends[b]], log_p[b, : ends[b]]),
            prompt_level,
        )
        for b in range(B)
    ]


def per_token(tok: PerformanceTokenizer, events: np.ndarray, log_p: np.ndarray) -> np.ndarray:
    """Each event's log-probability on the first of the tokens it writes (to_tokens' order:
    its shift, if any, then its note's three tokens, if any), zero on the others."""
    counts = token_count(tok, events)
    out = np.zeros(int(counts.sum()), dtype=log_p.dtype)
    firsts = np.cumsum(counts) - counts
    out[firsts[counts > 0]] = log_p[counts > 0]
    return out
