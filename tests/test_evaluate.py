"""evaluate: whole pieces scored once, and the per-note total split into its parts. Tiny
random-weight models over the fixture excerpts (a plain folder: one of the six is the test
split)."""

import numpy as np
import pytest
import torch
from conftest import FIXTURES

from musicgen.checkpoint import save_checkpoint
from musicgen.data import build_cache
from musicgen.evaluate import PARTS, evaluate_checkpoint
from musicgen.model import ModelConfig, MusicTransformer

DATA = FIXTURES / "midi"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("token-cache")


def _test_piece(tokenizer, cache_dir) -> np.ndarray:
    cache = build_cache(DATA, tokenizer, cache_dir)
    (piece,) = cache.pieces("test")
    return np.concatenate([[tokenizer.bos_id], cache.piece_tokens(piece)])


@pytest.fixture()
def whole_piece_checkpoint(tokenizer, tmp_path):
    """A tiny model whose context holds the whole test excerpt in one window."""
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, block_size=2048, n_layer=2, n_head=2, n_embd=32
    )
    model = MusicTransformer(config).eval()
    save_checkpoint(tmp_path / "model", model, tokenizer, {"note": "random weights"})
    return tmp_path / "model", model


def test_a_piece_in_one_window_scores_its_loss_split_into_parts(
    whole_piece_checkpoint, tokenizer, cache_dir
):
    directory, model = whole_piece_checkpoint
    seq = _test_piece(tokenizer, cache_dir)
    result = evaluate_checkpoint(str(DATA), "test", directory, cache_dir=cache_dir)
    assert len(seq) <= model.config.block_size  # one window: the loss is the whole NLL
    x = torch.as_tensor(seq)[None]
    with torch.inference_mode():
        _, loss = model(x[:, :-1], x[:, 1:])
    assert result["nll_per_token"] == pytest.approx(float(loss), rel=1e-4)
    parts = result["nll_per_note_by_part"]
    assert list(parts) == list(PARTS) and all(v > 0 for v in parts.values())
    assert sum(parts.values()) == pytest.approx(result["nll_per_note"], abs=1e-3)


def test_windows_padded_into_batches_score_as_one_at_a_time(tiny_checkpoint, cache_dir):
    # the tiny model's 64-token context slides over the excerpt: many windows, the last short
    one = evaluate_checkpoint(str(DATA), "test", tiny_checkpoint, batch_size=1, cache_dir=cache_dir)
    batched = evaluate_checkpoint(str(DATA), "test", tiny_checkpoint, cache_dir=cache_dir)
    assert one["tokens"] == batched["tokens"] > 64
    assert batched["nll_per_note"] == pytest.approx(one["nll_per_note"], rel=1e-5)
    for part in PARTS:
        assert batched["nll_per_note_by_part"][part] == pytest.approx(
            one["nll_per_note_by_part"][part], abs=2e-4
        )
