"""What one decoding step costs, path by path: milliseconds per step at batch 1 with 400 positions
cached, for maestro-small's and maestro-base's sizes, PyTorch eager against the one-call int8
step (musicgen/onnx_step.py). Random weights: a speed measurement, not music. Prints JSON.

`--cached 400 768 1536 --sizes base`: the base-size step by how much is cached (a model's
context is raised to fit the longest).

    python benchmarks/step_speed.py [--steps 60] [--repeats 5] [--cached N ...]
        [--sizes small base]
"""

import argparse
import json
import time

import numpy as np
import torch

from musicgen import device as devices
from musicgen.model import ModelConfig, MusicTransformer
from musicgen.onnx_step import OnnxDecoder

SIZES = {"small": (6, 256, 4, 512), "base": (8, 512, 8, 1024)}  # layers, width, heads, context
CACHED, VOCAB = 400, 783


@torch.inference_mode()
def measure(model, steps: int, repeats: int, cached: int = CACHED) -> dict:
    x = torch.randint(1, VOCAB, (1, cached + steps), generator=torch.Generator().manual_seed(0))
    paths = {"torch-eager": model.decode_step, "onnx-int8-one-call": OnnxDecoder(model)}
    times = {name: [] for name in paths}
    for _ in range(repeats):  # interleaved, so that both paths see the same machine
        for name, step in paths.items():
            cache = model.new_cache(1)
            model.prefill(x[:, :cached], cache)
            for i in range(cached, cached + steps):
                started = time.perf_counter()
                step(x[:, i : i + 1], torch.tensor([i]), cache)
                times[name].append(time.perf_counter() - started)
    return {name: round(float(np.median(t)) * 1e3, 3) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cached", type=int, nargs="+", default=[CACHED])
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    args = parser.parse_args()
    result = {
        "machine": {"cpu": devices.cpu_name(), "torch_threads": torch.get_num_threads()},
        "cached": args.cached,
        "ms_per_step": {},
    }
    for size in args.sizes:
        layers, width, heads, context = SIZES[size]
        torch.manual_seed(0)
        config = ModelConfig(
            vocab_size=VOCAB,
            block_size=max(context, max(args.cached) + args.steps),
            n_layer=layers,
            n_head=heads,
            n_embd=width,
        )
        model = MusicTransformer(config).eval()
        for cached in args.cached:
            figures = measure(model, args.steps, args.repeats, cached)
            name = size + (f"-{cached}" if len(args.cached) > 1 else "")
            result["ms_per_step"][name] = figures
            print(json.dumps({name: figures}), flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
