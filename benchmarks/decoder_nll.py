"""What the CPU's int8 decoder costs in likelihood: NLL of test-split tokens scored
through each decoding step, token by token, as generation computes them. Prints JSON.

Windows of 512 tokens are taken from test pieces spread over the split (one per piece, seeded);
the first 256 are prefilled, the next 256 scored one decode step at a time, with PyTorch's
float32 step and with the ONNX Runtime int8 one, after PyTorch's prefill ("difference_int8")
and after the engine's own ("difference_int8_engine_prefill"; and its prefill's positions
themselves, "difference_int8_prefill": its dynamic int8 quantizes a whole window's activations
with one scale). Each difference is paired (same tokens), so its
standard error is small even on a sample; scoring the whole split this way would take hours on
a CPU.

    python benchmarks/decoder_nll.py --data ../shared/data/maestro-v3.0.0 [--windows 40]
        [--checkpoint DIR]
"""

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from musicgen.checkpoint import load_checkpoint, resolve
from musicgen.data import build_cache
from musicgen.onnx_step import OnnxDecoder

CONTEXT, SCORED = 256, 256


@torch.inference_mode()
def window_nll(prefill, step, cache, window: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(the NLL of each prefilled position's next token, of each stepped token)."""
    every = prefill(window[:, :CONTEXT], cache, every_position=True)[0].float()
    prefilled = F.cross_entropy(every[:-1], window[0, 1:CONTEXT], reduction="none").numpy()
    logits, stepped = every[-1:], []
    for i in range(CONTEXT, CONTEXT + SCORED):
        stepped.append(F.cross_entropy(logits.float(), window[:, i]).item())
        logits = step(window[:, i : i + 1], torch.tensor([i]), cache)
    return prefilled, np.array(stepped)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--checkpoint")
    args = parser.parse_args()
    directory = resolve(args.checkpoint)
    model, tok, _ = load_checkpoint(directory)
    cache = build_cache(args.data, tok)
    pieces = [p for p in cache.pieces("test") if p["length"] > CONTEXT + SCORED + 1]
    chosen = [pieces[i] for i in np.linspace(0, len(pieces) - 1, args.windows).astype(int)]
    rng = np.random.default_rng(0)
    engine = OnnxDecoder(model)
    paths = {  # name -> (prefill, step)
        "torch": (model.prefill, model.decode_step),
        "int8": (model.prefill, engine),
        "int8_engine_prefill": (engine.prefill, engine),
    }
    runs = {name: [] for name in paths}
    for piece in chosen:
        ids = cache.piece_tokens(piece)
        start = int(rng.integers(0, len(ids) - CONTEXT - SCORED))
        window = torch.as_tensor(ids[start : start + CONTEXT + SCORED + 1])[None]
        for name, (prefill, step) in paths.items():
            runs[name].append(window_nll(prefill, step, model.new_cache(1), window))
    prefilled, stepped = (
        {name: np.concatenate([r[part] for r in rows]) for name, rows in runs.items()}
        for part in (0, 1)
    )
    fp32 = stepped["torch"]
    result = {
        "checkpoint": directory.name,
        "tokens": len(fp32),
        "windows": len(chosen),
        "nll_per_token_torch_float32": round(float(fp32.mean()), 5),
        "nll_per_token_onnx_int8": round(float(stepped["int8"].mean()), 5),
    }
    differences = {
        "int8": stepped["int8"] - fp32,
        "int8_engine_prefill": stepped["int8_engine_prefill"] - fp32,
        "int8_prefill": prefilled["int8_engine_prefill"] - prefilled["torch"],
    }
    for name, diff in differences.items():
        result[f"difference_{name}"] = round(float(diff.mean()), 5)
        result[f"difference_{name}_standard_error"] = round(
            float(diff.std(ddof=1) / np.sqrt(len(diff))), 5
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
