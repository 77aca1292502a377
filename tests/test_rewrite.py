"""Rewriting a passage: the notes outside the span kept, the passage inside it, the judgement a
teacher-forced computation, every bad span a clear error. Tiny random-weight models on the real
fixture excerpts (the machinery, not the music)."""

import numpy as np
import pytest
import torch

from musicgen.checkpoint import load_checkpoint
from musicgen.data import with_cue
from musicgen.errors import InvalidParameterError
from musicgen.generate import MAX_NOTES_PER_ONSET, PROMPT_FILL, SamplingConfig
from musicgen.midi import OFFSET, ONSET, PITCH, VELOCITY, make_performance, read_midi
from musicgen.model import ModelConfig, MusicTransformer
from musicgen.rewrite import (
    after_nll,
    cue_prompt,
    judging_notes,
    music_before,
    rewrite_passage,
    score_suffixes,
)
from musicgen.tokenizer import NOTE_PITCH, SHIFT


@pytest.fixture(scope="module")
def wide_model(tokenizer):
    """A tiny model whose window holds the music before a span and the passage after it."""
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, block_size=512, n_layer=2, n_head=2, n_embd=32
    )
    return MusicTransformer(config).eval(), tokenizer


@pytest.fixture(scope="module")
def piece(midi_files):
    return read_midi(midi_files[0])


def rewritten(model, tok, piece, start, end, seed=0, candidates=4, cue=False):
    config = SamplingConfig(seed=seed, num_candidates=candidates)
    return rewrite_passage(model, tok, piece, start, end, config, cue=cue)


@pytest.mark.parametrize("cue", [False, True])
@pytest.mark.parametrize("span", [(4.0, 8.0), (3.0, 3.6)])
def test_the_notes_outside_the_span_stay_as_they_were(wide_model, piece, span, cue):
    model, tok = wide_model
    start, end = span
    result = rewritten(model, tok, piece, start, end, cue=cue)
    notes = piece.notes
    before, after = notes[notes[:, ONSET] < start], notes[notes[:, ONSET] >= end]
    assert len(result.passages) == 4 and len(after)
    for p in result.passages:
        whole = p.piece.notes
        kept_before = whole[whole[:, ONSET] < start]
        kept_after = whole[whole[:, ONSET] >= end]
        cols = [ONSET, PITCH, VELOCITY]
        assert np.array_equal(kept_before[:, cols], before[:, cols])
        assert np.array_equal(kept_after[:, cols], after[:, cols])
        assert np.array_equal(kept_after[:, OFFSET], after[:, OFFSET])
        # a held note keeps its duration, unless the passage strikes its key again
        for old, new in zip(before, kept_before):
            struck = p.notes.notes[p.notes.notes[:, PITCH] == old[PITCH], ONSET]
            again = struck[(struck > old[ONSET]) & (struck < old[OFFSET])]
            assert new[OFFSET] == (again.min() if len(again) else old[OFFSET])
        # the passage: every note inside the span, all of them in the piece
        inside = whole[(whole[:, ONSET] >= start) & (whole[:, ONSET] < end)]
        assert len(inside) == len(p.notes)
        assert ((p.notes.notes[:, ONSET] >= start) & (p.notes.notes[:, ONSET] < end)).all()


def test_the_passage_keeps_the_samplers_promises(wide_model, piece):
    model, tok = wide_model
    result = rewritten(model, tok, piece, 3.0, 9.0, seed=3, candidates=8)
    prompt, origin = music_before(tok, piece, 3.0)
    for p in result.passages:
        ids = np.concatenate([prompt, p.ids])
        assert tok.densest_onset(ids) <= MAX_NOTES_PER_ONSET
        onset = np.cumsum(tok.shift_seconds[ids] > 0)
        is_pitch = tok.kind[ids] == tok.kind[tok.pitch_ids[0]]
        pairs = list(zip(onset[is_pitch], ids[is_pitch]))
        assert len(pairs) == len(set(pairs))  # no pitch twice at one onset
        assert origin + tok.seconds_of(p.ids) <= 9.0 + 1e-6  # its time never passes the span
    # the same seed, the same passages
    again = rewritten(model, tok, piece, 3.0, 9.0, seed=3, candidates=8)
    assert [p.ids.tolist() for p in again.passages] == [p.ids.tolist() for p in result.passages]


def test_the_judgement_is_a_teacher_forced_computation(wide_model, piece):
    model, tok = wide_model
    result = rewritten(model, tok, piece, 4.0, 8.0)
    # the run's scores are what after_nll gives for the same passages
    prompt, origin = music_before(tok, piece, 4.0)
    after = make_performance(piece.notes[piece.notes[:, ONSET] >= 8.0])
    judged = judging_notes(tok, after, 8.0, model.config.block_size // 4)
    assert result.after_notes == len(judged) > 0
    rows = sorted(result.passages, key=lambda p: p.row)
    scores = after_nll(model, tok, prompt, origin, [p.ids for p in rows] + [result.original.ids],
                       judged)  # fmt: skip
    assert scores == pytest.approx(
        [p.after_nll_per_note for p in rows] + [result.original.after_nll_per_note]
    )
    assert [p.after_nll_per_note for p in result.passages] == sorted(scores[:-1])  # best first
    # and score_suffixes is the plain forward pass over prefix + suffix
    suffixes = [np.asarray(s) for s in ([5, 9, 40, 41, 42, 7], [5, 60, 61, 62])]
    got = score_suffixes(model, prompt, suffixes, [2, 1], tok.pad_id)
    P = min(len(prompt), model.config.block_size - 6)
    for suffix, first, total in zip(suffixes, [2, 1], got):
        x = torch.as_tensor(np.concatenate([prompt[-P:], suffix]))[None]
        with torch.no_grad():
            log_p = model(x[:, :-1])[0][0].log_softmax(-1)
        targets = x[0, 1:]
        picked = log_p.gather(1, targets[:, None])[:, 0][P - 1 + first :]
        assert total == pytest.approx(-float(picked.sum()), rel=1e-4)


def test_a_cue_window_reads_the_music_after_first(tokenizer, midi_files):
    """with_cue: BOS, whole notes from one of the window's onsets on, EOS, then the window up to
    that onset — the two parts contiguous in the piece, nothing added but the markers."""
    tok = tokenizer
    ids = tok.encode(read_midi(midi_files[1]))[:257]
    rng = np.random.default_rng(0)
    for _ in range(20):
        out = with_cue(tok, ids, rng, 64)
        assert out[0] == tok.bos_id and np.count_nonzero(out == tok.eos_id) == 1
        eos = int(np.flatnonzero(out == tok.eos_id)[0])
        cue, stream = out[1:eos], out[eos + 1 :]
        assert 0 < len(cue) <= 64 and len(out) <= len(ids) and len(stream) >= len(ids) // 4 - 2
        at = next(i for i in range(len(ids)) if np.array_equal(ids[i : i + len(cue)], cue))
        assert np.array_equal(ids[at - len(stream) : at], stream)  # the music just before it
        assert tok.kind[ids[at - 1]] == SHIFT and tok.kind[cue[0]] == NOTE_PITCH  # an onset
        assert tok.kind[ids[at + len(cue)]] == NOTE_PITCH  # it ends where a note starts


def test_a_model_that_reads_cues_writes_after_the_music_after(piece):
    """With cue=True the candidates are sampled after BOS cue EOS prompt (the judged music after
    the span, then the music before): each passage's own likelihood is the model's after that
    prompt; the judgement is the same as without. (maestro-small: a random tiny model hardly
    tells one context from another.)"""
    model, tok, _ = load_checkpoint("small")
    plain = rewritten(model, tok, piece, 4.0, 8.0, seed=1)
    cued = rewritten(model, tok, piece, 4.0, 8.0, seed=1, cue=True)
    assert cued.original.after_nll_per_note == plain.original.after_nll_per_note
    prompt, origin = music_before(tok, piece, 4.0)
    after = make_performance(piece.notes[piece.notes[:, ONSET] >= 8.0])
    judged = judging_notes(tok, after, 8.0, model.config.block_size // 4)
    room = int(model.config.block_size * PROMPT_FILL)
    for result, before in ((cued, cue_prompt(tok, prompt, judged, room)), (plain, prompt)):
        p = next(p for p in result.passages if len(p.notes) and len(p.ids))
        nll = score_suffixes(model, before, [p.ids], [0], tok.pad_id)[0]
        assert p.log_likelihood_per_note == pytest.approx(-nll / len(p.notes), rel=1e-4)
    written_after = cue_prompt(tok, prompt, judged, 100)
    moved = judged.notes.copy()
    moved[:, :2] -= judged.notes[:, ONSET].min()  # the music after, from its first onset
    cue = tok.encode(make_performance(moved))
    assert len(written_after) == 100 and written_after[0] == tok.bos_id
    assert np.array_equal(written_after[1 : 1 + len(cue)], cue)
    assert written_after[1 + len(cue)] == tok.eos_id
    assert np.array_equal(written_after[2 + len(cue) :], prompt[-(100 - 2 - len(cue)) :])


def test_a_span_at_the_end_is_ranked_as_a_continuation(wide_model, piece):
    model, tok = wide_model
    end = piece.duration
    result = rewritten(model, tok, piece, end - 3.0, end)
    assert result.after_notes == 0 and result.original.after_nll_per_note is None
    distances = [p.distance_from_prompt for p in result.passages if len(p.notes)]
    assert distances == sorted(distances)


@pytest.mark.parametrize(
    "start, end, fragment",
    [
        (8.0, 8.0, "ends .* before it starts"),
        (9.0, 8.0, "ends .* before it starts"),
        (8.0, 8.3, "0.30 s long.*between 0.5 and 30"),
        (8.0, 40.0, "outside the piece|between 0.5 and 30"),
        (-1.0, 3.0, "outside the piece"),
        (1.0, 4.0, "s of music comes before 1 s"),
        (float("nan"), 4.0, "from"),
    ],
)
def test_a_bad_span_is_named(wide_model, piece, start, end, fragment):
    model, tok = wide_model
    with pytest.raises(InvalidParameterError, match=fragment):
        rewritten(model, tok, piece, start, end)


def test_an_empty_piece_is_refused(wide_model):
    model, tok = wide_model
    with pytest.raises(InvalidParameterError, match="no notes"):
        rewritten(model, tok, make_performance(np.zeros((0, 4))), 2.0, 4.0)


def test_judging_in_bfloat16_stays_close_to_float32(wide_model, piece):
    """The studio judges in bfloat16 where the CPU multiplies it faster (fast_matmul_dtype):
    the cache keeps float32, the NLL moves by a fraction of a per cent."""
    model, tok = wide_model
    prompt, _ = music_before(tok, piece, 4.0)
    suffixes = [np.asarray(s) for s in ([5, 9, 40, 41, 42, 7], [5, 60, 61, 62])]
    exact = score_suffixes(model, prompt, suffixes, [2, 1], tok.pad_id)
    fast = score_suffixes(model, prompt, suffixes, [2, 1], tok.pad_id, torch.bfloat16)
    assert not np.array_equal(exact, fast) and np.allclose(exact, fast, rtol=2e-2)


def test_an_engine_judges_what_pytorch_judges(wide_model, piece):
    """With the CPU's engine decoder the judging pass runs there, row by row after one cached
    prefix: in float32 weights it is the same computation as PyTorch's batch."""
    from musicgen.decoders import onnx_decoder

    model, tok = wide_model
    decoder = onnx_decoder(model, "float32")  # the studio's engine decoder, exact weights
    prompt, _ = music_before(tok, piece, 4.0)
    suffixes = [np.asarray(s) for s in ([5, 9, 40, 41, 42, 7], [5, 60, 61, 62])]
    exact = score_suffixes(model, prompt, suffixes, [2, 1], tok.pad_id)
    engined = score_suffixes(model, prompt, suffixes, [2, 1], tok.pad_id, decoder=decoder)
    assert np.allclose(exact, engined, rtol=1e-4)
