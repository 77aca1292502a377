import json
import math

import numpy as np
import pytest
import torch

from musicgen.checkpoint import BUNDLED_CHECKPOINTS, REPO_ROOT, load_checkpoint
from musicgen.decoders import Decoder, torch_decoder
from musicgen.errors import InvalidParameterError
from musicgen.generate import (
    MAX_NOTES_PER_ONSET,
    SamplingConfig,
    continue_performance,
    filter_logits,
    sample,
)
from musicgen.midi import ONSET, prompt_window, read_midi
from musicgen.tokenizer import NOTE_PITCH


def test_top_k_keeps_exactly_the_k_largest():
    logits = np.array([[0.1, 3.0, -1.0, 2.0, 0.5, 2.5]])
    kept = np.flatnonzero(np.isfinite(filter_logits(logits, top_k=3))[0]).tolist()
    assert kept == [1, 3, 5]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = np.log([[0.5, 0.05, 0.3, 0.15]])
    kept = lambda p: np.flatnonzero(np.isfinite(filter_logits(logits, top_p=p))[0]).tolist()
    assert kept(0.5) == [0]  # 0.5 alone reaches 0.5
    assert kept(0.6) == [0, 2]
    assert kept(0.8) == [0, 2]  # 0.8 reached exactly by the first two
    assert kept(0.81) == [0, 2, 3]
    assert kept(1.0) == [0, 1, 2, 3]
    assert kept(1e-6) == [0]  # the most likely token always survives


def test_same_seed_same_output_other_seed_other_output(tiny_model, midi_files):
    model, tok = tiny_model
    prompt = tok.encode(read_midi(midi_files[0]))[:40]
    run = lambda seed: sample(model, tok, prompt, SamplingConfig(seconds=5, seed=seed))[0].ids
    a, b, c = run(1), run(1), run(2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_outputs_decode_and_last_the_requested_time(tiny_model, midi_files):
    model, tok = tiny_model
    prompt = read_midi(midi_files[1])
    config = SamplingConfig(seconds=8, seed=3, num_candidates=3, temperature=1.0)
    results = continue_performance(model, tok, prompt, config)
    assert len(results) == 3
    origin = tok.seconds_of(tok.encode(prompt))  # the continuation's time 0
    for r in results:
        assert r.tokens > 0 and 8.0 - 0.01 < r.seconds <= 8.0 + 1e-6
        onsets = r.added.notes[:, ONSET] - origin
        assert (onsets >= -1e-6).all() and (onsets <= r.seconds + 1e-6).all()
        assert len(r.combined) == len(r.prompt) + len(r.added)


def test_generated_ids_always_follow_the_grammar(tiny_model):
    model, tok = tiny_model
    for seed in range(4):
        ids = sample(model, tok, np.zeros(0, int), SamplingConfig(seconds=4, seed=seed, top_p=1.0))[
            0
        ].ids
        usable = tok.valid_ids(ids)
        # everything but (at most) a trailing incomplete note is usable
        assert len(ids) - len(usable) <= 2
        assert np.array_equal(ids[: len(usable)], usable)


def test_requested_length_reached_within_ten_percent(tiny_model, midi_files):
    model, tok = tiny_model
    prompt = tok.encode(read_midi(midi_files[2]))
    for seconds in (3.0, 12.0):
        ids = sample(model, tok, prompt, SamplingConfig(seconds=seconds, seed=0))[0].ids
        assert abs(tok.seconds_of(ids) - seconds) <= 0.1 * seconds


def test_window_slides_past_the_context(tiny_model, midi_files, monkeypatch):
    model, tok = tiny_model  # block_size 64: the cache must slide to go on
    prefills = []
    prefill = model.prefill
    monkeypatch.setattr(
        model,
        "prefill",
        lambda x, cache, **kw: prefills.append(x.size(1)) or prefill(x, cache, **kw),
    )
    prompt = tok.encode(read_midi(midi_files[3]))
    assert len(prompt) > model.config.block_size
    ids = sample(model, tok, prompt, SamplingConfig(seconds=60, seed=0))[0].ids
    assert len(prefills) > 2 and all(n <= model.config.block_size for n in prefills)
    assert 60 - 0.01 < tok.seconds_of(ids) <= 60 + 1e-6  # and it went on to the end


def test_static_and_dynamic_caches_give_the_same_tokens(tiny_model, midi_files):
    model, tok = tiny_model
    prompt = tok.encode(read_midi(midi_files[0]))[:30]
    config = SamplingConfig(seconds=120, seed=5)  # rows differ by ulps: same draws, same tokens
    dynamic = sample(model, tok, prompt, config)[0].ids
    static_cache = Decoder("static", model.decode_step, static_cache=True)
    static = sample(model, tok, prompt, config, decoder=static_cache)[0].ids
    assert len(dynamic) > model.config.block_size  # through a slide of the window
    assert np.array_equal(dynamic, static)


def test_progress_and_stop(tiny_model):
    model, tok = tiny_model
    seen = []
    ids = sample(
        model,
        tok,
        np.zeros(0, int),
        SamplingConfig(seconds=60, seed=0),
        on_progress=seen.append,
        should_stop=lambda: len(seen) >= 2,
    )[0].ids
    assert len(seen) == 2 and seen[-1].tokens == len(ids)
    assert 0 < seen[-1].seconds < 60 and seen[-1].tokens_per_second > 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seconds": 0},
        {"seconds": 1e6},
        {"seconds": math.nan},
        {"seconds": "10"},
        {"temperature": 0},
        {"temperature": math.inf},
        {"temperature": None},
        {"top_k": -1},
        {"top_k": 2.5},
        {"top_p": 0},
        {"top_p": 1.5},
        {"top_p": math.nan},
        {"num_candidates": 0},
        {"num_candidates": 17},
        {"seed": -1},
        {"seed": True},
        {"composer": 3},
    ],
)
def test_bad_parameters_are_rejected(kwargs):
    with pytest.raises(InvalidParameterError):
        SamplingConfig(**kwargs)


def test_numpy_parameters_are_normalised():
    config = SamplingConfig(seconds=np.float32(5), top_k=np.int64(3), seed=np.int64(9))
    assert type(config.top_k) is int and type(config.seconds) is float and config.seed == 9


def assert_ends_cleanly(tok, prompt, ids_per_candidate, config):
    """The pile-up invariants: each continuation ends by itself within one 10 ms grid step of
    its length (never at the token cap), and no onset holds more than MAESTRO's densest."""
    for ids in (s.ids for s in ids_per_candidate):
        assert config.seconds - 0.01 < tok.seconds_of(ids) <= config.seconds + 1e-6
        assert len(ids) < config.max_new_tokens
        assert tok.densest_onset(np.concatenate([prompt, ids])) <= MAX_NOTES_PER_ONSET


def test_random_model_never_piles_up_and_ends_at_its_length(tiny_model, midi_files):
    # A random-weight model picks the coarse shifts above 1 s (off the 10 ms grid) all the time:
    # the case that used to leave < 10 ms to fill and stack notes on one onset until the cap.
    model, tok = tiny_model
    for seed in range(16):
        prompt = tok.encode(read_midi(midi_files[seed % len(midi_files)]))[-40:]
        config = SamplingConfig(seconds=[3.0, 7.3, 12.5][seed % 3], seed=seed, num_candidates=4)
        assert_ends_cleanly(tok, prompt, sample(model, tok, prompt, config), config)


def test_a_pitch_is_struck_once_per_onset(tiny_model):
    model, tok = tiny_model
    for seed in range(8):
        ids = sample(model, tok, np.zeros(0, int), SamplingConfig(seconds=20, seed=seed))[0].ids
        onset = np.cumsum(tok.shift_seconds[ids] > 0)
        is_pitch = tok.kind[ids] == NOTE_PITCH
        pairs = list(zip(onset[is_pitch], ids[is_pitch]))
        assert len(pairs) == len(set(pairs))


@pytest.mark.slow
@pytest.mark.parametrize("directory", BUNDLED_CHECKPOINTS, ids=lambda d: d.name)
def test_bundled_models_end_cleanly_on_the_examples(directory):
    # The Bach example at seed 0 is where the pile-up was first heard.
    model, tok, _ = load_checkpoint(directory)
    examples = sorted((REPO_ROOT / "examples").glob("*.mid"))
    for i, path in enumerate(examples[:: 4 if directory == BUNDLED_CHECKPOINTS[0] else 2]):
        prompt = tok.encode(prompt_window(read_midi(path), None, None))
        config = SamplingConfig(seconds=3.0, seed=i, num_candidates=4)
        assert_ends_cleanly(tok, prompt, sample(model, tok, prompt, config), config)


@pytest.mark.slow
@pytest.mark.parametrize("directory", BUNDLED_CHECKPOINTS, ids=lambda d: d.name)
def test_a_seed_gives_the_notes_it_gave_before(directory):
    """What users hear does not change under a refactoring: a seed's takes are pinned token for
    token (PyTorch's float32 path: its sums differ between CPUs only in the last bits, far
    below what turns a draw)."""
    pinned = json.loads((REPO_ROOT / "tests" / "fixtures" / "pinned-takes.json").read_text())
    model, tok, _ = load_checkpoint(directory)
    window = prompt_window(read_midi(REPO_ROOT / "examples" / "chopin-etude-op-10-no-12.mid"), 0, 8)
    config = SamplingConfig(seconds=3.0, seed=11, num_candidates=2)
    takes = sample(model, tok, tok.encode(window), config, decoder=torch_decoder(model))
    assert [t.ids.tolist() for t in takes] == pinned["takes"][directory.name]


def test_log_likelihood_is_the_models_probability_of_the_continuation(tiny_model, midi_files):
    model, tok = tiny_model
    prompt = tok.encode(read_midi(midi_files[0]))[:20]
    steps = iter(range(10_000))  # stop after 30 tokens: inside the first window
    config = SamplingConfig(seconds=60, seed=2)
    take = sample(model, tok, prompt, config, should_stop=lambda: next(steps) >= 29)[0]
    ids = np.concatenate([prompt, take.ids])[: model.config.block_size]
    n = len(ids) - len(prompt)  # continuation tokens inside one window
    with torch.no_grad():
        logits, _ = model(torch.as_tensor(ids)[None])
    log_p = logits[0, len(prompt) - 1 : -1].log_softmax(-1)
    expected = log_p.gather(1, torch.as_tensor(ids[len(prompt) :])[:, None]).sum()
    assert n == len(take.ids) == 30
    assert take.log_likelihood == pytest.approx(float(expected), rel=1e-4, abs=1e-3)
    # the prompt's own level: its tokens' log-probability per note, from the same forward pass
    scored = torch.as_tensor(prompt[1:])
    prompt_log_p = logits[0, : len(prompt) - 1].log_softmax(-1).gather(1, scored[:, None]).sum()
    notes = int(np.isin(prompt[1:], np.flatnonzero(tok.kind == NOTE_PITCH)).sum())
    assert notes > 0
    assert take.prompt_log_likelihood_per_note == pytest.approx(
        float(prompt_log_p) / notes, rel=1e-4
    )
