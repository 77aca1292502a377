"""Decoding engines compared on the CPU at hand: ms per token of maestro-base's decoding loop,
ONNX Runtime (the studio's int8 step, onnx_step.py) against CTranslate2 (int8), at batch 1 and 4,
from the Chopin étude's prompt window (768 tokens) on. Prints JSON.

Each engine decodes the same number of tokens after the same prompt with plain sampling (no
grammar: CTranslate2's generator takes no per-step logits processor, so it could not keep the
tokenizer's grammar or the requested length; this measures its raw speed only); the time per
token is the slope between a short and a long run, so the prompt's prefill cancels out.

    pip install ctranslate2   # not a dependency of the studio
    python benchmarks/engines.py [--tokens 64 256] [--batches 1 4]
"""

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from musicgen import device as devices
from musicgen.bench import PROMPT
from musicgen.checkpoint import load_checkpoint, resolve
from musicgen.decoders import onnx_decoder
from musicgen.generate import draw
from musicgen.midi import read_midi

PROMPT_TOKENS = 768


@torch.inference_mode()
def onnx_runtime(model, decoder, prompt: np.ndarray, batch: int, tokens: int) -> float:
    """Seconds to prefill the prompt and sample `tokens` more per row (numpy draw, as the
    studio's sampler)."""
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    cache = model.new_cache(1)
    logits = decoder.prefill(torch.as_tensor(prompt)[None], cache).expand(batch, -1)
    cache = cache.repeat(batch)
    for i in range(len(prompt), len(prompt) + tokens):
        next_id = draw(logits.numpy(), rng)
        logits = decoder.step(torch.as_tensor(next_id[:, None]), torch.tensor([i]), cache)
    return time.perf_counter() - started


def ctranslate2_generator(model, folder: str):
    """maestro-base as a CTranslate2 decoder (int8 weights): pre-norm, RMSNorm, rotary
    positions (GPT-NeoX halves), GELU (tanh), tied head."""
    import ctranslate2
    from ctranslate2.specs import common_spec, transformer_spec

    cfg = model.config
    spec = transformer_spec.TransformerDecoderModelSpec.from_config(
        cfg.n_layer,
        cfg.n_head,
        pre_norm=True,
        activation=common_spec.Activation.GELUTanh,
        rms_norm=True,
        rotary_dim=0,  # the whole head
        rotary_interleave=False,
        rotary_base=cfg.rope_base,
    )
    weights = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    decoder = spec.decoder
    decoder.scale_embeddings = False
    decoder.embeddings.weight = weights["embed.weight"]
    decoder.projection.weight = weights["embed.weight"]
    decoder.layer_norm.gamma = weights["norm.weight"]
    for i, layer in enumerate(decoder.layer):
        layer.self_attention.layer_norm.gamma = weights[f"blocks.{i}.norm1.weight"]
        layer.self_attention.linear[0].weight = weights[f"blocks.{i}.attn.qkv.weight"]
        layer.self_attention.linear[1].weight = weights[f"blocks.{i}.attn.proj.weight"]
        layer.ffn.layer_norm.gamma = weights[f"blocks.{i}.norm2.weight"]
        layer.ffn.linear_0.weight = weights[f"blocks.{i}.mlp.up.weight"]
        layer.ffn.linear_1.weight = weights[f"blocks.{i}.mlp.down.weight"]
    spec.config.layer_norm_epsilon = float(torch.finfo(torch.float32).eps)
    spec.config.bos_token = spec.config.eos_token = spec.config.unk_token = "t0"
    spec.register_vocabulary([f"t{i}" for i in range(cfg.vocab_size)])
    spec.validate()
    spec.optimize(quantization="int8")
    spec.save(folder)
    return ctranslate2.Generator(
        folder, device="cpu", compute_type="int8", intra_threads=torch.get_num_threads()
    )


def ctranslate2_run(generator, prompt: np.ndarray, batch: int, tokens: int) -> float:
    words = [f"t{i}" for i in prompt]
    started = time.perf_counter()
    generator.generate_batch(
        [words] * batch,
        max_length=tokens,
        min_length=tokens,
        sampling_topk=0,  # the whole distribution
        include_prompt_in_result=False,
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, nargs=2, default=[64, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, tok, _ = load_checkpoint(resolve("base"), "cpu", torch.float32)
    prompt = tok.encode(read_midi(PROMPT, isolate=False))[-PROMPT_TOKENS:]
    decoder = onnx_decoder(model)
    engines = {"onnxruntime_int8": lambda b, n: onnx_runtime(model, decoder, prompt, b, n)}
    result = {"machine": {"cpu": devices.cpu_name(), "threads": torch.get_num_threads()}}
    with tempfile.TemporaryDirectory() as folder:
        try:
            import ctranslate2

            generator = ctranslate2_generator(model, folder)
            engines["ctranslate2"] = lambda b, n: ctranslate2_run(generator, prompt, b, n)
            result["ctranslate2"] = ctranslate2.__version__
        except ImportError:
            result["ctranslate2"] = "not installed (pip install ctranslate2)"
        short, long = args.tokens
        for name, run in engines.items():
            for batch in args.batches:
                run(batch, short)  # warm-up
                slope = []
                for _ in range(args.repeats):
                    a, b = run(batch, short), run(batch, long)
                    slope.append((b - a) / (long - short))
                ms = float(np.median(slope)) * 1e3
                result[f"{name}_batch{batch}_ms_per_step"] = round(ms, 3)
                print(json.dumps({name: {"batch": batch, "ms_per_step": round(ms, 3)}}))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
