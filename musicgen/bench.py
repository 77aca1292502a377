"""`python -m musicgen bench --json`: speed figures of a checkpoint, as one JSON object.

Generation is timed from a real prompt (a bundled MAESTRO excerpt) with the app's default
sampling settings. "Real-time factor" is seconds of music generated per second of wall time.
The full-recompute baseline runs the whole window through the model for every new token, as the
Keras Music Transformer example and the original notebooks do.
"""

from __future__ import annotations

import itertools
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import device as devices
from .checkpoint import REPO_ROOT, load_checkpoint, resolve
from .generate import SamplingConfig, sample_tokens
from .midi import read_midi

PROMPT = REPO_ROOT / "examples" / "chopin-etude-op-10-no-12.mid"
# Dense bf16 peak FLOP/s of common training GPUs, for model FLOPs utilisation.
PEAK_FLOPS = {
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "L4": 121e12,
    "A10": 125e12,
    "MI300": 1307e12,
    "MI250": 362e12,
    "4090": 165e12,
}


def _machine(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return {
        "device": devices.describe(device),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _time_generation(model, tok, prompt, config, repeats, use_cache=True, tokens=None) -> dict:
    """Best of `repeats` runs. With `tokens`, stop after that many tokens per candidate."""
    best = None
    for _ in range(repeats):
        steps = itertools.count(1)  # should_stop is called once per generated token
        stop_after = None if tokens is None else (lambda steps=steps: next(steps) >= tokens)
        started = time.perf_counter()
        out = sample_tokens(model, tok, prompt, config, should_stop=stop_after, use_cache=use_cache)
        wall = time.perf_counter() - started
        if best is None or wall < best["wall_s"]:
            music = float(np.mean([tok.seconds_of(ids) for ids in out]))
            n = int(np.mean([len(ids) for ids in out]))
            best = {
                "wall_s": round(wall, 4),
                "tokens_per_candidate": n,
                "tokens_per_s": round(n * len(out) / wall, 1),
                "music_seconds": round(music, 2),
                "real_time_factor": round(music / wall, 2) if tokens is None else None,
            }
    return best


def _train_throughput(model_config, device: torch.device, steps: int = 10) -> dict:
    from .model import MusicTransformer
    from .train import loss_of

    model = MusicTransformer(model_config).to(device).train()
    dtype = devices.train_dtype(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = 32 if device.type != "cpu" else 8
    x = torch.randint(
        0, model_config.vocab_size, (batch, model_config.block_size + 1), device=device
    )

    def step():  # the trainer's loss on random tokens (speed does not depend on the data)
        with devices.autocast(device, dtype):
            loss = loss_of(model, x, pad_id=0)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    tokens_per_s = steps * batch * model_config.block_size / (time.perf_counter() - started)
    n = model.num_params()
    c = model_config
    flops_per_token = 6 * n + 12 * c.n_layer * c.n_embd * c.block_size  # PaLM appendix B
    peak = None
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in PEAK_FLOPS.items() if k in name), None)
    return {
        "tokens_per_s": round(tokens_per_s),
        "batch": batch,
        "dtype": str(dtype),
        "mfu": round(tokens_per_s * flops_per_token / peak, 4) if peak else None,
    }


def _tokenize_all(data: str) -> dict:
    from .data import build_cache
    from .tokenizer import PerformanceTokenizer

    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        built = build_cache(data, PerformanceTokenizer.create(), cache)
        first = time.perf_counter() - started
        started = time.perf_counter()
        build_cache(data, PerformanceTokenizer.create(), cache)
        again = time.perf_counter() - started
    return {
        "files": len(built.index),
        "tokens": int(len(built.tokens)),
        "seconds": round(first, 1),
        "cached_rerun_seconds": round(again, 3),
        "workers": min(os.cpu_count() or 1, 8),
    }


def run_benchmarks(
    checkpoint=None,
    device: str | None = None,
    data: str | None = None,
    seconds: float = 30.0,
    repeats: int = 3,
    quick: bool = False,
) -> dict:
    dev = devices.pick_device(device)
    directory = resolve(checkpoint)
    started = time.perf_counter()
    model, tok, meta = load_checkpoint(directory, dev, devices.inference_dtype(dev))
    load_s = time.perf_counter() - started
    prompt = tok.encode(read_midi(PROMPT, isolate=False))
    if quick:
        seconds, repeats = min(seconds, 5.0), 1
    result = {
        "checkpoint": directory.name,
        "parameters": model.num_params(),
        "machine": _machine(dev),
        "model_load_s": round(load_s, 3),
        "prompt_tokens": len(prompt),
    }

    with torch.inference_mode():  # prefill: the prompt window into a fresh cache
        keep = model.config.block_size * 3 // 4  # the prompt part of the window, as generate()
        x = torch.as_tensor(prompt[-keep:], device=dev)[None]
        times = []
        for _ in range(max(repeats, 3)):
            cache = model.new_cache(1)
            t0 = time.perf_counter()
            model(x, cache)
            times.append(time.perf_counter() - t0)
        result["prefill"] = {"tokens": int(x.size(1)), "seconds": round(min(times), 4)}

    for batch in (1, 4):
        config = SamplingConfig(seconds=seconds, seed=0, num_candidates=batch)
        result[f"generate_batch{batch}_cached"] = _time_generation(
            model, tok, prompt, config, repeats
        )
    b1, b4 = result["generate_batch1_cached"], result["generate_batch4_cached"]
    result["batch4_cost_vs_batch1"] = round(b4["wall_s"] / b1["wall_s"], 2)

    # KV cache against full recomputation, for a fixed number of new tokens.
    n = 128 if quick else 1024
    long = SamplingConfig(seconds=120, seed=0)
    cached = _time_generation(model, tok, prompt, long, 1, True, tokens=n)
    full = _time_generation(model, tok, prompt, long, 1, False, tokens=n)
    result[f"cache_vs_recompute_{n}_tokens"] = {
        "cached_s": cached["wall_s"],
        "recompute_s": full["wall_s"],
        "speedup": round(full["wall_s"] / cached["wall_s"], 1),
    }
    for batch in (1, 4):
        config = SamplingConfig(seconds=min(seconds, 5.0), seed=0, num_candidates=batch)
        result[f"generate_batch{batch}_recompute"] = _time_generation(
            model, tok, prompt, config, 1, use_cache=False
        )
    if dev.type != "cpu" or not quick:
        result["training"] = _train_throughput(model.config, dev)
    if data:
        result["tokenize_all"] = _tokenize_all(data)
    result["sampling"] = {
        "temperature": 1.0,
        "top_p": 0.95,
        "seconds": seconds,
        "repeats": repeats,
        "prompt": Path(PROMPT).name,
    }
    return result
