import json

import pytest
import torch

from musicgen.checkpoint import BUNDLED, WEIGHTS_FILE, load_checkpoint, save_checkpoint
from musicgen.errors import CheckpointError, InvalidParameterError
from musicgen.model import IGNORE, ModelConfig, MusicTransformer
from musicgen.tokenizer import PerformanceTokenizer


def test_cached_and_uncached_logits_agree(tiny_model):
    model, tok = tiny_model
    x = torch.randint(0, tok.vocab_size, (3, 50))
    for static in (False, True):  # the CPU's growing cache and the GPU's fixed-shape one
        with torch.no_grad():
            full, _ = model(x)
            cache = model.new_cache(3, static)
            parts = [model.prefill(x[:, :20], cache)]
            for i in range(20, 50):  # then one token at a time
                parts.append(model.decode_step(x[:, i : i + 1], torch.tensor([i]), cache))
        torch.testing.assert_close(parts[0], full[:, 19], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(torch.stack(parts[1:], 1), full[:, 20:], atol=1e-5, rtol=1e-4)


def test_loss_is_the_cross_entropy_of_the_logits_and_skips_padding(tiny_model):
    model, tok = tiny_model
    x = torch.randint(0, tok.vocab_size, (2, 12))
    targets = torch.randint(0, tok.vocab_size, (2, 12))
    targets[1, 6:] = IGNORE
    with torch.no_grad():
        logits, loss = model(x, targets)
    keep = targets != IGNORE
    manual = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    torch.testing.assert_close(loss, manual)
    assert model(x)[1] is None


def test_model_is_causal(tiny_model):
    model, tok = tiny_model
    x = torch.randint(0, tok.vocab_size, (1, 40))
    y = x.clone()
    y[0, 30:] = (y[0, 30:] + 1) % tok.vocab_size
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0][:, :30], model(y)[0][:, :30])


def test_safetensors_round_trip(tmp_path, tiny_model):
    model, tok = tiny_model
    save_checkpoint(tmp_path, model, tok, {"step": 7})
    again, tok2, meta = load_checkpoint(tmp_path)
    assert meta["step"] == 7 and tok2.vocab_size == tok.vocab_size
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_missing_checkpoint_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="No trained checkpoint"):
        load_checkpoint(tmp_path)


def test_truncated_weights_are_a_clear_error(tmp_path, tiny_model):
    model, tok = tiny_model
    save_checkpoint(tmp_path, model, tok)
    data = (tmp_path / WEIGHTS_FILE).read_bytes()
    (tmp_path / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(tmp_path)


def test_wrong_tokenizer_and_wrong_shapes(tmp_path, tiny_model):
    model, tok = tiny_model
    save_checkpoint(tmp_path, model, tok)
    PerformanceTokenizer.create(()).save(tmp_path)  # fewer composer tokens
    with pytest.raises(CheckpointError, match="disagree"):
        load_checkpoint(tmp_path)
    tok.save(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["model"]["n_embd"] = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(tmp_path)


def test_a_checkpoint_saved_by_the_two_level_experiment(tmp_path, tiny_model):
    """Configs saved while the two-level experiment existed: a token model's loads (its
    retired settings dropped), a two-level model is refused by name."""
    model, tok = tiny_model
    save_checkpoint(tmp_path, model, tok)
    config = json.loads((tmp_path / "config.json").read_text())
    retired = {"representation": "tokens", "field_layers": 1, "field_decoder": "attention"}
    config["model"] |= retired
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert load_checkpoint(tmp_path)[0].config == model.config
    config["model"]["representation"] = "events"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="two-level model.*docs/two-level.md"):
        load_checkpoint(tmp_path)


def test_config_validation():
    with pytest.raises(InvalidParameterError):
        ModelConfig(vocab_size=100, n_embd=30, n_head=4)
    with pytest.raises(InvalidParameterError):
        ModelConfig(vocab_size=100, dropout=1.5)
    model = MusicTransformer(ModelConfig(vocab_size=100, n_layer=1, n_embd=32, n_head=2))
    assert model.config.head_dim == 16 and model.num_params() == 100 * 32 + 12 * 32 * 32 + 3 * 32


def test_float16_storage_loads_as_float32(tmp_path, tiny_model):
    model, tok = tiny_model
    save_checkpoint(tmp_path, model, tok, dtype=torch.float16)
    again, _, _ = load_checkpoint(tmp_path)
    assert again.embed.weight.dtype == torch.float32
    x = torch.randint(0, tok.vocab_size, (1, 30))
    with torch.no_grad():
        torch.testing.assert_close(again(x)[0], model(x)[0], atol=2e-3, rtol=1e-2)


def test_train_flags_fill_the_architecture_and_the_training_config():
    from musicgen.cli import build_parser
    from musicgen.train import config_from_args

    args = build_parser().parse_args(
        ["train", "--data", "d", "--out", "o", "--n-layer", "3", "--dropout", "0.1", "--lr", "0.01"]
    )
    cfg = config_from_args(args)
    assert cfg.model == ModelConfig(n_layer=3, dropout=0.1)  # the rest: ModelConfig's defaults
    assert cfg.lr == 0.01 and cfg.model.vocab_size is None
    with pytest.raises(InvalidParameterError, match="vocab_size is not set"):
        MusicTransformer(cfg.model)


def test_init_from_takes_the_models_architecture_and_tokenizer(tmp_path):
    from conftest import MIDI_DIR

    from musicgen.cli import build_parser
    from musicgen.train import config_from_args

    folder = ["--data", str(MIDI_DIR), "--cache-dir", str(tmp_path)]
    parse = lambda *flags: config_from_args(  # noqa: E731
        build_parser().parse_args(["train", *folder, "--out", "o", *flags])
    )
    small = json.loads((BUNDLED["small"] / "config.json").read_text())["model"]
    cfg = parse("--init-from", "small", "--block-size", "1024")
    assert cfg.init_from == "small" and cfg.model.block_size == 1024
    assert cfg.model.to_dict() == small | {"block_size": 1024}
    with pytest.raises(InvalidParameterError, match="--composers with --init-from"):
        parse("--init-from", "small", "--composers", "4")


def test_a_short_run_warms_up_for_a_tenth_of_it_and_a_bad_warm_up_names_both_flags():
    from musicgen.cli import build_parser
    from musicgen.train import WARMUP_STEPS, config_from_args

    parse = lambda *flags: config_from_args(  # noqa: E731
        build_parser().parse_args(["train", "--data", "d", "--out", "o", *flags])
    )
    assert parse("--max-steps", "30").warmup_steps == 3
    assert parse().warmup_steps == WARMUP_STEPS
    with pytest.raises(InvalidParameterError, match=r"--warmup-steps \(50\).*--max-steps \(30\)"):
        parse("--max-steps", "30", "--warmup-steps", "50")


def test_int8_weights_carry_a_checkpoint_and_come_back_close(tmp_path, tiny_model):
    """scripts/int8_weights.py: how the GPU job carries the starting weights (a quarter of the
    float32 size); unpacked, an ordinary checkpoint whose logits stay close."""
    import runpy

    from conftest import ROOT

    script = runpy.run_path(str(ROOT / "scripts" / "int8_weights.py"))
    model, tok = tiny_model
    save_checkpoint(tmp_path / "fp32", model, tok)
    script["pack"](str(tmp_path / "fp32"), str(tmp_path / "int8"))
    script["unpack"](str(tmp_path / "int8"), str(tmp_path / "back"))
    packed = (tmp_path / "int8" / script["PACKED_FILE"]).stat().st_size
    assert packed < 0.3 * (tmp_path / "fp32" / WEIGHTS_FILE).stat().st_size
    again, _, _ = load_checkpoint(tmp_path / "back")
    x = torch.randint(0, tok.vocab_size, (1, 40))
    with torch.no_grad():
        expected, got = model(x)[0].softmax(-1), again(x)[0].softmax(-1)
    assert not torch.equal(expected, got) and (expected - got).abs().max() < 0.01
