"""The decoders: the ONNX Runtime step against the model's own (the CPU's fast path), and the
choice between them, measured once per machine."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from musicgen import decoders
from musicgen.decoders import Decoder, choose_decoder
from musicgen.errors import InvalidParameterError
from musicgen.generate import SamplingConfig, sample
from musicgen.midi import read_midi
from musicgen.model import MusicTransformer
from musicgen.onnx_step import OnnxDecoder


def step_logits(model, step, x, start=20):
    cache = model.new_cache(x.size(0))
    model.prefill(x[:, :start], cache)
    return torch.stack(
        [step(x[:, i : i + 1], torch.tensor([i]), cache) for i in range(start, x.size(1))], 1
    )


@torch.inference_mode()
def test_float32_graphs_compute_what_the_model_computes(tiny_model):
    model, tok = tiny_model
    x = torch.randint(0, tok.vocab_size, (3, 50))
    expected = step_logits(model, model.decode_step, x)
    torch.testing.assert_close(
        step_logits(model, OnnxDecoder(model, weights="float32"), x), expected, atol=1e-4, rtol=1e-4
    )
    quantized = step_logits(model, OnnxDecoder(model), x)  # int8 weights (and activations)
    assert not torch.equal(quantized, expected)
    assert (quantized.softmax(-1) - expected.softmax(-1)).abs().max() < 0.05


@torch.inference_mode()
def test_the_engine_prefills_what_the_model_prefills(tiny_model):
    """The prompt and each slide of the window run through the engine in one call: the logits
    of every position, and the cache the steps then read, are the model's."""
    model, tok = tiny_model
    x = torch.randint(0, tok.vocab_size, (2, 40))
    engine = OnnxDecoder(model, weights="float32")
    ours, theirs = model.new_cache(2), model.new_cache(2)
    expected = model.prefill(x[:, :30], theirs, every_position=True)
    prefilled = engine.prefill(x[:, :30], ours, every_position=True)
    torch.testing.assert_close(prefilled, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(engine.prefill(x[:, :30], ours), expected[:, -1])
    torch.testing.assert_close(ours.k[:, :, :, :30], theirs.k[:, :, :, :30], atol=1e-5, rtol=1e-5)
    for i in range(30, 40):  # the steps after it: the engine's steps on the model's cache
        torch.testing.assert_close(
            engine(x[:, i : i + 1], torch.tensor([i]), ours),
            model.decode_step(x[:, i : i + 1], torch.tensor([i]), theirs),
            atol=1e-4,
            rtol=1e-4,
        )


@torch.inference_mode()
def test_equal_weights_under_another_config_get_their_own_graph(tiny_model):
    """The graph holds the architecture too (here the rotary base): a model with the same
    weights and another config must not step through the first one's cached graph."""
    model, tok = tiny_model
    other = MusicTransformer(dataclasses.replace(model.config, rope_base=500.0)).eval()
    other.load_state_dict(model.state_dict())
    x = torch.randint(0, tok.vocab_size, (1, 40))
    OnnxDecoder(model, weights="float32")  # the first model's graph, built and kept on disk
    torch.testing.assert_close(
        step_logits(other, OnnxDecoder(other, weights="float32"), x),
        step_logits(other, other.decode_step, x),
        atol=1e-4,
        rtol=1e-4,
    )


def test_float32_graphs_sample_the_same_tokens(tiny_model, midi_files):
    model, tok = tiny_model
    prompt = tok.encode(read_midi(midi_files[1]))[:40]
    config = SamplingConfig(seconds=30, seed=3, num_candidates=2)
    onnx = Decoder("onnx-fp32", OnnxDecoder(model, weights="float32"))
    expected = sample(model, tok, prompt, config)
    for a, b in zip(sample(model, tok, prompt, config, decoder=onnx), expected):
        assert np.array_equal(a.ids, b.ids) and a.log_likelihood == pytest.approx(b.log_likelihood)


def test_decoder_setting(tiny_model, monkeypatch):
    model, _ = tiny_model
    assert choose_decoder(model, "torch").name == "torch-eager"
    assert choose_decoder(model, "onnx-int8").name == "onnx-int8"
    assert choose_decoder(model).name in ("torch-eager", "onnx-int8")  # measured
    monkeypatch.setenv("MUSICGEN_DECODER", "torch")
    assert choose_decoder(model).name == "torch-eager"
    with pytest.raises(InvalidParameterError, match="onnx-int8"):
        choose_decoder(model, "fastest")


def test_a_failing_int8_build_falls_back_to_pytorch(tiny_model, monkeypatch):
    """An ONNX Runtime that cannot run the graph (too old, an operator missing) must not stop
    the studio from starting: the automatic choice says why and decodes with PyTorch."""
    from musicgen import onnx_step

    def unbuildable(model, weights):
        raise RuntimeError("no kernel for GroupQueryAttention")

    monkeypatch.setattr(onnx_step, "OnnxDecoder", unbuildable)
    model, _ = tiny_model
    assert choose_decoder(model).name == "torch-eager"
    with pytest.raises(RuntimeError, match="GroupQueryAttention"):
        choose_decoder(model, "onnx-int8")  # asked for by name: the error is the answer


def test_the_decoder_is_measured_once_per_machine_then_remembered(
    tiny_model, tmp_path, monkeypatch
):
    """A seed means the same music on every launch: two paths measured within a few per cent
    of each other must not flip from one start to the next."""
    model, _ = tiny_model
    monkeypatch.setenv("MUSICGEN_CACHE", str(tmp_path))
    monkeypatch.delenv("MUSICGEN_DECODER", raising=False)
    first = decoders.choose_decoder(model).name
    remembered = json.loads((tmp_path / decoders.DECODER_CHOICES).read_text())
    assert list(remembered.values()) == [first]

    def measure_again(*_):
        raise AssertionError("measured again")

    monkeypatch.setattr(decoders, "_seconds_per_step", measure_again)
    assert all(decoders.choose_decoder(model).name == first for _ in range(3))
    other = next(n for n in ("torch-eager", "onnx-int8") if n != first)
    (tmp_path / decoders.DECODER_CHOICES).write_text(json.dumps({key: other for key in remembered}))
    assert decoders.choose_decoder(model).name == other  # what was measured stays chosen
