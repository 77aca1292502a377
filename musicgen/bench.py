"""`python -m musicgen bench --json`: speed figures of a checkpoint, as one JSON object.

Generation is timed from a real prompt (a bundled MAESTRO excerpt) with the app's default
sampling settings. "Real-time factor" is seconds of music generated per second of wall time.
Every bundled checkpoint is measured in one run, on each decoding path the device has (see
`decode_paths`), with the time to first sound of the studio (a click's request until its first
stretch of audio is ready). The default run is short (about two minutes on 2 cores): batch 1 on
every path, 4 candidates on the fast ones (their cost against one), and how a step's time grows
with what is cached (400 -> 1,536 positions, the base size with a 2,048-token window, random
weights: a speed measurement); `full` adds batch 4 everywhere, repeats, the no-cache baseline
that recomputes the whole window for every token, and training throughput.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from . import device as devices
from . import onnx_step
from .checkpoint import BUNDLED_CHECKPOINTS, REPO_ROOT, load_checkpoint, resolve
from .decoders import onnx_decoder, torch_decoder
from .generate import SamplingConfig, sample
from .midi import read_midi
from .tokenizer import NOTE_PITCH

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
    return {
        "device": devices.describe(device),
        "cpu": devices.cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _time_generation(model, tok, prompt, config, repeats, decoder) -> dict:
    """Best of `repeats` runs of sampling with `decoder`; steps_per_note: decoding steps (one
    a token) per note, what a representation of the notes costs the decoder."""
    best = None
    for _ in range(repeats):
        started = time.perf_counter()
        out = [s.ids for s in sample(model, tok, prompt, config, decoder=decoder)]
        wall = time.perf_counter() - started
        if best is None or wall < best["wall_s"]:
            music = float(np.mean([tok.seconds_of(ids) for ids in out]))
            n = float(np.mean([len(ids) for ids in out]))
            notes = float(np.mean([(tok.kind[ids] == NOTE_PITCH).sum() for ids in out]))
            best = {
                "wall_s": round(wall, 4),
                "tokens_per_candidate": round(n),
                "tokens_per_s": round(n * len(out) / wall, 1),
                "notes_per_s": round(notes * len(out) / wall, 1),
                "steps_per_note": round(n / max(notes, 1), 3),
                "music_seconds": round(music, 2),
                "real_time_factor": round(music / wall, 2),
            }
    return best


@torch.inference_mode()
def _time_recompute(model, prompt, batch: int, tokens: int) -> dict:
    """The no-cache baseline: every new token runs the whole window through the model again
    (as the Keras Music Transformer example and the original notebooks do). Greedy: the speed
    does not depend on which tokens come out."""
    device, block = model.embed.weight.device, model.config.block_size
    x = torch.as_tensor(prompt[-(block // 2) :], device=device)[None].repeat(batch, 1)
    _sync(device)
    started = time.perf_counter()
    for _ in range(tokens):
        logits, _ = model(x[:, -block:])
        x = torch.cat([x, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    _sync(device)
    wall = time.perf_counter() - started
    return {"wall_s": round(wall, 4), "tokens_per_s": round(tokens * batch / wall, 1)}


@torch.inference_mode()
def _step_growth(model, make, dev, cached=(400, 1536), steps=24) -> dict:
    """ms per decoding step at batch 1 with `cached` positions in the cache, for a model of
    `model`'s size with a window that holds the longest (random weights), and their ratio."""
    from .model import MusicTransformer

    config = replace(model.config, block_size=max(model.config.block_size, max(cached) + steps))
    torch.manual_seed(0)
    sized = MusicTransformer(config).to(dev).eval()
    decoder = make(sized)
    prefill = decoder.prefill or sized.prefill
    x = torch.randint(1, config.vocab_size, (1, max(cached) + steps), device=dev)
    result = {}
    for n in cached:
        cache = sized.new_cache(1, decoder.static_cache)
        prefill(x[:, :n], cache)
        times = []
        for i in range(n, n + steps):
            _sync(dev)
            started = time.perf_counter()
            decoder.step(x[:, i : i + 1], torch.tensor([i], device=dev), cache)
            _sync(dev)
            times.append(time.perf_counter() - started)
        result[f"ms_per_step_{n}_cached"] = round(float(np.median(times[4:])) * 1e3, 3)
    first, last = (result[f"ms_per_step_{n}_cached"] for n in (cached[0], cached[-1]))
    result["growth"] = round(last / first, 2)
    return result


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _train_throughput(model_config, device: torch.device, steps: int = 10) -> dict:
    from .data import split_window
    from .model import MusicTransformer

    model = MusicTransformer(model_config).to(device).train()
    dtype = devices.train_dtype(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = 32 if device.type != "cpu" else 8
    x = torch.randint(
        0, model_config.vocab_size, (batch, model_config.block_size + 1), device=device
    )

    def step():  # the trainer's loss on random tokens (speed does not depend on the data)
        with devices.autocast(device, dtype):
            _, loss = model(*split_window(x, pad_id=0))
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


def decode_paths(device: torch.device) -> dict[str, Callable]:
    """The decoding paths compared on a device: name -> Decoder factory. The first is PyTorch's
    eager float32 path, the baseline of the others."""
    paths = {"torch-eager": torch_decoder}
    if device.type == "cpu":
        if onnx_step.available():
            paths["onnx-int8"] = onnx_decoder
    else:
        paths["torch-compiled"] = lambda model: torch_decoder(model, compile_step=True)
    return paths


def _first_sound(directory: Path, device: str, seconds: float, repeats: int) -> dict:
    """What a listener waits for in the studio: from the request (a parsed prompt) to its
    first stretch of audio, and, for a whole take, to its final files; after a warm-up."""
    from .studio import Stretch, Studio

    with tempfile.TemporaryDirectory() as outputs:
        studio = Studio.load([directory], device, outputs)
        if not studio.audio_available()[0]:
            return {"error": studio.audio_available()[1]}
        prompt = studio.read_prompt(PROMPT)
        first, final = [], []
        for i in range(repeats + 1):  # the first: a warm-up
            config = SamplingConfig(seconds=seconds, seed=i)
            started = time.perf_counter()
            for item in studio.stream(prompt, config):
                if isinstance(item, Stretch) and item.index == 1:
                    first.append(time.perf_counter() - started)
            final.append(time.perf_counter() - started)
    return {
        "first_sound_s": round(float(np.median(first[1:])), 3),
        "final_take_s": round(float(np.median(final[1:])), 3),
        "music_seconds": seconds,
        "decoder": studio.default.decoder.name,
    }


def _bench_checkpoint(
    directory: Path, dev, seconds: float, repeats: int, quick: bool, full: bool, paths, batches
) -> dict:
    started = time.perf_counter()
    model, tok, _ = load_checkpoint(directory, dev, devices.inference_dtype(dev))
    load_s = time.perf_counter() - started
    prompt = tok.encode(read_midi(PROMPT, isolate=False))
    result = {
        "parameters": model.num_params(),
        "model_load_s": round(load_s, 3),
        "prompt_tokens": len(prompt),
    }
    with torch.inference_mode():  # prefill: the prompt window into a fresh cache
        keep = model.config.block_size * 3 // 4  # the prompt part of the window, as generate()
        x = torch.as_tensor(prompt[-keep:], device=dev)[None]
        times = []
        for _ in range(max(repeats, 3)):
            cache = model.new_cache(1)
            _sync(dev)
            t0 = time.perf_counter()
            model.prefill(x, cache)
            _sync(dev)
            times.append(time.perf_counter() - t0)
        result["prefill"] = {"tokens": int(x.size(1)), "seconds": round(min(times), 4)}

    for i, (name, make) in enumerate(decode_paths(dev).items()):
        if paths and name not in paths:
            continue
        path = result.setdefault(name, {})
        # By default 4 candidates on the fast paths only: the baseline's would double the run.
        path_batches = batches or ((1,) if i == 0 else (1, 4))
        try:
            started = time.perf_counter()
            decoder = make(model)
            path["setup_s"] = round(time.perf_counter() - started, 3)
            for batch in path_batches:
                config = SamplingConfig(seconds=seconds, seed=0, num_candidates=batch)
                warm_up = SamplingConfig(seconds=min(seconds, 2.0), seed=0, num_candidates=batch)
                _time_generation(model, tok, prompt, warm_up, 1, decoder)  # (and compile)
                path[f"batch{batch}"] = _time_generation(
                    model, tok, prompt, config, repeats, decoder
                )
            if "batch1" in path and "batch4" in path:
                path["batch4_cost_vs_batch1"] = round(
                    path["batch4"]["wall_s"] / path["batch1"]["wall_s"], 2
                )
            if i > 0 or full:
                path["step_growth"] = _step_growth(model, make, dev)
        except Exception as exc:  # a path a device cannot run (e.g. compile without a compiler)
            path["error"] = f"{type(exc).__name__}: {exc}"[:500]

    result["studio"] = _first_sound(directory, str(dev), seconds, repeats)
    if not full:
        return result
    n = 64 if quick else 256
    default = result.get(next(iter(decode_paths(dev))), {}).get("batch1")
    recompute = _time_recompute(model, prompt, 1, n)
    result[f"recompute_batch1_{n}_tokens"] = recompute
    if default:
        result["cache_speedup_vs_recompute"] = round(
            default["tokens_per_s"] / recompute["tokens_per_s"], 1
        )
    if dev.type != "cpu" or not quick:
        result["training"] = _train_throughput(model.config, dev)
    return result


def run_benchmarks(
    checkpoints=None,
    device: str | None = None,
    data: str | None = None,
    seconds: float = 20.0,
    repeats: int | None = None,
    quick: bool = False,
    paths: list[str] | None = None,
    batches: tuple[int, ...] | None = None,
    full: bool = False,
) -> dict:
    """Speed of each checkpoint (default: every bundled one) on one device, in one run, on
    each decoding path of the device (or those named in `paths`). `batches`: the candidate
    counts of every path (default: 1, and 4 on the fast paths); `full`: batch 4 everywhere,
    3 repeats, the no-cache baseline and training throughput; `quick`: short runs (5 s of
    music) whatever else is asked."""
    dev = devices.pick_device(device)
    repeats = repeats or (3 if full else 1)
    batches = batches or ((1, 4) if full else None)
    if quick:
        seconds, repeats = min(seconds, 5.0), 1
    directories = [resolve(c) for c in checkpoints] if checkpoints else BUNDLED_CHECKPOINTS
    result = {
        "machine": _machine(dev),
        "sampling": {
            "temperature": SamplingConfig.temperature,
            "top_p": SamplingConfig.top_p,
            "seconds": seconds,
            "repeats": repeats,
            "full": full,
            "prompt": Path(PROMPT).name,
        },
        "checkpoints": {
            d.name: _bench_checkpoint(d, dev, seconds, repeats, quick, full, paths, batches)
            for d in directories
        },
    }
    if data:
        result["tokenize_all"] = _tokenize_all(data)
    return result
