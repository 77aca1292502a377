"""The two-level model: the event view of the tokens, its loss, its cache, and its sampler's
promises (the token sampler's, checked the same way). A tiny random-weight model: machinery only.
"""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_generate import assert_ends_cleanly

from musicgen.checkpoint import CONFIG_FILE, load_checkpoint, save_checkpoint
from musicgen.events import PITCH_FIELD, to_events, to_tokens, token_count
from musicgen.generate import SamplingConfig, continue_performance, sample
from musicgen.midi import read_midi
from musicgen.model import IGNORE, build_model
from musicgen.tokenizer import NOTE_PITCH


def test_tokens_to_events_and_back_is_the_identity(tokenizer, midi_files):
    for path in midi_files:
        ids = tokenizer.encode(read_midi(path))
        events = to_events(tokenizer, ids)
        assert np.array_equal(to_tokens(tokenizer, events), ids)
        notes = int((tokenizer.kind[ids] == NOTE_PITCH).sum())
        assert int((events[:, PITCH_FIELD] != tokenizer.pad_id).sum()) == notes
        assert len(events) <= 1.1 * notes  # one step per note, give or take a long silence
        assert token_count(tokenizer, events).sum() == len(ids)
    bos, eos = tokenizer.bos_id, tokenizer.eos_id
    framed = np.concatenate([[bos], ids, [eos]])
    assert np.array_equal(to_tokens(tokenizer, to_events(tokenizer, framed)), framed)
    assert np.array_equal(to_tokens(tokenizer, to_events(tokenizer, ids[:-1])), ids[:-3])


def test_the_loss_is_the_fields_nll_per_token_and_the_cache_agrees(event_model, midi_files):
    model, tok = event_model
    events = torch.as_tensor(to_events(tok, tok.encode(read_midi(midi_files[0])))[:41])
    x, y = events[None, :-1], events[None, 1:]
    h, loss = model(x, y)
    # the same by hand: each field's log-probability after the fields before it, step by step
    cache = model.new_cache(1)
    state = model.prefill(x[:, :1], cache)
    total = 0.0
    for i in range(y.size(1)):
        before = torch.zeros_like(state)
        for field in range(4):
            target = y[0, i, field]
            if field >= 2 and y[0, i, PITCH_FIELD] == tok.pad_id:
                break  # no note: no velocity or duration
            log_p = model.field_logits(state, before, field, cache, i + 1)
            log_p = log_p.log_softmax(-1)[0, target]
            total -= float(log_p)
            before = before + model.embed_field(target[None])
        if i + 1 < y.size(1):
            state = model.decode_step(x[:, i + 1 : i + 2], torch.tensor([i + 1]), cache)
            assert torch.allclose(state, h[:, i + 1], atol=1e-5)  # cached = uncached
    tokens = int(token_count(tok, y.numpy()).sum())
    assert float(loss) == pytest.approx(total / tokens, rel=1e-4)


def test_sampling_keeps_the_token_samplers_promises(event_model, midi_files):
    model, tok = event_model
    for seed in range(8):
        prompt = tok.encode(read_midi(midi_files[seed % len(midi_files)]))[-40:]
        config = SamplingConfig(seconds=[3.0, 7.3, 12.5][seed % 3], seed=seed, num_candidates=4)
        samples = sample(model, tok, prompt, config)
        assert_ends_cleanly(tok, prompt, samples, config)
        for s in samples:  # every token decodes; no pitch struck twice at one onset
            assert np.array_equal(tok.valid_ids(s.ids), s.ids)
            onset = np.cumsum(tok.shift_seconds[s.ids] > 0)
            is_pitch = tok.kind[s.ids] == NOTE_PITCH
            pairs = list(zip(onset[is_pitch], s.ids[is_pitch]))
            assert len(pairs) == len(set(pairs))
    prompt = tok.encode(read_midi(midi_files[0]))[:40]
    run = lambda seed: sample(model, tok, prompt, SamplingConfig(seconds=5, seed=seed))[0].ids  # noqa: E731
    assert np.array_equal(run(1), run(1)) and not np.array_equal(run(1), run(2))


def test_the_window_slides_and_the_judgement_is_the_models(event_model, midi_files):
    model, tok = event_model  # block_size 48 events: a minute of music slides the window
    prompt = tok.encode(read_midi(midi_files[3]))
    assert len(to_events(tok, prompt)) > model.config.block_size
    ids = sample(model, tok, prompt, SamplingConfig(seconds=60, seed=0))[0].ids
    assert 60 - 0.01 < tok.seconds_of(ids) <= 60 + 1e-6
    # inside one window: the take's log-likelihood is the teacher-forced one
    short = to_tokens(tok, to_events(tok, tok.encode(read_midi(midi_files[0]))[:60]))
    steps = iter(range(10_000))
    take = sample(
        model, tok, short, SamplingConfig(seconds=60, seed=2), should_stop=lambda: next(steps) >= 9
    )[0]
    events = torch.as_tensor(to_events(tok, np.concatenate([short, take.ids])))
    P = len(to_events(tok, short))
    h, _ = model(events[None, :-1])
    targets = events[None, 1:].clone()
    targets[:, : P - 1] = IGNORE  # the take's events only
    nll, _, notes = model.field_nll(h, targets)
    assert take.log_likelihood == pytest.approx(-float(nll.sum()), rel=1e-4)
    nll, _, notes = model.field_nll(h[:, : P - 1], events[None, 1:P])
    assert take.prompt_log_likelihood_per_note == pytest.approx(
        -float(nll.sum()) / int(notes), rel=1e-4
    )


def test_an_event_checkpoint_loads_and_continues_a_performance(event_model, tmp_path, midi_files):
    model, tok = event_model
    save_checkpoint(tmp_path, model, tok, {"note": "random weights"})
    loaded, tok2, meta = load_checkpoint(tmp_path)
    assert loaded.config.representation == "events" and meta["note"] == "random weights"
    results = continue_performance(
        loaded, tok2, read_midi(midi_files[1]), SamplingConfig(seconds=4, seed=3)
    )
    assert 4.0 - 0.01 < results[0].seconds <= 4.0 + 1e-6 and len(results[0].added)


def test_a_checkpoint_saved_before_the_decoder_choice_loads_with_its_mlp(
    tiny_event_model, tokenizer, tmp_path
):
    config = replace(tiny_event_model.config, field_decoder="mlp")
    model = build_model(config, tokenizer.pad_id)
    save_checkpoint(tmp_path, model, tokenizer)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    del config["model"]["field_decoder"]  # as saved before the choice existed
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    loaded, _, _ = load_checkpoint(tmp_path)
    assert loaded.config.field_decoder == "mlp"
    for name, weight in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], weight)
